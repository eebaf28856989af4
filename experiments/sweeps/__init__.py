"""Sweeps as plain data: a module per sweep with `CONFIG` and `GRID` and/or `RUNS`.

  CONFIG = "experiments/configs/default.py"        # the --config every job starts from
  FIXED = {"methods": ("vpl",)}                   # optional: overrides shared by all jobs
  GRID = {"loss.beta": (0.1, 1.0), "model.latent_dim": (2, 8)}  # the product: 4 jobs
  RUNS = [{}, {"loss.beta": 0.1}]                 # or/and: an explicit list of jobs

`expand` turns one into jobs `{name, overrides}`; launch/slurm.py writes them as
`--config.X=Y` flags with a per-job workdir, notebooks apply them in-process with
`vpl.configs.with_overrides`.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
from types import ModuleType
from typing import Any

SWEEPS_DIR = os.path.dirname(os.path.abspath(__file__))


def load(name_or_path: str) -> ModuleType:
  """A sweep module by name ('beta_latent') or path ('experiments/sweeps/beta_latent.py')."""
  path = name_or_path
  if not path.endswith(".py"):
    path = os.path.join(SWEEPS_DIR, name_or_path + ".py")
  if not os.path.exists(path):
    known = sorted(f[:-3] for f in os.listdir(SWEEPS_DIR) if f.endswith(".py") and f[0] != "_")
    raise ValueError(f"sweep {name_or_path!r} not found at {path}; known sweeps: {known}.")
  spec = importlib.util.spec_from_file_location(
      "sweep_" + os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "CONFIG") or not (hasattr(module, "GRID") or hasattr(module, "RUNS")):
    raise ValueError(f"sweep {path} must define CONFIG and GRID and/or RUNS (see "
                     f"experiments/sweeps/__init__.py).")
  return module


def expand(sweep: ModuleType) -> list[dict]:
  """The sweep's jobs, in order: `[{'name': str, 'overrides': {field: value}}]`.

  GRID jobs come first (the product, last field fastest), then RUNS; FIXED is added to
  every job. Names are unique (they become workdir names).
  """
  fixed = dict(getattr(sweep, "FIXED", {}))
  jobs = []
  grid = getattr(sweep, "GRID", {})
  if grid:
    fields = list(grid)
    for values in itertools.product(*(grid[f] for f in fields)):
      jobs.append(dict(zip(fields, values)))
  jobs.extend(dict(run) for run in getattr(sweep, "RUNS", []))
  out, seen = [], set()
  for changes in jobs:
    name = job_name(changes)
    if name in seen:
      raise ValueError(f"sweep has two jobs named {name!r} ({changes}); make them differ.")
    seen.add(name)
    out.append(dict(name=name, overrides={**fixed, **changes}))
  return out


def job_name(changes: dict[str, Any]) -> str:
  """A workdir-safe name from the fields a job changes: {'loss.beta': 0.1} -> 'beta0.1'."""
  if not changes:
    return "base"
  last = [field.split(".")[-1] for field in changes]
  short = len(set(last)) == len(last)  # the full dotted name only where last parts repeat
  parts = [f"{name if short else field}{format_value(v)}"
           for name, (field, v) in zip(last, changes.items())]
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts)).strip("_")


def format_value(value: Any) -> str:
  """A config value as ml_collections' flag parser reads it: 0.1, True, (2, 8), vpl."""
  if isinstance(value, (tuple, list)):
    inner = ",".join(f'"{v}"' if isinstance(v, str) else format_value(v) for v in value)
    return f"({inner}{',' if len(value) == 1 else ''})"
  return str(value)


def override_flags(overrides: dict[str, Any]) -> list[str]:
  """`['--config.loss.beta=0.1', ...]`: argv entries (quote with `shlex.join` for a shell)."""
  return [f"--config.{field}={format_value(v)}" for field, v in overrides.items()]
