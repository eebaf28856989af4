"""Which comparisons are the same question: pair identities, and unseen-item targets.

Two comparisons are the same pair when they compare the same two items, in either order
(identical feature rows). On tasks where users label pairs from one shared pool (and on real
data) a held-out user's target may be a pair that training users labelled; the unseen-items
score counts only targets no training user saw. `withhold_shared` makes such targets exist on
shared-pool tasks by removing a fraction of the shared pairs from every training user.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vpl.data.comparisons import UserComparisons


def pair_ids(*datasets: UserComparisons) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Identifies each real pair, up to the order of its items, across `datasets` jointly.

  Returns:
    `(ids, flipped)`, one `[U, K]` array per dataset: `ids` is equal for identical (a, b)
    rows (and for (b, a)), -1 on padding; `flipped` is True where the stored order is (b, a)
    of the canonical one, so the label reads as 1 - label.
  """
  canon, where = [], []
  for data in datasets:
    u, k = np.nonzero(data.mask)
    a, b = data.a[u, k], data.b[u, k]
    differs = a != b
    first = differs.argmax(axis=1)
    rows = np.arange(len(u))
    flip = differs.any(1) & (a[rows, first] > b[rows, first])
    canon.append(np.concatenate([np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)],
                                axis=1))
    where.append((u, k, flip))
  stacked = np.concatenate(canon) if canon else np.zeros((0, 0))
  _, inverse = np.unique(stacked, axis=0, return_inverse=True)
  inverse = inverse.reshape(-1)
  ids, flips, offset = [], [], 0
  for data, (u, k, flip) in zip(datasets, where):
    pid = np.full(data.mask.shape, -1, np.int64)
    pid[u, k] = inverse[offset:offset + len(u)]
    f = np.zeros(data.mask.shape, bool)
    f[u, k] = flip
    ids.append(pid)
    flips.append(f)
    offset += len(u)
  return ids, flips


def compact(data: UserComparisons) -> UserComparisons:
  """Each user's real pairs moved to the front of their row, in their order."""
  order = np.argsort(~data.mask, axis=1, kind="stable")
  take = lambda x: np.take_along_axis(x, order[..., None] if x.ndim == 3 else order, axis=1)
  return dataclasses.replace(data, **{
      f.name: take(getattr(data, f.name)) for f in dataclasses.fields(data)
      if getattr(data, f.name) is not None and getattr(data, f.name).ndim >= 2})


def withhold_shared(train: UserComparisons, heldout: UserComparisons, fraction: float,
                    rng: np.random.Generator) -> tuple[UserComparisons, dict]:
  """Removes `fraction` of the shared pairs (labelled by two or more users) from `train`.

  Returns:
    The training users without those pairs (compacted), and a report with the counts.
  """
  if not 0 <= fraction < 1:
    raise ValueError(f"eval.unseen_fraction = {fraction}; it must lie in [0, 1).")
  (train_ids, heldout_ids), _ = pair_ids(train, heldout)
  everyone = np.concatenate([train_ids[train.mask], heldout_ids[heldout.mask]])
  users = np.concatenate([np.nonzero(train.mask)[0],
                          train.num_users + np.nonzero(heldout.mask)[0]])
  user_pair = np.unique(np.stack([everyone, users], 1), axis=0)
  users_per_pair = np.bincount(user_pair[:, 0], minlength=everyone.max(initial=-1) + 1)
  shared = np.flatnonzero(users_per_pair >= 2)
  withheld = rng.permutation(shared)[:int(round(fraction * len(shared)))]
  drop = np.isin(train_ids, withheld) & train.mask
  report = dict(shared_pairs=int(len(shared)), withheld_pairs=int(len(withheld)),
                training_labels_removed=int(drop.sum()))
  if not drop.any():
    return train, report
  kept = dataclasses.replace(train, mask=train.mask & ~drop,
                             label=np.where(drop, 0.5, train.label).astype(train.label.dtype))
  return compact(kept), report


def unseen_targets(train: UserComparisons, evaluated: UserComparisons,
                   target_mask: np.ndarray) -> np.ndarray:
  """`[U, K]` the targets of `evaluated` whose pair no training user labelled."""
  (train_ids, eval_ids), _ = pair_ids(train, evaluated)
  return target_mask & ~np.isin(eval_ids, train_ids[train.mask])
