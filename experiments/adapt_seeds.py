"""The adaptation protocol over seeds: mean ± std of every method and strategy per budget.

  python -m experiments.adapt_seeds --workdir=runs/adapt_ufp4_seeds --config=experiments/configs/adapt.py:task=ufp4
  python -m experiments.adapt_seeds --workdir=DIR --config=experiments/configs/adapt.py:task=didactic --seeds=0,1,2

Each seed runs in DIR/seed_N (resumable like experiments.main). Writes DIR/summary.md (the
held-out table over seeds, accuracy against questions, calibration at the largest budget,
and the questions each method and strategy needs to reach 95% of the Bayes oracle's accuracy
at the largest budget), DIR/summary.json and DIR/adaptation.png (mean and band over seeds).
"""

import os

from absl import app, flags, logging

from experiments import cli
from vpl import adapt_plots, adapt_report, report
from vpl.experiment import run_seeds

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory; seed N runs in DIR/seed_N.", required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
cli.define_config("experiments/configs/adapt.py",
                   "Config file[:arg] with adapt.enabled, as in experiments.main.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.config.adapt.enabled:
    raise app.UsageError("the config has adapt.enabled = False; use "
                         "experiments/configs/adapt.py:task=NAME or add "
                         "--config.adapt.enabled=True.")
  runs = run_seeds(FLAGS.config, FLAGS.workdir, [int(s) for s in FLAGS.seeds])
  text = report.seeds_table(runs) + "\n\n" + adapt_report.text(runs)
  print(text)
  report.write_summary(FLAGS.workdir, text, runs)
  print(adapt_plots.adaptation_curves(runs, os.path.join(FLAGS.workdir, "adaptation.png")))


if __name__ == "__main__":
  app.run(main)
