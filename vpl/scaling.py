"""Putting rewards of different users, latents or clusters on one scale.

(docs/methods.md, 'Reward scaling')

A Bradley-Terry reward is identified only up to an additive constant (and, across models
trained separately, up to its scale), so r_k(s) of two clusters, r(s, z) of two latents or
r_u(s) of two users cannot be compared as they are. Two normalisations against a reference
set S of items (e.g. states drawn uniformly from the task's state box):

- VPL-SPO: r~(s) = mean_{s' in S} sigma(r(s) - r(s')), in [0, 1]: the expected probability
  that s beats a reference item. Invariant to adding a constant to r; a positive rescaling of
  r keeps the order of r~ but not its values (as the scale grows, r~ tends to the fraction
  of S that s beats).
- z-score: (r(s) - mean_S r) / std_S r: invariant to any positive affine map of r.

Every function takes rewards with trailing "which reward" axes (`[..., E]`: K clusters, Z
latents, U users) so one call scales them all, each against its own values on S.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

RewardFn = Callable[[jax.Array], jax.Array]  # states [N, D] -> rewards [N, *E]

SCALINGS = ("spo", "zscore")


def spo(r_NxE: jax.Array, r_ref_MxE: jax.Array, *, chunk: int = 4096) -> jax.Array:
  """SPO-scaled rewards `[N, *E]`: mean over the M reference rewards of sigma(r - r_ref)."""
  r_NxE, r_ref_MxE = jnp.asarray(r_NxE), jnp.asarray(r_ref_MxE)
  # Chunks over N bound the [n, M, *E] intermediate.
  parts = [jax.nn.sigmoid(r_NxE[i:i + chunk, None] - r_ref_MxE[None]).mean(1)
           for i in range(0, max(r_NxE.shape[0], 1), chunk)]
  return jnp.concatenate(parts)


def zscore(r_NxE: jax.Array, r_ref_MxE: jax.Array) -> jax.Array:
  """z-scored rewards `[N, *E]`, with the mean and std of the reference rewards."""
  r_ref_MxE = jnp.asarray(r_ref_MxE)
  std = r_ref_MxE.std(0)
  return (jnp.asarray(r_NxE) - r_ref_MxE.mean(0)) / jnp.maximum(std, 1e-12)


def scale_rewards(kind: str, r_NxE: jax.Array, r_ref_MxE: jax.Array) -> jax.Array:
  """`spo` or `zscore` of `r_NxE` against the reference rewards."""
  if kind == "spo":
    return spo(r_NxE, r_ref_MxE)
  if kind == "zscore":
    return zscore(r_NxE, r_ref_MxE)
  raise ValueError(f"scaling = {kind!r} is not a reward scaling; choose one of {SCALINGS}.")


def scale(kind: str, reward_fn: RewardFn, items_NxD: jax.Array,
          reference_MxD: jax.Array) -> jax.Array:
  """Scaled rewards of `items` under `reward_fn`, normalised on `reference` items.

  Args:
    kind: 'spo' or 'zscore'.
    reward_fn: states `[N, D]` -> rewards `[N, *E]`, e.g. `mixture.rewards` (E = K
      clusters), `lambda s: vpl_model.reward(s[:, None], z_ZxL[None])` (E = Z latents), or a
      single reward `[N]`.
    items_NxD: the states to score.
    reference_MxD: the comparison set S.

  Returns:
    `[N, *E]` scaled rewards.
  """
  return scale_rewards(kind, reward_fn(items_NxD), reward_fn(reference_MxD))


def spo_scale(reward_fn: RewardFn, items_NxD: jax.Array, reference_MxD: jax.Array) -> jax.Array:
  """VPL-SPO r~(s) in [0, 1] of `items` against `reference` (see `scale`)."""
  return scale("spo", reward_fn, items_NxD, reference_MxD)
