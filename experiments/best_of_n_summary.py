"""How well held-out reward accuracy predicts best-of-N regret, across methods and tasks.

  python -m experiments.best_of_n_summary --workdirs=runs/bon_ufp4,runs/bon_pets

Reads each workdir's `summary.json` (written by experiments.seeds with a best_of_n config)
and prints, per task and over all tasks, the Pearson and Spearman correlation of each
(method, seed) point's held-out accuracy (all targets, and unseen items only) with its mean
regret (the oracle left out).
"""

import json
import os

from absl import app, flags

from vpl.policy import report

# Held-out accuracy on all of a user's targets, and on the targets no training user labelled
# (the candidates of best-of-N are fresh items too).
KEYS = ("heldout_accuracy", "unseen_items_accuracy")
FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "experiments.seeds workdirs of best_of_n runs.",
                  required=True)


def main(argv):
  del argv
  every = []
  lines = ["| runs | accuracy | points | Pearson r(acc, regret) | Spearman |",
           "| --- | --- | --- | --- | --- |"]
  row = lambda task, key, c: (f"| {task} | {key} | {c['points']} | {c['pearson']:.3f} | "
                              f"{c['spearman']:.3f} |")
  for workdir in FLAGS.workdirs:
    with open(os.path.join(workdir, "summary.json")) as f:
      runs = json.load(f)
    every += runs
    for key in KEYS:
      lines.append(row(runs[0]["task"], key, report.accuracy_regret_correlation(runs, key)))
  for key in KEYS:
    lines.append(row("all", key, report.accuracy_regret_correlation(every, key)))
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
