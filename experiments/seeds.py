"""Runs one config over several seeds and prints mean ± std, and the headline's claims.

  python -m experiments.seeds --workdir=runs/headline            # seeds 0, 1, 2
  python -m experiments.seeds --workdir=runs/nav10 --config=experiments/configs/navigation.py:goals=10

Each seed runs in DIR/seed_N (resumable like experiments.main); the summary is also written
to DIR/summary.md.
"""


from absl import app, flags, logging

from experiments import cli
from vpl import report
from vpl.policy import report as policy_report
from vpl.experiment import run_seeds

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory; seed N runs in DIR/seed_N.", required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
flags.DEFINE_bool("check_headline", None, "Check the 51/49 claims (default: for didactic).")
cli.define_config("experiments/configs/default.py",
                   "Config file[:arg], as in experiments.main.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  runs = run_seeds(FLAGS.config, FLAGS.workdir, [int(s) for s in FLAGS.seeds])
  text = report.seeds_table(runs)
  check = FLAGS.check_headline
  if check if check is not None else runs[0]["task"] == "didactic":
    text += "\n\n" + report.claims_text(report.headline_claims(runs))
  if "policy" in runs[0] or "best_of_n" in runs[0]:
    text += "\n\n" + policy_report.summary(runs)
  print(text)
  report.write_summary(FLAGS.workdir, text, runs)


if __name__ == "__main__":
  app.run(main)
