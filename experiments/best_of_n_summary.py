"""How well held-out reward accuracy predicts best-of-N regret, across methods and tasks.

  python -m experiments.best_of_n_summary --workdirs=runs/bon_ufp4,runs/bon_pets

Reads each workdir's `summary.json` (written by experiments.seeds with a best_of_n config)
and prints, per task and over all tasks, the Pearson and Spearman correlation of each
(method, seed) point's held-out accuracy with its mean regret (the oracle left out).
"""

import json
import os

from absl import app, flags

from vpl.policy import report

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "experiments.seeds workdirs of best_of_n runs.",
                  required=True)


def main(argv):
  del argv
  every = []
  lines = ["| runs | points | Pearson r(acc, regret) | Spearman |", "| --- | --- | --- | --- |"]
  for workdir in FLAGS.workdirs:
    with open(os.path.join(workdir, "summary.json")) as f:
      runs = json.load(f)
    every += runs
    c = report.accuracy_regret_correlation(runs)
    lines.append(f"| {runs[0]['task']} | {c['points']} | {c['pearson']:.3f} | "
                 f"{c['spearman']:.3f} |")
  c = report.accuracy_regret_correlation(every)
  lines.append(f"| all | {c['points']} | {c['pearson']:.3f} | {c['spearman']:.3f} |")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
