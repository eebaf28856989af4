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

from experiments.configs import default
from vpl.methods import REGISTRY


def get_config(arg: str = ""):
  fields = dict(kv.split("=", 1) for kv in arg.split(",") if kv)
  unknown = sorted(set(fields) - {"path", "split", "standardize", "format"})
  if unknown or "path" not in fields:
    raise ValueError(f"byo.py needs path=FILE (optional split=, standardize=, format=); got "
                     f"{arg!r}.")
  if fields.get("standardize", "true") not in ("true", "false"):
    raise ValueError(f"byo.py:standardize={fields['standardize']}; use true or false.")
  c = default.get_config()
  c.unlock()
  c.methods = tuple(REGISTRY)
  c.source.name = "byo"
  c.source.kwargs = dict(path=fields["path"], format=fields.get("format", "auto"))
  c.source.standardize = fields.get("standardize", "true") == "true"
  c.eval.split = fields.get("split", "users")
  c.eval.reward_maps = False
  c.lock()
  return c
