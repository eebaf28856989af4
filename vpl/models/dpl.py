"""Distributional preference learning (Siththaranjan et al., ICLR 2024).

See docs/methods.md, 'DPL'.

Each item's reward is a distribution rather than a number; disagreement between users
(hidden context) shows up as its spread. Neither model infers anything per user.

- Mean-variance: r(s) ~ N(mu(s), sd(s)^2), so p(a > b) = Phi((mu_a - mu_b) / sqrt(sd_a^2 +
  sd_b^2)).
- Categorical: r(s) is a distribution over `n` atoms evenly spaced in [0, 1], and
  p(a > b) = P(r_a > r_b) + P(r_a = r_b) / 2.

Both return log p(a > b) and log p(b > a) computed separately in log space, so that the logit
log p - log(1 - p) and the log-likelihood stay finite when p is within float error of 0 or 1.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.scipy.special import log_ndtr

from vpl.models import condition_bias
from vpl.models.mlp import MLP

# Keeps the standard deviation away from 0, where the mean-variance z-score is undefined.
MIN_STD = 1e-3


def mean_variance_log_probs(mu_a: jax.Array, std_a: jax.Array, mu_b: jax.Array,
                            std_b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(log p(a > b), log p(b > a))` for independent Gaussian rewards, elementwise."""
  z = (mu_a - mu_b) / jnp.sqrt(std_a**2 + std_b**2)
  return log_ndtr(z), log_ndtr(-z)


def categorical_log_probs(log_p_a_xN: jax.Array,
                          log_p_b_xN: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(log p(a > b), log p(b > a))` for independent rewards on the same ordered atoms.

  Args:
    log_p_a_xN, log_p_b_xN: log-probabilities `[..., N]` of each atom (atoms in increasing
      order).

  Returns:
    log of P(r_a > r_b) + P(r_a = r_b) / 2, and of the same with a and b exchanged.
  """
  n = log_p_a_xN.shape[-1]
  i, j = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
  # Weight of atom pair (i for a, j for b) in "a wins": 1 above the diagonal, 1/2 on it.
  log_w_NxN = jnp.where(i > j, 0.0, jnp.where(i == j, jnp.log(0.5), -jnp.inf))
  joint_xNxN = log_p_a_xN[..., :, None] + log_p_b_xN[..., None, :]
  log_win = jax.nn.logsumexp(joint_xNxN + log_w_NxN, axis=(-2, -1))
  log_lose = jax.nn.logsumexp(joint_xNxN + log_w_NxN.T, axis=(-2, -1))
  return log_win, log_lose


def preference_log_likelihood(log_win: jax.Array, log_lose: jax.Array,
                              label: jax.Array) -> jax.Array:
  """log p(label) with label = P(a preferred) in [0, 1] (soft labels allowed)."""
  return label * log_win + (1 - label) * log_lose


class MeanVarianceReward(nnx.Module):
  """(mu(s), sd(s)) = MLP(s) with sd = softplus + MIN_STD."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], *, num_conditions: int = 0,
               rngs: nnx.Rngs):
    self.net = MLP(feature_dim, hidden, 2, rngs=rngs)
    self.condition_bias = condition_bias.make(num_conditions)

  def __call__(self, s_xD: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation `[...]` of the reward of states `[..., D]`."""
    out = self.net(s_xD)
    return out[..., 0], jax.nn.softplus(out[..., 1]) + MIN_STD

  def compare(self, a_xD: jax.Array, b_xD: jax.Array) -> tuple[jax.Array, jax.Array, dict]:
    """`(log p(a > b), log p(b > a), aux)`; aux has each item's reward mean and std."""
    mu_a, std_a = self(a_xD)
    mu_b, std_b = self(b_xD)
    log_win, log_lose = mean_variance_log_probs(mu_a, std_a, mu_b, std_b)
    return log_win, log_lose, dict(reward_a=mu_a, reward_b=mu_b, std_a=std_a, std_b=std_b)


class CategoricalReward(nnx.Module):
  """p(r(s) = atom_i) = softmax(MLP(s))_i over `num_atoms` atoms evenly spaced in [0, 1]."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], num_atoms: int, *,
               num_conditions: int = 0, rngs: nnx.Rngs):
    if num_atoms < 2:
      raise ValueError(f"dpl.num_atoms = {num_atoms}; a categorical reward needs at least "
                       f"2 atoms (the paper uses 10).")
    self.num_atoms = num_atoms
    self.net = MLP(feature_dim, hidden, num_atoms, rngs=rngs)
    self.condition_bias = condition_bias.make(num_conditions)

  @property
  def atoms(self) -> jax.Array:
    return jnp.linspace(0.0, 1.0, self.num_atoms)

  def __call__(self, s_xD: jax.Array) -> jax.Array:
    """Log-probabilities `[..., num_atoms]` of the reward of states `[..., D]`."""
    return jax.nn.log_softmax(self.net(s_xD), axis=-1)

  def moments(self, log_p_xN: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation of the reward distribution."""
    p_xN = jnp.exp(log_p_xN)
    mean = (p_xN * self.atoms).sum(-1)
    var = (p_xN * (self.atoms - mean[..., None]) ** 2).sum(-1)
    return mean, jnp.sqrt(jnp.maximum(var, 0.0))

  def compare(self, a_xD: jax.Array, b_xD: jax.Array) -> tuple[jax.Array, jax.Array, dict]:
    """`(log p(a > b), log p(b > a), aux)`; aux has reward mean, std and entropy."""
    log_p_a, log_p_b = self(a_xD), self(b_xD)
    log_win, log_lose = categorical_log_probs(log_p_a, log_p_b)
    mu_a, std_a = self.moments(log_p_a)
    mu_b, std_b = self.moments(log_p_b)
    entropy = lambda lp: -(jnp.exp(lp) * lp).sum(-1)
    return log_win, log_lose, dict(reward_a=mu_a, reward_b=mu_b, std_a=std_a, std_b=std_b,
                                   entropy_a=entropy(log_p_a), entropy_b=entropy(log_p_b))
