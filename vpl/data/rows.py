"""Flat comparison rows: the contract between loaders, file import and the trainer.

A loader returns `Rows`: one row per labelled comparison, as a dict of numpy arrays
  `user_id [N] int64`, `a [N, D] float32`, `b [N, D] float32`, `label [N] float32` in [0, 1]
  (1 = a preferred, or a probability), optional `group [N] int32` (>= 0, constant per user),
  optional `timestamp [N] float64` (any increasing clock; orders a user's pairs in time),
  optional `condition [N] int` (how the question was put) and `pair_id [N] int64` (one id
  per question, so a question asked again is recognised),
plus what is known about them: feature names, group names, and a filter report that counts
every row the loader dropped and why. `to_comparisons` turns rows into `UserComparisons`.
Nothing here drops a row silently: each filter returns the rows it kept and adds its count
to the report.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from vpl.data.comparisons import UserComparisons, from_flat

REQUIRED = ("user_id", "a", "b", "label")
# condition: how the question was put (e.g. 0 = a shown first, 1 = b shown first; any codes);
# pair_id: the same question asked again carries the same id (vpl/stability.py reads both;
# training keeps a question's askings on one side of a context/target split, and
# model.condition_bias reads the condition).
OPTIONAL = ("group", "timestamp", "condition", "pair_id")
Filters = dict[str, dict[str, int]]  # reason -> {unit ('pairs', 'users', 'ratings'): count}


@dataclasses.dataclass(frozen=True)
class Rows:
  """Comparison rows of one source.

  Attributes:
    name: the source, e.g. 'ecdat_train' or a file path.
    arrays: `user_id`, `a`, `b`, `label` and optionally `group`, `timestamp` (see module doc).
    feature_names: `[D]` names of the item features (columns of `a` and `b`).
    group_names: name of each group code (index = code), or None without groups.
    filters: what the loader dropped: reason -> {unit: count}; empty when nothing was.
    info: facts about the source (sizes before filtering, caps, preprocessing).
  """
  name: str
  arrays: dict[str, np.ndarray]
  feature_names: tuple[str, ...]
  group_names: Optional[tuple[str, ...]] = None
  filters: Filters = dataclasses.field(default_factory=dict)
  info: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    validate_rows(self.arrays, self.name)
    if len(self.feature_names) != self.arrays["a"].shape[1]:
      raise ValueError(f"{self.name}: {len(self.feature_names)} feature names for "
                       f"{self.arrays['a'].shape[1]} feature columns; give one name per column.")

  @property
  def num_rows(self) -> int:
    return len(self.arrays["label"])

  @property
  def num_users(self) -> int:
    return len(np.unique(self.arrays["user_id"]))


def _row(i: int) -> str:
  return f"row {i}"


def validate_rows(arrays: dict[str, np.ndarray], source: str,
                  where: Callable[[int], str] = _row) -> None:
  """Raises ValueError naming the source, the row, the field, the value and the fix.

  Args:
    arrays: flat rows (see the module doc).
    source: what the rows came from (a file path or a data set name), for the message.
    where: turns a row index into a location in the source, e.g. `lambda i: f"line {i + 2}"`.
  """
  missing = [k for k in REQUIRED if k not in arrays]
  if missing:
    raise ValueError(f"{source}: no {missing} field(s); every comparison needs "
                     f"{list(REQUIRED)} (optional: {list(OPTIONAL)}).")
  unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
  if unknown:
    raise ValueError(f"{source}: unknown field(s) {unknown}; rows hold {list(REQUIRED)} and "
                     f"optionally {list(OPTIONAL)}. Rename or remove them.")
  a, b, label = arrays["a"], arrays["b"], arrays["label"]
  n = len(label)
  if n == 0:
    raise ValueError(f"{source}: no comparisons (0 rows); give at least one row per user.")
  if a.ndim != 2 or a.shape != b.shape or a.shape[0] != n:
    raise ValueError(f"{source}: a has shape {a.shape}, b {b.shape} and there are {n} labels; "
                     f"a and b must both be [rows, features] with one row per label and the "
                     f"same number of features in every row.")
  for name in ("user_id", "label") + tuple(k for k in OPTIONAL if k in arrays):
    if arrays[name].shape != (n,):
      raise ValueError(f"{source}: {name} has shape {arrays[name].shape}; expected ({n},), "
                       f"one per comparison.")
  for name, x in (("a", a), ("b", b)):
    bad = ~np.isfinite(x)
    if bad.any():
      i, d = np.argwhere(bad)[0]
      raise ValueError(f"{source}: {where(int(i))}, field {name}_{d} = {x[i, d]}: features "
                       f"must be finite ({int(bad.any(1).sum())} row(s) are not). Impute the "
                       f"value or remove the row.")
  bad = ~(np.isfinite(label) & (label >= 0) & (label <= 1))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(f"{source}: {where(i)}, field label = {label[i]}: labels must lie in "
                     f"[0, 1] (1 = a preferred, 0 = b preferred, or P(a preferred)); "
                     f"{int(bad.sum())} row(s) are outside. Map e.g. +1/-1 to 1/0.")
  if arrays["user_id"].dtype.kind not in "iu":
    raise ValueError(f"{source}: user_id has dtype {arrays['user_id'].dtype}; flat rows carry "
                     f"integer user ids (map names to codes, as `byo.load` does).")
  if "group" in arrays:
    group = arrays["group"]
    if group.dtype.kind not in "iu" or (group < 0).any():
      i = int(np.flatnonzero(group < 0)[0]) if group.dtype.kind in "iu" else 0
      raise ValueError(f"{source}: {where(i)}, field group = {group[i]}: groups are integer "
                       f"codes >= 0; leave the field out when groups are unknown.")
  for name in ("condition", "pair_id"):
    if name in arrays and arrays[name].dtype.kind not in "iu":
      raise ValueError(f"{source}: {name} has dtype {arrays[name].dtype}; it holds integer "
                       f"codes (map names to codes, as `byo.load` does).")
  if "condition" in arrays and (arrays["condition"] < 0).any():
    i = int(np.flatnonzero(arrays["condition"] < 0)[0])
    raise ValueError(f"{source}: {where(i)}, field condition = {arrays['condition'][i]}: "
                     f"conditions are integer codes >= 0.")
  if "timestamp" in arrays:
    bad = ~np.isfinite(arrays["timestamp"])
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      raise ValueError(f"{source}: {where(i)}, field timestamp = {arrays['timestamp'][i]}: "
                       f"timestamps must be finite numbers; fill them or drop the column.")


def add_filter(filters: Filters, reason: str, **counts: int) -> Filters:
  """A copy of `filters` with `counts` added under `reason` (zero counts are kept: a filter
  that ran and dropped nothing is reported as such)."""
  out = {k: dict(v) for k, v in filters.items()}
  entry = out.setdefault(reason, {})
  for unit, n in counts.items():
    entry[unit] = entry.get(unit, 0) + int(n)
  return out


def select(rows: Rows, keep: np.ndarray, reason: str, **extra_counts: int) -> Rows:
  """The rows where `keep` is True; the dropped ones are counted under `reason`."""
  keep = np.asarray(keep, bool)
  dropped_users = rows.num_users - len(np.unique(rows.arrays["user_id"][keep]))
  filters = add_filter(rows.filters, reason, pairs=int((~keep).sum()), users=dropped_users,
                       **extra_counts)
  return dataclasses.replace(rows, arrays={k: v[keep] for k, v in rows.arrays.items()},
                             filters=filters)


def filter_min_pairs(rows: Rows, min_pairs: int, why: str) -> Rows:
  """Drops users with fewer than `min_pairs` rows, counted as 'fewer than N pairs (why)'."""
  _, inverse, counts = np.unique(rows.arrays["user_id"], return_inverse=True,
                                 return_counts=True)
  keep = counts[inverse] >= min_pairs
  if not keep.any():
    raise ValueError(f"{rows.name}: every user has fewer than {min_pairs} pairs ({why}); the "
                     f"most any user has is {counts.max()}. Lower the context size.")
  return select(rows, keep, f"users with fewer than {min_pairs} pairs ({why})")


def to_comparisons(rows: Rows) -> tuple[UserComparisons, Optional[np.ndarray]]:
  """Groups rows by user: `(UserComparisons, timestamp [U, K] or None)`.

  Within a user, pairs keep their row order; the timestamps are padded with +inf. `condition`
  and `pair_id` become the data's `[U, K]` fields (padding: -1).
  """
  x = rows.arrays
  data = from_flat(x["a"], x["b"], x["label"], x["user_id"], x.get("group"))
  extra = {k: place(data, x["user_id"], x[k], -1) for k in ("condition", "pair_id") if k in x}
  if extra:
    data = dataclasses.replace(data, **extra)
  if "timestamp" not in x:
    return data, None
  return data, place(data, x["user_id"], x["timestamp"].astype(np.float64), np.inf)


def place(data: UserComparisons, user_id_N: np.ndarray, value_N: np.ndarray,
          pad) -> np.ndarray:
  """`[U, K]` per-row values put in the slots `from_flat` gave the same rows, padded with `pad`.

  from_flat keeps each user's rows in row order, so the same stable grouping places them:
  the slot of row r = its rank among its user's rows.
  """
  order = np.argsort(np.searchsorted(data.user_id, user_id_N), kind="stable")
  user_rows = np.searchsorted(data.user_id, user_id_N[order])
  counts = data.pairs_per_user
  slot = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
  out = np.full(data.mask.shape, pad, dtype=np.asarray(value_N).dtype)
  out[user_rows, slot] = np.asarray(value_N)[order]
  return out


def standardize(train: UserComparisons, *others: UserComparisons
                ) -> tuple[list[UserComparisons], dict]:
  """Z-scores every feature with the mean and std of the training users' options.

  Only the features of `train` (no labels, no other users) set the statistics, so nothing
  about held-out users leaks into training. Constant features are centred, not scaled.

  Returns:
    The standardised `[train, *others]` and `{'mean': [D], 'std': [D]}`.
  """
  feats = np.concatenate([train.a[train.mask], train.b[train.mask]]).astype(np.float64)
  mean, std = feats.mean(0), feats.std(0)
  std = np.where(std > 0, std, 1.0)

  def apply(d: UserComparisons) -> UserComparisons:
    z = lambda x: np.where(d.mask[..., None], (x - mean) / std, 0).astype(np.float32)
    return dataclasses.replace(d, a=z(d.a), b=z(d.b))

  return [apply(d) for d in (train, *others)], dict(mean=mean.tolist(), std=std.tolist())


def from_comparisons(data: UserComparisons, timestamp: Optional[np.ndarray] = None
                     ) -> dict[str, np.ndarray]:
  """The flat rows of `data` (user by user, in slot order): the inverse of `to_comparisons`.

  `group` is included when every user has one (>= 0); `timestamp` `[U, K]` when given;
  `condition` and `pair_id` when the data has them.
  """
  users, slots = np.nonzero(data.mask)
  arrays = dict(user_id=np.asarray(data.user_id)[users].astype(np.int64),
                a=data.a[users, slots].astype(np.float32),
                b=data.b[users, slots].astype(np.float32),
                label=data.label[users, slots].astype(np.float32))
  if (data.group >= 0).all():
    arrays["group"] = data.group[users].astype(np.int32)
  if timestamp is not None:
    arrays["timestamp"] = np.asarray(timestamp, np.float64)[users, slots]
  for name in ("condition", "pair_id"):
    if getattr(data, name) is not None:
      arrays[name] = getattr(data, name)[users, slots].astype(np.int64)
  return arrays
