"""A position/framing-bias tower shared by all users: answers given by how a question was put.

With `model.condition_bias`, every method's P(a preferred) for an answer given under
condition c (0 = a shown first, 1 = b shown first, or any code below `model.num_conditions`)
is a mixture, the generative story of a constructed answer:

  P(a | c) = w_genuine[c] * sigmoid(logit) + w_a[c],
  (w_genuine, w_a, w_b)[c] = softmax(theta[c]),

i.e. with probability w_a[c] + w_b[c] the answer is made from the framing (a with w_a, b
with w_b) and otherwise it follows the user's reward. theta `[C, 3]` is one small table for
everyone, so the first-position effect is learned once instead of being personalised into
each user's reward. The method then sees logit(P) (`apply`), so its loss is unchanged (the
Bradley-Terry NLL of logit(P) is the mixture's NLL). theta starts at (0, -4, -4): about 2% of
answers by framing, so an unbiased model starts where it would without the tower.
Shape suffixes: C conditions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

INIT = (0.0, -4.0, -4.0)


class ConditionBias(nnx.Module):
  """theta `[C, 3]`: the per-condition logits of (genuine, framing says a, framing says b)."""

  def __init__(self, num_conditions: int):
    self.theta = nnx.Param(jnp.tile(jnp.asarray(INIT, jnp.float32), (num_conditions, 1)))

  def __call__(self, logit: jax.Array, condition: jax.Array) -> jax.Array:
    """logit(P(a | c)) for logits of the users' rewards and integer conditions (same shape)."""
    log_w = jax.nn.log_softmax(self.theta[...], -1)[condition]  # [..., 3]
    log_p = jnp.logaddexp(log_w[..., 0] + jax.nn.log_sigmoid(logit), log_w[..., 1])
    log_q = jnp.logaddexp(log_w[..., 0] + jax.nn.log_sigmoid(-logit), log_w[..., 2])
    return log_p - log_q


def make(num_conditions: int):
  """The tower for `num_conditions` codes, or None (off) when it is 0.

  nnx.data: a plain None would make the attribute static in the model that holds it.
  """
  return nnx.data(ConditionBias(num_conditions) if num_conditions else None)


def apply(model: nnx.Module, logit: jax.Array, pairs: dict) -> jax.Array:
  """`logit` through the model's bias tower when it has one and `pairs` carry a condition."""
  tower = getattr(model, "condition_bias", None)
  if tower is None or "condition" not in pairs:
    return logit
  return tower(logit, pairs["condition"])


def context_link(model: nnx.Module, context: dict):
  """For a likelihood of the context answers under many users at once (logits `[B, M, N]`,
  pref.atom_posterior): the model's tower on each answer's condition, or None without a tower
  or conditions. An answer the framing explains then costs a candidate little, instead of
  the full -log sigmoid of its reward."""
  if getattr(model, "condition_bias", None) is None or "condition" not in context:
    return None
  framed = dict(condition=context["condition"][:, None, :])
  return lambda logit_BxMxN: apply(model, logit_BxMxN, framed)


def with_coin(logit: jax.Array, reliability: jax.Array) -> jax.Array:
  """logit(w sigmoid(logit) + (1 - w) / 2): the answer a user of reliability w gives
  (vpl/reliability.py: with probability 1 - w they have no opinion and answer by a coin)."""
  w = jnp.asarray(reliability, logit.dtype)
  log_coin = jnp.log1p(-w) + jnp.log(0.5).astype(logit.dtype)
  log_p = jnp.logaddexp(jnp.log(w) + jax.nn.log_sigmoid(logit), log_coin)
  log_q = jnp.logaddexp(jnp.log(w) + jax.nn.log_sigmoid(-logit), log_coin)
  return log_p - log_q


def answers(logit_BxT: jax.Array, context: dict, targets: dict) -> jax.Array:
  """A method's prediction of the answers given (the targets carry their conditions, which
  the tower has read): with a per-user `reliability` in the context, the coin of an
  unreliable user mixed in. Without the targets' conditions the prediction is the user's own
  preference and is returned unchanged (evaluate.predict_users(frame_targets=False))."""
  if "reliability" not in context or "condition" not in targets:
    return logit_BxT
  return with_coin(logit_BxT, context["reliability"][:, None])


def position_effect(theta_Cx3: np.ndarray) -> dict:
  """What the tower learned, for conditions 0 (a first) and 1 (b first).

  Returns:
    `first_rate`: P(the option shown first is chosen | the user's rewards tie), averaged over
    the two orders: w_genuine / 2 + w_first; `framing_share`: the share of answers given by
    the framing, w_a + w_b, averaged over the two orders; `weights`: (w_genuine, w_a, w_b)
    per condition.
  """
  theta = np.asarray(theta_Cx3, np.float64)
  w = np.exp(theta - theta.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  first = [w[0, 0] / 2 + w[0, 1], w[1, 0] / 2 + w[1, 2]]
  return dict(first_rate=float(np.mean(first)),
              framing_share=float(np.mean(w[:2, 1] + w[:2, 2])),
              weights=w.tolist())
