"""Who has a stable preference? The re-asking analysis on a task or on your own file.

  python -m experiments.stability_analysis --workdir=runs/stability --task=didactic
  python -m experiments.stability_analysis --workdir=runs/stability --task=ufp4 --seeds=0,1,2
  python -m experiments.stability_analysis --workdir=runs/mine --path=pairs.csv

With --task: the task preset's users (vpl/data/tasks.py) are re-asked (vpl/data/reasking.py:
30% non-attitude users, and 20% of every other user's questions answered by first position,
half of each user's questions asked 3 times with the order alternating), then each user is
classified from the consistency of their answers (vpl/stability.py) and scored against the
generator's truth (users, and re-asked questions answered by position). With --path: a file with pair_id and condition columns is analysed (no
truth, so counts only). Writes WORKDIR/stability.json and prints it.
Runtime: a few seconds per seed (numpy only). Expected: precision and recall >= 0.9 for both
non-attitude and constructed users on didactic and ufp4.
"""

import json
import os

import numpy as np
from absl import app, flags

from vpl import stability
from vpl.data import byo, reasking, tasks

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where stability.json goes.", required=True)
flags.DEFINE_string("task", None, "A task preset of vpl/data/tasks.py.")
flags.DEFINE_string("path", None, "A comparisons file with pair_id and condition columns.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (with --task).")
flags.DEFINE_float("non_attitude_users", 0.3, "Share of users without an opinion.")
flags.DEFINE_float("constructed_users", 0.0, "Share of users answering by first position.")
flags.DEFINE_float("constructed_questions", 0.2,
                   "Share of each other user's questions answered by first position.")
flags.DEFINE_float("reask_share", 0.5, "Share of each user's questions asked again.")
flags.DEFINE_integer("asks", 3, "Times a re-asked question is asked (3 = 2 re-asks).")


def summary(stats, kind) -> dict:
  return dict(num_users=len(kind),
              users_per_kind={k: int((kind == i).sum()) for i, k in enumerate(stability.KINDS)},
              mean_consistency={k: float(np.nanmean(stats["consistency"][kind == i]))
                                for i, k in enumerate(stability.KINDS) if (kind == i).any()})


def main(argv):
  del argv
  if (FLAGS.task is None) == (FLAGS.path is None):
    raise app.UsageError("give exactly one of --task and --path")
  out = {}
  if FLAGS.path:
    stats = stability.user_statistics(byo.load(FLAGS.path))
    out["file"] = dict(path=FLAGS.path, **summary(stats, stability.classify(stats)))
  else:
    preset = tasks.preset(FLAGS.task)
    for seed in map(int, FLAGS.seeds):
      task = tasks.generate(preset.generator, preset.kwargs, seed)
      rows, truth = reasking.reask(
          task, np.random.default_rng(seed), non_attitude_users=FLAGS.non_attitude_users,
          constructed_users=FLAGS.constructed_users,
          constructed_questions=FLAGS.constructed_questions, reask_share=FLAGS.reask_share,
          asks=FLAGS.asks)
      stats = stability.user_statistics(rows)
      kind = stability.classify(stats)
      true_kind = truth["user_kind"][np.argsort(truth["user_id"])]
      detector = stability.detector_report(kind, true_kind)
      q = stats["questions"]
      true_q = np.array([truth["question_kind"][int(stats["user_id"][u]), int(p)] == 2
                         for u, p in zip(q["user"], q["pair_id"])])
      detector["constructed_answers"] = stability.precision_recall(
          stability.constructed_questions(stats, kind), true_q)
      out[f"seed_{seed}"] = dict(detector=detector, **summary(stats, kind))
  os.makedirs(FLAGS.workdir, exist_ok=True)
  with open(os.path.join(FLAGS.workdir, "stability.json"), "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  app.run(main)
