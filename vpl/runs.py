"""Many runs side by side: `collect_results` reads a sweep's finished runs into one row per
(run, method), and `markdown_table` prints them."""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence

from vpl.configs import load_config, lookup


def collect_results(workdirs: Sequence[str], fields: Sequence[str]) -> list[dict]:
  """One row per (finished run, method): the given config fields and held-out metrics.

  Args:
    workdirs: run directories (e.g. a sweep's); unfinished ones (no results.json) are left
      out and counted in the log.
    fields: dotted config fields to report, e.g. ('loss.beta', 'model.latent_dim').
  """
  rows, unfinished = [], []
  for workdir in workdirs:
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
      unfinished.append(workdir)
      continue
    config = load_config(workdir)
    with open(path) as f:
      results = json.load(f)
    settings = {field: lookup(config, field) for field in fields}
    for name, m in results["methods"].items():
      rows.append(dict(workdir=workdir, method=name, **settings,
                       heldout_accuracy=m["heldout_accuracy"],
                       divergent_accuracy=m.get("divergent_accuracy", float("nan")),
                       worst_group_accuracy=m["worst_group_accuracy"],
                       active_units=m.get("active_units"),
                       oracle_accuracy=results["oracle_accuracy"],
                       btl_ceiling=results["btl_ceiling"]))
  if unfinished:
    logging.warning("collect_results: %d of %d workdirs have no results.json yet, left "
                    "out: %s", len(unfinished), len(workdirs), unfinished)
  return rows


def markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
  """Rows as a markdown table; floats with 3 decimals."""
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
  lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
  return "\n".join(lines)
