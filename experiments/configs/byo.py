"""Every method trained and evaluated on your own comparisons file.

Command:  python -m experiments.main --workdir=runs/mine --config=experiments/configs/byo.py:path=pairs.csv
          (arguments: path=FILE (required; .csv, .jsonl, .parquet or .npz, see
          vpl/data/byo.py and docs/data.md for the layout), split=users |
          temporal (needs a timestamp field), standardize=true | false)
Runtime:  for a file of 1,000 users x 24 pairs over 2 features, about 2 minutes on the 2-core
          CPU with all six methods, compile included; it grows with the feature width and the
          methods' steps, not much with the number of rows.
Expected: results.json / results.md with every method's held-out accuracy, per group and
          worst group (when the file has groups); the oracle, BTL ceiling and Bayes oracle are
          reported as skipped (a file has no generating rewards). A synthetic task written to
          a file gives the same accuracies as the task trained in memory
          (tests/test_byo.py).
"""

from experiments.configs import args, default
from vpl import configs


def get_config(arg: str = ""):
  f = args.parse(arg, "byo.py", path=args.Key(), split=args.Key("users", ("users", "temporal")),
                 standardize=args.Key(True, parse=args.boolean),
                 format=args.Key("auto", ("auto", "csv", "jsonl", "parquet", "npz")))
  return configs.with_overrides(default.get_config(), {
      "methods": default.ALL_METHODS, "data.source": "byo",
      "data.kwargs": dict(path=f["path"], format=f["format"]),
      "data.standardize": f["standardize"], "eval.split": f["split"],
      "eval.reward_maps": False})
