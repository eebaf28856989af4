"""A mixture of K Bradley-Terry rewards, one per latent user group.

See docs/methods.md, 'MaxMin-RLHF'.

The K rewards are independent MLPs held in one module; the mixture weights pi_k are set by
EM, not by gradient steps, so they live in a variable type of their own (`MixtureWeight`) that
the M-step's optimizer leaves frozen. Shape suffixes: B users, N pairs, K clusters, D features.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vpl import losses
from vpl.models import condition_bias
from vpl.models.mlp import MLP


class MixtureWeight(nnx.Variable):
  """log pi_k, the learned prior over clusters: written by EM, never by the optimizer."""


class RewardMixture(nnx.Module):
  """K rewards r_k(s) = MLP_k(s) and the log mixture weights log pi_k; with
  `num_conditions`, the shared position-bias tower (vpl/models/condition_bias.py) on every
  cluster's likelihood, in the E-step and in the M-step's loss alike."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], num_clusters: int, *,
               rngs: nnx.Rngs, num_conditions: int = 0):
    if num_clusters < 1:
      raise ValueError(f"maxmin.num_clusters = {num_clusters}; use at least 1.")
    self.num_clusters = num_clusters
    self.heads = nnx.List(
        [MLP(feature_dim, hidden, 1, rngs=rngs) for _ in range(num_clusters)])
    self.log_pi = MixtureWeight(jnp.full((num_clusters,), -jnp.log(num_clusters)))
    self.condition_bias = condition_bias.make(num_conditions)

  def rewards(self, s_xD: jax.Array) -> jax.Array:
    """Every cluster's reward `[..., K]` of states `[..., D]`."""
    return jnp.stack([head(s_xD)[..., 0] for head in self.heads], axis=-1)

  def rewards_per_head(self, s_xKxD: jax.Array) -> jax.Array:
    """`[..., K]`: head k's reward of the states `s_xKxD[..., k, :]` (each head its own batch)."""
    return jnp.stack([head(s_xKxD[..., k, :])[..., 0] for k, head in enumerate(self.heads)],
                     axis=-1)

  def cluster_log_lik(self, a_BxNxD: jax.Array, b_BxNxD: jax.Array, y_BxN: jax.Array,
                      mask_BxN: jax.Array | None = None,
                      condition_BxN: jax.Array | None = None) -> jax.Array:
    """E-step statistic l_bk = sum over b's pairs of log p(y | a, b, r_k), `[B, K]`; with
    each answer's condition, p is the tower's mixture (an answer the framing explains costs
    a cluster little)."""
    diff_BxNxK = self.rewards(a_BxNxD) - self.rewards(b_BxNxD)
    if condition_BxN is not None:
      diff_BxNxK = condition_bias.apply(self, diff_BxNxK, dict(condition=condition_BxN[..., None]))
    ll_BxNxK = losses.bt_log_likelihood(diff_BxNxK, y_BxN[..., None])
    if mask_BxN is not None:
      ll_BxNxK = jnp.where(mask_BxN[..., None], ll_BxNxK, 0.0)
    return ll_BxNxK.sum(1)

  def posterior(self, context: dict) -> jax.Array:
    """log p(k | context) `[B, K]`: the E-step on the context pairs with prior pi; a set's
    `reliability` w tempers its likelihood (w = 0: the prior pi)."""
    log_lik_BxK = self.cluster_log_lik(context["a"], context["b"], context["label"],
                                       context.get("mask"), context.get("condition"))
    if "reliability" in context:
      log_lik_BxK = log_lik_BxK * context["reliability"][:, None]
    return jax.nn.log_softmax(self.log_pi[...] + log_lik_BxK, axis=-1)

  def __call__(self, context: dict, targets: dict) -> tuple[jax.Array, dict]:
    """Logits of P(a preferred) on the targets under the posterior-weighted mixture.

    P(a) = sum_k p(k | C) sigma(d_k) with d_k = r_k(a) - r_k(b); the logit
    log P(a) - log P(b) is computed as a difference of two logsumexps, so it stays finite
    when a cluster is certain.

    Args:
      context: `a`, `b` `[B, N, D]`, `label` `[B, N]`, optional `mask` `[B, N]`.
      targets: `a`, `b` `[B, T, D]`, optional `condition` `[B, T]` (read by the tower,
        as is the context's).

    Returns:
      `(logits [B, T], aux)`; aux holds `cluster_posterior` `[B, K]`, `cluster` `[B]` (its
      argmax), and `reward_a`, `reward_b` `[B, T]`: the most probable cluster's rewards.
    """
    log_post_BxK = self.posterior(context)
    reward_a_BxTxK, reward_b_BxTxK = self.rewards(targets["a"]), self.rewards(targets["b"])
    diff_BxTxK = reward_a_BxTxK - reward_b_BxTxK
    log_post_Bx1xK = log_post_BxK[:, None, :]
    logits_BxT = (jax.nn.logsumexp(log_post_Bx1xK + jax.nn.log_sigmoid(diff_BxTxK), -1) -
                  jax.nn.logsumexp(log_post_Bx1xK + jax.nn.log_sigmoid(-diff_BxTxK), -1))
    cluster_B = jnp.argmax(log_post_BxK, axis=-1)
    pick = lambda r_BxTxK: jnp.take_along_axis(r_BxTxK, cluster_B[:, None, None], -1)[..., 0]
    aux = dict(cluster_posterior=jnp.exp(log_post_BxK), cluster=cluster_B,
               reward_a=pick(reward_a_BxTxK), reward_b=pick(reward_b_BxTxK))
    return condition_bias.apply(self, logits_BxT, targets), aux
