"""Cost of held-out scoring and of the Bayes oracle for many users (10^5 by default).

  python -m benchmarks.evaluation                  # 100,000 didactic users x 32 pairs
  python -m benchmarks.evaluation --users=10000

Generates the users, splits each into 8 context pairs and targets, and times, per method
(BTL, VPL at the default size, freshly initialised: the cost does not depend on the weights)
`vpl.evaluate.predict_users` plus `accuracy_report`, and `vpl.evaluate.bayes_oracle`. Both
work on all users at once in jitted or numpy calls (`predict_users` in blocks of
`--users_per_call`), never one user at a time. A method's first call (compiling) is reported
beside the timed second one. Prints one JSON line per row.
"""

import json
import time

from absl import app, flags
from flax import nnx

from experiments.configs import default
from vpl import evaluate, methods
from vpl.data import comparisons, tasks

FLAGS = flags.FLAGS
flags.DEFINE_integer("users", 100_000, "Evaluated users.")
flags.DEFINE_integer("pairs_per_user", 32, "Pairs per user (8 are context).")
flags.DEFINE_integer("users_per_call", 4096, "Users per jitted prediction call.")


def main(argv):
  del argv
  start = time.perf_counter()
  task = tasks.generate("didactic", dict(num_users=FLAGS.users,
                                         pairs_per_user=FLAGS.pairs_per_user), seed=0)
  data = task.data
  context_idx, target_mask = comparisons.split_context_target(data, 8, seed=0)
  print(f"generated {data.num_users:,} users x {FLAGS.pairs_per_user} pairs in "
        f"{time.perf_counter() - start:.1f} s")
  config = default.get_config()
  rows = []
  for name in ("btl", "vpl"):
    method = methods.make_method(name, config)
    model = method.make_model(data.feature_dim, nnx.Rngs(0))
    start = time.perf_counter()
    evaluate.predict_users(method, model, data, context_idx,
                           users_per_call=FLAGS.users_per_call)  # compiles, then runs
    first = time.perf_counter() - start
    start = time.perf_counter()
    p_a, _ = evaluate.predict_users(method, model, data, context_idx,
                                    users_per_call=FLAGS.users_per_call)
    evaluate.accuracy_report(p_a, data, target_mask)
    rows.append(dict(what=f"score {name}", seconds=time.perf_counter() - start,
                     first_call_seconds=round(first, 2)))
  start = time.perf_counter()
  evaluate.bayes_oracle(data, context_idx, task.shares)
  rows.append(dict(what="bayes_oracle", seconds=time.perf_counter() - start))
  for r in rows:
    r.update(users=data.num_users, users_per_s=round(data.num_users / r["seconds"]),
             seconds=round(r["seconds"], 2))
    print(json.dumps(r))


if __name__ == "__main__":
  app.run(main)
