"""Runs the feedback-loop simulation (vpl/feedback_loop.py) over seeds; writes JSON and a figure.

  python -m experiments.feedback_loop --workdir=runs/feedback_loop [--seeds=0,1,2]

Per seed (`vpl.feedback_loop.run_seed`), VPL is trained once (DIR/seed_N, resumable), then every
shrinkage strength in `feedback.strengths` runs the same rounds (same users, answers' noise,
prompts and candidates). DIR/NAME.json (`--name`, default feedback_loop) holds the per-round
figures of every seed and strength and a summary; DIR/NAME.png plots them. The simulation's
settings (`--config.feedback.*`) can change without retraining.
"""

import json
import os

from absl import app, flags, logging

from experiments import cli
from vpl import feedback_loop

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory; seed N trains in DIR/seed_N.",
                    required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
flags.DEFINE_string("name", "feedback_loop", "Stem of the JSON and PNG written to DIR.")
cli.define_config("experiments/configs/feedback_loop.py", "Config file[:arg].")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  runs = []
  for seed in [int(s) for s in FLAGS.seeds]:
    seeded = FLAGS.config.copy_and_resolve_references()
    seeded.unlock()
    seeded.seed = seed
    seeded.lock()
    runs.append(feedback_loop.run_seed(seeded, os.path.join(FLAGS.workdir, f"seed_{seed}")))
  summary = feedback_loop.summary(runs)
  with open(os.path.join(FLAGS.workdir, f"{FLAGS.name}.json"), "w") as f:
    json.dump(dict(runs=runs, summary=summary), f, indent=2)
  from vpl import feedback_loop_plots  # matplotlib only when a figure is drawn.
  feedback_loop_plots.rounds(runs, os.path.join(FLAGS.workdir, f"{FLAGS.name}.png"))
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
