"""Runs the feedback-loop simulation (vpl/feedback_loop.py) over seeds; writes JSON and a figure.

  python -m experiments.feedback_loop --workdir=runs/feedback_loop [--seeds=0,1,2]

Per seed, VPL is trained once (DIR/seed_N, resumable like experiments.main), then every
shrinkage strength in `feedback.strengths` runs the same rounds (same users, answers' noise,
prompts and candidates). DIR/NAME.json (`--name`, default feedback_loop) holds the per-round
figures of every seed and strength and a summary; DIR/NAME.png plots them. The simulation's
settings (`--config.feedback.*`) can change without retraining.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from experiments import cli
from vpl import analysis, experiment, feedback_loop, seeding

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory; seed N trains in DIR/seed_N.",
                    required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
flags.DEFINE_string("name", "feedback_loop", "Stem of the JSON and PNG written to DIR.")
cli.define_config("experiments/configs/feedback_loop.py", "Config file[:arg].")


def training_config(config):
  """The config VPL trains with: the run's, less the `feedback` group (so the simulation's
  settings can change without retraining)."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    del c["feedback"]
  c.lock()
  return c


def run_seed(config, workdir: str) -> dict:
  experiment.train_and_evaluate(training_config(config), workdir)
  run = analysis.load_run(workdir)
  f = config.feedback
  every = run.latents("vpl", users="all")
  train_ids = set(run.train_data.user_id.tolist())
  is_train = np.array([u in train_ids for u in every["user_id"]])
  train_z = every["mu"][is_train][:f.population_users]
  rng = seeding.rng(config.seed, "feedback_loop")
  reference = rng.standard_normal((f.reference_items, run.heldout.feature_dim))
  served = feedback_loop.serve(run.models["vpl"], train_z, reference)
  heldout = run.heldout
  constructed = np.zeros(heldout.num_users, bool)
  constructed[rng.permutation(heldout.num_users)[
      :round(f.constructed_share * heldout.num_users)]] = True
  loop_seed = int(rng.integers(2**31))
  out = dict(seed=config.seed, num_users=int(heldout.num_users),
             num_constructed=int(constructed.sum()), strengths={})
  for s in f.strengths:
    out["strengths"][str(s)] = feedback_loop.simulate(
        served, run.task.true_reward, heldout, constructed_U=constructed, strength=float(s),
        rounds=f.rounds, eta=f.eta, lean=f.lean, position_share=f.position_share,
        temperature=f.temperature, num_questions=f.num_questions, num_prompts=f.num_prompts,
        num_candidates=f.num_candidates, use_certainty=f.use_certainty,
        num_groups=run.task.num_groups, seed=loop_seed)
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  runs = []
  for seed in [int(s) for s in FLAGS.seeds]:
    seeded = FLAGS.config.copy_and_resolve_references()
    seeded.unlock()
    seeded.seed = seed
    seeded.lock()
    runs.append(run_seed(seeded, os.path.join(FLAGS.workdir, f"seed_{seed}")))
  summary = feedback_loop.summary(runs)
  with open(os.path.join(FLAGS.workdir, f"{FLAGS.name}.json"), "w") as f:
    json.dump(dict(runs=runs, summary=summary), f, indent=2)
  from vpl import feedback_loop_plots  # matplotlib only when a figure is drawn.
  feedback_loop_plots.rounds(runs, os.path.join(FLAGS.workdir, f"{FLAGS.name}.png"))
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
