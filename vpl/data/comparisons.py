"""Labelled comparisons grouped by user, with validation and splits.

A comparison is (a, b, label) by one user: `label` is 1 when the user preferred a, 0 when
they preferred b, or a probability in between. Comparisons are stored grouped by user as
padded arrays `[U, K, ...]` with a mask, so a user's pool lives in one row and a context set
is a subset of that row. Synthetic tasks also carry what their generator knows: each pair's
probability of `a` under the user's true reward and under the whole population, and whether
the groups' true rewards disagree on the pair ("divergent").
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class UserComparisons:
  """U users with up to K comparisons each over D-dimensional item features.

  Attributes:
    a: `[U, K, D]` features of the first option.
    b: `[U, K, D]` features of the second option.
    label: `[U, K]` in [0, 1]; 1 means `a` was preferred.
    mask: `[U, K]` bool; False marks padding of users with fewer than K pairs.
    user_id: `[U]` int identifiers.
    group: `[U]` int group of each user, -1 where unknown.
    true_pref: optional `[U, K]` P(a preferred) under the user's generating reward.
    pooled_pref: optional `[U, K]` P(a preferred) averaged over the population's groups.
    divergent: optional `[U, K]` bool, True where the groups' true rewards disagree.
    group_pref: optional `[U, K, G]` P(a preferred) under each group's generating reward.
    condition: optional `[U, K]` int, how each question was put (0 = a shown first).
    pair_id: optional `[U, K]` int, one id per question: a question asked again keeps it, and
      all its askings stay on one side of a context/target split.
    reliability: optional `[U]` in [0, 1], how far each user's answers can be trusted
      (vpl/reliability.py; read by VPL with model.reliability = 'reask').
  """

  a: np.ndarray
  b: np.ndarray
  label: np.ndarray
  mask: np.ndarray
  user_id: np.ndarray
  group: np.ndarray
  true_pref: Optional[np.ndarray] = None
  pooled_pref: Optional[np.ndarray] = None
  divergent: Optional[np.ndarray] = None
  group_pref: Optional[np.ndarray] = None
  condition: Optional[np.ndarray] = None
  pair_id: Optional[np.ndarray] = None
  reliability: Optional[np.ndarray] = None

  def __post_init__(self):
    validate(self)

  @property
  def num_users(self) -> int:
    return self.a.shape[0]

  @property
  def feature_dim(self) -> int:
    return self.a.shape[-1]

  @property
  def pairs_per_user(self) -> np.ndarray:
    return self.mask.sum(axis=1)

  def select_users(self, rows: np.ndarray) -> "UserComparisons":
    """Returns the users at `rows` (indices into the U axis)."""
    take = lambda x: None if x is None else x[rows]
    return dataclasses.replace(
        self, **{f.name: take(getattr(self, f.name)) for f in dataclasses.fields(self)})

  def arrays(self) -> dict[str, np.ndarray]:
    """The fields that are set, as a dict of arrays (what goes to the device)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None}


def validate(data: UserComparisons) -> None:
  """Raises ValueError naming the field, the bad value and the fix."""
  if data.a.ndim != 3:
    raise ValueError(f"UserComparisons.a must be [users, pairs, features]; got shape "
                     f"{data.a.shape}. Group flat rows with `from_flat`.")
  if data.a.shape != data.b.shape:
    raise ValueError(f"UserComparisons.a has shape {data.a.shape} but b has shape "
                     f"{data.b.shape}; both options need the same feature width.")
  users, pairs = data.a.shape[:2]
  for name in ("label", "mask", "true_pref", "pooled_pref", "divergent", "condition",
               "pair_id"):
    x = getattr(data, name)
    if x is not None and x.shape != (users, pairs):
      raise ValueError(f"UserComparisons.{name} has shape {x.shape}; expected "
                       f"{(users, pairs)} to match a's [users, pairs].")
  if data.group_pref is not None and data.group_pref.shape[:2] != (users, pairs):
    raise ValueError(f"UserComparisons.group_pref has shape {data.group_pref.shape}; "
                     f"expected {(users, pairs)} + (groups,).")
  if data.reliability is not None and (
      data.reliability.shape != (users,) or not ((data.reliability >= 0) &
                                                 (data.reliability <= 1)).all()):
    raise ValueError(f"UserComparisons.reliability must be [{users}] values in [0, 1] (one "
                     f"per user); got shape {data.reliability.shape}. Build it with "
                     f"vpl.reliability.attach.")
  for name in ("user_id", "group"):
    if getattr(data, name).shape != (users,):
      raise ValueError(f"UserComparisons.{name} has shape {getattr(data, name).shape}; "
                       f"expected ({users},), one entry per user.")
  for name in ("a", "b"):
    x = getattr(data, name)
    bad = ~np.isfinite(x) & data.mask[..., None]
    if bad.any():
      u, k, d = np.argwhere(bad)[0]
      raise ValueError(f"UserComparisons.{name}[{u}, {k}, {d}] = {x[u, k, d]} (user "
                       f"{data.user_id[u]}): features must be finite. Drop or impute "
                       f"{int(bad.any(-1).sum())} such pairs before building the data.")
  label = np.where(data.mask, data.label, 0.5)
  bad = ~((label >= 0) & (label <= 1))
  if bad.any():
    u, k = np.argwhere(bad)[0]
    raise ValueError(f"UserComparisons.label[{u}, {k}] = {data.label[u, k]} (user "
                     f"{data.user_id[u]}): labels must lie in [0, 1] (1 = a preferred, "
                     f"0 = b preferred, or a probability). Rescale or fix "
                     f"{int(bad.sum())} such labels.")
  if len(np.unique(data.user_id)) != users:
    raise ValueError("UserComparisons.user_id has duplicates; each user must be one row. "
                     "Group flat rows with `from_flat`.")


def from_flat(a, b, label, user_id, group=None) -> UserComparisons:
  """Groups flat per-comparison rows by user into padded `UserComparisons`.

  Args:
    a, b: `[P, D]` features of the two options of each comparison.
    label: `[P]` in [0, 1].
    user_id: `[P]` user of each comparison.
    group: optional `[P]` group of each comparison's user (constant within a user).
  """
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  label, user_id = np.asarray(label, np.float32), np.asarray(user_id)
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f"from_flat: a has shape {a.shape} and b {b.shape}; both must be "
                     f"[comparisons, features] of the same width.")
  for name, x in (("label", label), ("user_id", user_id)):
    if x.shape != (a.shape[0],):
      raise ValueError(f"from_flat: {name} has shape {x.shape}; expected ({a.shape[0]},), "
                       f"one per comparison row.")
  ids, inverse, counts = np.unique(user_id, return_inverse=True, return_counts=True)
  users, width = len(ids), int(counts.max())
  order = np.argsort(inverse, kind="stable")
  slot = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
  rows = inverse[order]
  out_a = np.zeros((users, width, a.shape[1]), np.float32)
  out_b = np.zeros_like(out_a)
  out_label = np.full((users, width), 0.5, np.float32)
  mask = np.zeros((users, width), bool)
  out_a[rows, slot], out_b[rows, slot] = a[order], b[order]
  out_label[rows, slot], mask[rows, slot] = label[order], True
  user_group = np.full(users, -1, np.int32)
  if group is not None:
    group = np.asarray(group)
    user_group[inverse] = group
    if (user_group[inverse] != group).any():
      raise ValueError("from_flat: group differs between comparisons of the same user; "
                       "a user belongs to one group.")
  return UserComparisons(out_a, out_b, out_label, mask, ids, user_group)


def split_users(data: UserComparisons, heldout_fraction: float,
                seed: int) -> tuple[UserComparisons, UserComparisons]:
  """Splits users into (training, held-out), stratified by group so each group is in both."""
  if not 0 < heldout_fraction < 1:
    raise ValueError(f"heldout_fraction = {heldout_fraction}; it must lie in (0, 1).")
  rng = np.random.default_rng(seed)
  heldout = []
  for g in np.unique(data.group):
    members = rng.permutation(np.flatnonzero(data.group == g))
    n = int(round(heldout_fraction * len(members)))
    heldout.extend(members[:max(1, min(n, len(members) - 1))])
  is_heldout = np.zeros(data.num_users, bool)
  is_heldout[heldout] = True
  return data.select_users(np.flatnonzero(~is_heldout)), data.select_users(
      np.flatnonzero(is_heldout))


def check_enough_pairs(data, needed: int, what: str) -> None:
  """Raises when any user has fewer than `needed` pairs, or when there is no user at all.

  `data` is anything with `pairs_per_user` and `user_id` `[U]`: `UserComparisons`, or the
  streamed training users of `vpl.data.streaming.StreamingData`.
  """
  counts = data.pairs_per_user
  if len(counts) == 0:
    raise ValueError(
        f"No user is left to train on, and {what} needs {needed} pairs per user. A filter "
        f"dropped every user (the log says which; e.g. users left with fewer than {needed} "
        f"pairs once shared pairs are withheld, eval.unseen_fraction). Lower the context size "
        f"or the number of targets, or use data with more pairs per user.")
  short = np.flatnonzero(counts < needed)
  if short.size:
    raise ValueError(
        f"{short.size} user(s) have fewer pairs than {what} needs ({needed}); e.g. user "
        f"{data.user_id[short[0]]} has {counts[short[0]]}. Lower the context size or the "
        f"number of targets, or filter such users out before training.")


def split_context_target(data: UserComparisons, num_context: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Picks `num_context` context pairs per user; every other real pair is a target.

  Returns:
    `(context_idx [U, num_context], target_mask [U, K])`: the context pairs' positions and a
    mask of the target pairs, which never overlap the context. With `pair_id`, no asking of a
    question in the context is a target (`shares_question`), so a re-asked question is never
    split between a user's context and targets, and the context holds `num_context`
    different questions (one asking of each, at random) while the user has that many: a
    second asking is no new evidence of the preference, and data asked once has
    `num_context` different questions too. Without `pair_id` the draws are unchanged.
  """
  check_enough_pairs(data, num_context + 1, f"a context of {num_context} plus one target")
  rng = np.random.default_rng(seed)
  noise = np.where(data.mask, rng.random(data.mask.shape), 2.0)
  if data.pair_id is not None:  # later askings of a question go after every first asking
    noise = np.where(data.mask & _asked_before(data.pair_id, noise), 1.0 + noise / 2, noise)
  order = np.argsort(noise, axis=1)
  context_idx = order[:, :num_context]
  target_mask = data.mask.copy()
  np.put_along_axis(target_mask, context_idx, False, axis=1)
  if data.pair_id is not None:
    target_mask &= ~shares_question(data.pair_id, context_idx)
  return context_idx, target_mask


def _asked_before(pair_id_UxK: np.ndarray, noise_UxK: np.ndarray) -> np.ndarray:
  """`[U, K]` True where the same question has a slot of lower noise in the user's row."""
  user_UxK = np.broadcast_to(np.arange(pair_id_UxK.shape[0])[:, None], pair_id_UxK.shape)
  order = np.lexsort((noise_UxK.ravel(), pair_id_UxK.ravel(), user_UxK.ravel()))
  key_Nx2 = np.stack([user_UxK.ravel(), pair_id_UxK.ravel()], 1)[order]
  later = np.zeros(order.size, bool)
  later[1:] = (key_Nx2[1:] == key_Nx2[:-1]).all(1)
  out = np.zeros(order.size, bool)
  out[order] = later
  return out.reshape(pair_id_UxK.shape)


def shares_question(pair_id_UxK: np.ndarray, context_idx_UxN: np.ndarray) -> np.ndarray:
  """`[U, K]` True where a slot asks a question that one of the user's context slots asks."""
  context_UxN = np.take_along_axis(pair_id_UxK, context_idx_UxN, axis=1)
  return (pair_id_UxK[:, :, None] == context_UxN[:, None, :]).any(-1)


def temporal_num_targets(num_pairs: np.ndarray, heldout_fraction: float) -> np.ndarray:
  """How many of a user's latest pairs the temporal split holds out: round(fraction x n), >= 1."""
  if not 0 < heldout_fraction < 1:
    raise ValueError(f"heldout_fraction = {heldout_fraction}; it must lie in (0, 1).")
  return np.maximum(1, np.round(heldout_fraction * np.asarray(num_pairs)).astype(int))


def split_temporal(data: UserComparisons, timestamp: np.ndarray, heldout_fraction: float,
                   num_context: int) -> tuple[UserComparisons, UserComparisons, np.ndarray,
                                              np.ndarray]:
  """Each user's earlier pairs train (and give the context); their latest pairs are targets.

  Per user, pairs are ordered by time (ties keep their order), the latest
  `temporal_num_targets` are held out, and the `num_context` latest of the rest are the
  context a prediction is made from (context pairs were seen in training; targets never).

  Args:
    data: every user.
    timestamp: `[U, K]` time of each pair (padding ignored).
    heldout_fraction: share of each user's pairs held out as targets.
    num_context: context pairs per user at evaluation.

  Returns:
    `(train, evaluated, context_idx [U, num_context], target_mask [U, K])`: `train` holds only
    the earlier pairs (later slots are masked and blanked), `evaluated` every pair in time
    order.
  """
  if timestamp.shape != data.mask.shape:
    raise ValueError(f"timestamp has shape {timestamp.shape}; expected {data.mask.shape}, one "
                     f"per pair slot.")
  counts = data.pairs_per_user
  num_earlier = counts - temporal_num_targets(counts, heldout_fraction)
  short = np.flatnonzero(num_earlier < num_context)
  if short.size:
    raise ValueError(f"{short.size} user(s) have fewer earlier pairs than eval.num_context = "
                     f"{num_context}; e.g. user {data.user_id[short[0]]} has {counts[short[0]]} "
                     f"pairs, {num_earlier[short[0]]} before its targets. Filter such users out "
                     f"or lower eval.num_context.")
  order = np.argsort(np.where(data.mask, timestamp, np.inf), axis=1, kind="stable")
  take = lambda x: np.take_along_axis(x, order[..., None] if x.ndim == 3 else order, axis=1)
  evaluated = dataclasses.replace(data, **{
      f.name: take(getattr(data, f.name)) for f in dataclasses.fields(data)
      if getattr(data, f.name) is not None and getattr(data, f.name).ndim >= 2})
  slot = np.arange(data.mask.shape[1])[None, :]
  earlier = slot < num_earlier[:, None]
  train = dataclasses.replace(
      evaluated, a=np.where(earlier[..., None], evaluated.a, 0).astype(evaluated.a.dtype),
      b=np.where(earlier[..., None], evaluated.b, 0).astype(evaluated.b.dtype),
      label=np.where(earlier, evaluated.label, 0.5).astype(evaluated.label.dtype),
      mask=earlier & evaluated.mask)
  context_idx = num_earlier[:, None] - num_context + np.arange(num_context)[None, :]
  target_mask = evaluated.mask & ~earlier
  return train, evaluated, context_idx, target_mask
