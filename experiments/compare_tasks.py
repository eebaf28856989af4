"""Every method on every task of experiments/configs/compare.py, over seeds, in one table.

  python -m experiments.compare_tasks --workdir=runs/compare            # 6 tasks x seeds 0,1,2
  python -m experiments.compare_tasks --workdir=runs/compare --tasks=ufp4 --seeds=0
  python -m experiments.compare_tasks --workdir=runs/compare_pref --methods=btl,pref
  python -m experiments.compare_tasks --workdir=runs/compare_deepsets --methods=vpl \
      --set=model.encoder=deepsets

Task T, seed N runs in DIR/T/seed_N (resumable like experiments.main). Writes DIR/summary.md
(the tables over tasks, of held-out accuracy and of accuracy on unseen items, each task's
table over seeds and its claims checked per seed) and DIR/summary.json.
"""

import os

from absl import app, flags, logging

from experiments.cli import parse_sets
from experiments.configs import compare
from vpl import configs, report
from vpl.experiment import run_seeds

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory; DIR/TASK/seed_N per run.", required=True)
flags.DEFINE_list("tasks", list(compare.TASKS), "Tasks of experiments/configs/compare.py.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
flags.DEFINE_list("methods", list(compare.METHODS), "Methods to train (a subset of the config's).")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE applied to every task's config, e.g. "
                          "--set=model.encoder=deepsets (VALUE as a Python literal, else a "
                          "string); repeat the flag for several.")



def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  runs_by_task = {}
  for task in FLAGS.tasks:
    config = configs.with_overrides(compare.get_config(f"task={task}"),
                                    {"methods": tuple(FLAGS.methods), **parse_sets(FLAGS.set)})
    runs_by_task[task] = run_seeds(config, os.path.join(FLAGS.workdir, task),
                                   [int(s) for s in FLAGS.seeds])
    print(f"{task}: done", flush=True)
  parts = [report.tasks_table(runs_by_task),
           report.tasks_table(runs_by_task, "unseen_items_accuracy")]
  for task, runs in runs_by_task.items():
    parts.append(f"### {task}\n\n" + report.seeds_table(runs) + "\n\n"
                 + report.claims_text(report.comparison_claims(runs)))
  text = "\n\n".join(parts)
  print(text)
  report.write_summary(FLAGS.workdir, text, runs_by_task)


if __name__ == "__main__":
  app.run(main)
