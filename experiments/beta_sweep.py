"""Where posterior collapse begins: VPL on one task over a grid of beta, two recipes.

  python -m experiments.beta_sweep --workdir=runs/beta_sweep_ufp4      # ufp4, 7 betas x 2 recipes

Recipes: `default` (the default config: product decoder, 1 free nat per latent dimension) and
`paper` (the paper's concat decoder r = MLP([s, z]), no free bits); both with a constant
beta, so the value on the x axis is the one trained with. Run (recipe, beta) goes in
DIR/<recipe>_beta<beta>/ (resumable). Writes DIR/summary.md, DIR/summary.json and
DIR/beta_sweep.png (held-out accuracy and active latent units against beta).
"""

import os

from absl import app, flags, logging

from experiments.configs import compare
from vpl import report
from vpl.experiment import train_and_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory of the sweep.", required=True)
flags.DEFINE_string("task", "ufp4", "A task of experiments/configs/compare.py.")
flags.DEFINE_list("betas", ["0.01", "0.03", "0.1", "0.3", "1", "3", "10"], "Betas to train.")
flags.DEFINE_list("recipes", ["default", "paper"], "Recipes to sweep (default, paper).")
flags.DEFINE_integer("seed", 0, "Seed of every run.")

RECIPES = {
    "default": {},
    "paper": {"model.decoder": "concat", "loss.free_bits": 0.0, "loss.nonlinear_l2": 0.0},
}


def sweep_config(task: str, recipe: str, beta: float, seed: int):
  c = compare.get_config(f"task={task}")
  c.unlock()
  c.methods = ("vpl",)
  c.seed = seed
  c.loss.beta = beta
  c.loss.beta_schedule = "constant"
  c.eval.reward_maps = False
  for dotted, value in RECIPES[recipe].items():
    group, field = dotted.split(".")
    c[group][field] = value
  c.lock()
  return c


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rows = []
  for recipe in FLAGS.recipes:
    for beta in map(float, FLAGS.betas):
      r = train_and_evaluate(sweep_config(FLAGS.task, recipe, beta, FLAGS.seed),
                             os.path.join(FLAGS.workdir, f"{recipe}_beta{beta:g}"))
      vpl = r["methods"]["vpl"]
      rows.append(dict(recipe=recipe, beta=beta, accuracy=vpl["heldout_accuracy"],
                       active_units=vpl["active_units"], mean_kl=vpl["mean_kl"],
                       oracle=r["oracle_accuracy"], btl_ceiling=r["btl_ceiling"]))
      print(f"{recipe} beta={beta:g}: accuracy {vpl['heldout_accuracy']:.3f}, "
            f"{vpl['active_units']} active units", flush=True)
  lines = ["| recipe | beta | held-out acc | active units | mean KL (nats) |",
           "| --- | --- | --- | --- | --- |"]
  lines += [f"| {r['recipe']} | {r['beta']:g} | {r['accuracy']:.3f} | {r['active_units']} | "
            f"{r['mean_kl']:.2f} |" for r in rows]
  lines.append(f"\n{FLAGS.task}, seed {FLAGS.seed}; oracle {rows[0]['oracle']:.3f}, "
               f"BTL ceiling {rows[0]['btl_ceiling']:.3f}.")
  text = "\n".join(lines)
  print(text)
  report.write_summary(FLAGS.workdir, text, rows)
  from vpl import plotting  # matplotlib only when the figure is drawn.
  plotting.beta_sweep(rows, FLAGS.task, os.path.join(FLAGS.workdir, "beta_sweep.png"))


if __name__ == "__main__":
  app.run(main)
