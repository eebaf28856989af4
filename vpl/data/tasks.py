"""The registry of synthetic tasks: generators by name, and the named presets experiments use.

`GENERATORS` maps a name (`config.data.source`) to its generator; `PRESETS` names the
(generator, keyword arguments, number of user groups) of every task the project's configs,
comparison and TFDS data sets use, so each preset is written once. `generate` runs a
generator with the data stream of a run's seed (`vpl.seeding`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from vpl import seeding
from vpl.data import drift as drift_lib
from vpl.data import embedding_tasks, maze, synthetic
from vpl.data.labelling import Task


def drift(*, task: str = "didactic", drifting_users: float = 1.0, switch_low: float = 0.25,
          switch_high: float = 0.6, seed: int = 0, **task_kwargs) -> Task:
  """Generator `task` (with `task_kwargs`) whose users switch groups (vpl/data/drift.py)."""
  if task not in _BASES:
    raise ValueError(f"drift: task = {task!r}; choose one of {sorted(_BASES)} (generators that "
                     f"record every group's preference).")
  drift_lib.check_shares(drifting_users, switch_low, switch_high)
  base = _BASES[task](seed=seed, **task_kwargs)
  return drift_lib.drift(base, seeding.rng(seed, "drift"), drifting_users=drifting_users,
                         switch_low=switch_low, switch_high=switch_high)


GENERATORS: dict[str, Callable[..., Task]] = {
    "didactic": synthetic.didactic,
    "navigation": synthetic.navigation,
    "maze": maze.maze,
    "pets": embedding_tasks.pets,
    "ufp": embedding_tasks.ufp,
    "unimodal": embedding_tasks.unimodal,
}
# Generators the drift task builds on (two or more groups, group_pref recorded).
_BASES = {k: GENERATORS[k] for k in ("didactic", "navigation", "pets", "ufp")}
GENERATORS["drift"] = drift
# Tasks whose users label pairs from one shared pool (so items recur across users).
SHARED_POOL = ("pets", "ufp", "unimodal")


class Preset(NamedTuple):
  generator: str
  kwargs: dict
  num_groups: int


PRESETS: dict[str, Preset] = {
    "didactic": Preset("didactic", dict(shares=(0.51, 0.49), num_users=1000,
                                        pairs_per_user=64, temperature=0.0), 2),
    "didactic_tiny": Preset("didactic", dict(shares=(0.51, 0.49), num_users=120,
                                             pairs_per_user=24, temperature=0.0), 2),
    "navigation2": Preset("navigation", dict(num_goals=2, num_users=1000, pairs_per_user=64,
                                             temperature=0.0), 2),
    **{f"navigation{g}": Preset("navigation", dict(num_goals=g, num_users=1000,
                                                   pairs_per_user=64, temperature=0.0), g)
       for g in (3, 4)},
    "navigation10": Preset("navigation", dict(num_goals=10, num_users=1000,
                                              pairs_per_user=64, temperature=0.0), 10),
    # Walled navigation whose pairs are states of exploratory trajectories (policy config).
    "maze2": Preset("maze", dict(num_goals=2, num_users=1000, pairs_per_user=64), 2),
    "maze4": Preset("maze", dict(num_goals=4, num_users=1000, pairs_per_user=64), 4),
    "pets": Preset("pets", dict(num_users=1000, pairs_per_user=32), 2),
    "ufp2": Preset("ufp", dict(num_types=2, num_users=1000, pairs_per_user=32), 2),
    "ufp4": Preset("ufp", dict(num_types=4, num_users=1000, pairs_per_user=32), 4),
    "unimodal": Preset("unimodal", dict(num_users=1000, pairs_per_user=32), 1),
    # Every user switches group at an answer of their own, slot 16 to 38 of their 64.
    "drift_didactic": Preset("drift", dict(task="didactic", shares=(0.5, 0.5), num_users=1000,
                                           pairs_per_user=64, temperature=0.0), 2),
    "drift_ufp4": Preset("drift", dict(task="ufp", num_types=4, num_users=1000,
                                       pairs_per_user=64), 4),
}


def is_task(name: str) -> bool:
  return name in GENERATORS


def preset(name: str) -> Preset:
  if name not in PRESETS:
    raise ValueError(f"task preset {name!r} is not known; choose one of {sorted(PRESETS)}.")
  return PRESETS[name]


def generate(name: str, kwargs: dict, seed: int) -> Task:
  """Task `name` with its generator's keyword arguments, from the data stream of `seed`."""
  if name not in GENERATORS:
    raise ValueError(f"data.source = {name!r} is not a synthetic task; choose one of "
                     f"{sorted(GENERATORS)}.")
  return GENERATORS[name](seed=seeding.derive(seed, "data"), **dict(kwargs))
