"""Embedding tasks modelled on the VPL paper's LLM experiments, without a language model.

Items are d-dimensional embeddings the generator draws (standing in for frozen LLM embeddings
of responses); each user type's reward is linear along its own attribute direction. Every
user labels pairs drawn from one shared pool, as annotators of a preference data set do.

- `ufp` (UltraFeedback-P-like, arXiv:2408.10075 s. 6): `num_types` user types, type k prefers
  the item that scores higher on attribute k. Pairs on which every type agrees carry no
  information about the type and are removed from the pool, as the paper does; the count is
  reported in the task's `filter_report`.
- `pets` (Pets-like): two types who agree on the main attribute ("quality") and disagree on
  one controversial attribute ("cats or dogs"); they agree on most pairs.
- `unimodal`: one type for everyone, the sanity check where personalisation should cost
  nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vpl.data.labelling import Task, assign_groups, check_temperature, label_pairs


def _directions(num: int, dim: int, rng) -> np.ndarray:
  """`num` orthonormal directions `[num, dim]` drawn at random."""
  if dim < num:
    raise ValueError(f"dim = {dim} is smaller than the {num} attribute directions it must "
                     f"hold; use dim >= {num}.")
  q, _ = np.linalg.qr(rng.standard_normal((dim, num)))
  return q.T.astype(np.float32)


def _embedding_task(name: str, weights_GxD: np.ndarray, shares: Sequence[float], *,
                    num_users: int, pairs_per_user: int, pool_pairs: int, temperature: float,
                    drop_agreeing: bool, rng) -> Task:
  check_temperature(temperature)
  dim = weights_GxD.shape[1]
  group = assign_groups(num_users, shares, rng)
  a_PxD = rng.standard_normal((pool_pairs, dim)).astype(np.float32)
  b_PxD = rng.standard_normal((pool_pairs, dim)).astype(np.float32)
  diff_GxP = weights_GxD @ (a_PxD - b_PxD).T
  sign_GxP = np.sign(diff_GxP)
  divergent_P = (sign_GxP.max(0) > 0) & (sign_GxP.min(0) < 0)
  keep = divergent_P if drop_agreeing else np.ones(pool_pairs, bool)
  report = dict(pool_pairs=pool_pairs, dropped_all_types_agree=int((~keep).sum()),
                kept=int(keep.sum()))
  if keep.sum() < pairs_per_user:
    raise ValueError(f"{name}: only {int(keep.sum())} of pool_pairs = {pool_pairs} pairs "
                     f"divide the user types, fewer than pairs_per_user = {pairs_per_user}; "
                     f"raise pool_pairs.")
  a_PxD, b_PxD, diff_GxP = a_PxD[keep], b_PxD[keep], diff_GxP[:, keep]
  # Each user labels pairs_per_user distinct pairs of the shared pool.
  pick_UxK = np.argsort(rng.random((num_users, len(a_PxD))), axis=1)[:, :pairs_per_user]
  data = label_pairs(a_PxD[pick_UxK], b_PxD[pick_UxK], diff_GxP[:, pick_UxK], group, shares,
                     temperature, rng)
  weights = np.asarray(weights_GxD)

  def reward(s, k):
    return np.asarray(s, np.float32) @ weights[k]

  return Task(name, data, reward, tuple(float(s) for s in shares), filter_report=report)


def ufp(*, num_types: int = 4, shares: Sequence[float] | None = None, dim: int = 64,
        num_users: int = 1000, pairs_per_user: int = 32, pool_pairs: int = 4000,
        temperature: float = 0.0, drop_agreeing: bool = True, seed: int = 0) -> Task:
  """UltraFeedback-P-like: type k prefers the item higher on attribute k.

  Args:
    num_types: number of user types (2 and 4 in the paper).
    shares: fraction of users of each type; equal when None.
    dim: embedding width (64 by default; 768, an LLM's width, also works).
    num_users, pairs_per_user: size of the data set.
    pool_pairs: pairs drawn before the ones every type agrees on are removed.
    temperature: Bradley-Terry temperature of the labels (0 = noiseless).
    drop_agreeing: remove the pairs every type orders alike, as the paper does (with two
      types, one type's labels are then the other's flipped).
    seed: generator seed.
  """
  shares = tuple(shares) if shares is not None else (1.0 / num_types,) * num_types
  if len(shares) != num_types:
    raise ValueError(f"shares has {len(shares)} entries but num_types = {num_types}; "
                     f"give one share per type.")
  rng = np.random.default_rng(seed)
  return _embedding_task(f"ufp{num_types}", _directions(num_types, dim, rng), shares,
                         num_users=num_users, pairs_per_user=pairs_per_user,
                         pool_pairs=pool_pairs, temperature=temperature,
                         drop_agreeing=drop_agreeing, rng=rng)


def pets(*, controversy: float = 0.5, shares: Sequence[float] = (0.5, 0.5), dim: int = 64,
         num_users: int = 1000, pairs_per_user: int = 32, pool_pairs: int = 4000,
         temperature: float = 0.0, seed: int = 0) -> Task:
  """Pets-like: both types want quality; they disagree on the controversial attribute.

  Type 0's reward is quality + controversy * attribute, type 1's quality - controversy *
  attribute; they disagree on a pair exactly when its attribute difference outweighs its
  quality difference, a fraction (2 / pi) arctan(controversy) of pairs (0.30 at 0.5).

  Args:
    controversy: weight of the attribute the types disagree on, relative to quality.
    shares, dim, num_users, pairs_per_user, pool_pairs, temperature, seed: as in `ufp`.
  """
  if len(shares) != 2:
    raise ValueError(f"shares = {tuple(shares)}; pets has exactly two user types.")
  rng = np.random.default_rng(seed)
  quality, attribute = _directions(2, dim, rng)
  weights = np.stack([quality + controversy * attribute, quality - controversy * attribute])
  return _embedding_task("pets", weights, shares, num_users=num_users,
                         pairs_per_user=pairs_per_user, pool_pairs=pool_pairs,
                         temperature=temperature, drop_agreeing=False, rng=rng)


def unimodal(*, dim: int = 64, num_users: int = 1000, pairs_per_user: int = 32,
             pool_pairs: int = 4000, temperature: float = 0.0, seed: int = 0) -> Task:
  """Every user shares one linear reward: nothing to personalise.

  Args: as in `ufp`.
  """
  rng = np.random.default_rng(seed)
  return _embedding_task("unimodal", _directions(1, dim, rng), (1.0,), num_users=num_users,
                         pairs_per_user=pairs_per_user, pool_pairs=pool_pairs,
                         temperature=temperature, drop_agreeing=False, rng=rng)
