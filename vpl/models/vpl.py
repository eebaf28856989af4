"""Variational Preference Learning (Poddar et al. 2024, arXiv:2408.10075).

See docs/methods.md, 'VPL'.

An encoder maps a user's context set of N labelled pairs to a diagonal Gaussian q(z | C);
a decoder gives the user's reward r(s, z). Shape suffixes: B sets, N context pairs, T target
pairs, D features, H embedding width, L latent dimensions.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vpl.models import condition_bias, latent_atoms
from vpl.models.mlp import MLP, output_l2, with_linear


def masked_mean(x_BxNxH: jax.Array, mask_BxN: Optional[jax.Array]) -> jax.Array:
  if mask_BxN is None:
    return x_BxNxH.mean(axis=1)
  w_BxNx1 = mask_BxN[..., None].astype(x_BxNxH.dtype)
  return (x_BxNxH * w_BxNx1).sum(1) / jnp.maximum(w_BxNx1.sum(1), 1.0)


class SetEncoder(nnx.Module):
  """q(z | C): a shared pair encoder, permutation-invariant pooling, Gaussian heads.

  Each labelled pair is embedded as g([w, l, |2y - 1|]) with w = y a + (1 - y) b and
  l = y b + (1 - y) a: for a hard label, the preferred option first; for a soft one, the
  label-weighted blend, with the label's confidence beside it. Swapping a and b while
  flipping the label gives the same embedding, so no pair order is assumed, and g runs once
  per pair.
  With `layout = "deepsets"` only one layer (and its nonlinearity) runs per pair and the
  hidden layers run once per set after pooling (Zaheer et al., 2017): at 16 pairs per set the
  encoder then costs about a sixteenth of the pairwise one.
  Pooling is a mean over the set, optionally after one self-attention layer (the paper's LLM
  variant); neither uses positions, so the set's order does not matter. `bayes` pooling
  instead gives every pair its own Gaussian factor (a mean and a precision per latent
  dimension) and multiplies them with the N(0, I) prior: precision = 1 + sum of the pairs'
  precisions, mean = their precision-weighted mean over that total (Bayesian context
  aggregation, Volpp et al., ICLR 2021). Each answered pair then adds precision, so the
  posterior variance shrinks with every answer, which a mean cannot do (it does not know
  how many pairs it averaged).
  """

  def __init__(self, feature_dim: int, hidden: Sequence[int], embed_dim: int,
               latent_dim: int, *, pooling: str = "mean", num_heads: int = 4,
               layout: str = "pairwise", activation: str = "gelu", rngs: nnx.Rngs):
    if pooling not in ("mean", "attention", "bayes"):
      raise ValueError(f"model.pooling = {pooling!r}; choose 'mean', 'attention' or 'bayes'.")
    if layout not in ("pairwise", "deepsets"):
      raise ValueError(f"model.encoder = {layout!r}; choose 'pairwise' (the hidden layers on "
                       f"every pair) or 'deepsets' (one layer per pair, the rest per set).")
    if layout == "deepsets" and pooling == "bayes":
      raise ValueError("model.encoder = 'deepsets' pools before the heads, but model.pooling = "
                       "'bayes' needs a head per pair; use model.encoder = 'pairwise' with it.")
    self.bayes = pooling == "bayes"
    self.deepsets = layout == "deepsets"
    # pairwise: g = MLP(hidden) on each pair, pool, head(hidden[-1:]). deepsets: one layer
    # (with its nonlinearity) on each pair, pool, then the hidden layers once per set.
    pair_hidden, head_hidden = (((), tuple(hidden)) if self.deepsets
                                else (tuple(hidden), tuple(hidden[-1:])))
    self.pair = MLP(2 * feature_dim + 1, pair_hidden, embed_dim, activation=activation,
                    rngs=rngs)
    # nnx.data: attention is a submodule or None; a plain None would make the attribute
    # static, and assigning the module below would then raise.
    self.attention = nnx.data(None)
    if pooling == "attention":
      if embed_dim % num_heads:
        raise ValueError(f"model.embed_dim = {embed_dim} is not divisible by "
                         f"model.num_heads = {num_heads}; make it a multiple.")
      self.attention = nnx.MultiHeadAttention(
          num_heads=num_heads, in_features=embed_dim, decode=False, rngs=rngs)
    self.head = MLP(embed_dim, head_hidden, 2 * latent_dim, activation=activation, rngs=rngs)

  def __call__(self, a_BxNxD: jax.Array, b_BxNxD: jax.Array, y_BxN: jax.Array,
               mask_BxN: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    """Returns the posterior's mean and log-variance, each `[B, L]`."""
    y_BxNx1 = y_BxN[..., None]
    preferred_BxNxD = y_BxNx1 * a_BxNxD + (1 - y_BxNx1) * b_BxNxD
    other_BxNxD = y_BxNx1 * b_BxNxD + (1 - y_BxNx1) * a_BxNxD
    h_BxNxH = self.pair(jnp.concatenate(
        [preferred_BxNxD, other_BxNxD, jnp.abs(2 * y_BxNx1 - 1)], -1))
    if self.deepsets:
      h_BxNxH = self.pair.activation(h_BxNxH)
    if self.attention is not None:
      attn_mask = None
      if mask_BxN is not None:
        attn_mask = nnx.make_attention_mask(mask_BxN, mask_BxN)
      h_BxNxH = h_BxNxH + self.attention(h_BxNxH, mask=attn_mask)
    if self.bayes:
      # Per pair: a mean and a log-precision; products of Gaussians with the N(0, I) prior.
      mu_BxNxL, log_prec_BxNxL = jnp.split(self.head(h_BxNxH), 2, axis=-1)
      w_BxNx1 = (jnp.ones(h_BxNxH.shape[:2], h_BxNxH.dtype) if mask_BxN is None
                 else mask_BxN.astype(h_BxNxH.dtype))[..., None]
      prec_BxNxL = jnp.exp(jnp.clip(log_prec_BxNxL, -10.0, 10.0)) * w_BxNx1
      total_BxL = 1.0 + prec_BxNxL.sum(1)
      return (prec_BxNxL * mu_BxNxL).sum(1) / total_BxL, -jnp.log(total_BxL)
    mu_BxL, log_var_BxL = jnp.split(self.head(masked_mean(h_BxNxH, mask_BxN)), 2, axis=-1)
    return mu_BxL, log_var_BxL


def _hidden(layers, activation, x_a, x_b, activate_first: bool = False):
  """The activations after `layers` for a and b, each in its own pass (one batch of both
  would be no faster on a CPU and would sum a's and b's float terms in one order)."""
  out = []
  for x in (x_a, x_b):
    if activate_first:
      x = activation(x)
    for layer in layers:
      x = activation(layer(x))
    out.append(x)
  return out


class ProductDecoder(nnx.Module):
  """r(s, z) = <phi(s), psi(z)>: item features times user weights.

  A concatenating MLP must learn the multiplicative interaction between s and z that a
  user-specific reward is (type k scores along its own direction of s); a product of an item
  embedding and a latent-dependent weight vector has it built in, like PReF's factorisation
  with z in place of the user's coefficients. phi keeps a bias unit, so an offset shared by
  all users costs nothing.
  """

  def __init__(self, feature_dim: int, latent_dim: int, hidden: Sequence[int], width: int, *,
               activation: str = "gelu", linear: bool = False, rngs: nnx.Rngs):
    self.item = MLP(feature_dim, hidden, width, activation=activation, rngs=rngs)
    self.user = MLP(latent_dim, hidden[-1:], width, activation=activation, rngs=rngs)
    # With `linear`, phi(s) = MLP(s) + A s: a linear path beside the MLP (model.decoder =
    # "product_linear"); loss.nonlinear_l2 then makes the MLP's part pay for its size.
    self.linear = (nnx.Linear(feature_dim, width, use_bias=False, rngs=rngs) if linear
                   else None)

  def embed(self, s_xD: jax.Array) -> jax.Array:
    """phi(s) `[..., width]`."""
    return with_linear(self.item, self.linear, s_xD)

  def nonlinear_l2(self) -> jax.Array:
    """Squared norm of the item MLP's output kernel: the size of phi's non-linear part."""
    return output_l2(self.item)

  def __call__(self, s_xD: jax.Array, z_xL: jax.Array) -> jax.Array:
    return (self.embed(s_xD) * self.user(z_xL)).sum(-1)

  def item_pair(self, a_xD: jax.Array, b_xD: jax.Array):
    """(phi(a) - phi(b), phi(a), phi(b)) `[..., width]`; the difference leaves out phi's last
    bias, which cancels."""
    *hidden, last = self.item.layers
    h_a, h_b = _hidden(hidden, self.item.activation, a_xD, b_xD)
    diff, e_a, e_b = (h_a - h_b) @ last.kernel[...], last(h_a), last(h_b)
    if self.linear is not None:
      diff = diff + self.linear(a_xD - b_xD)
      e_a, e_b = e_a + self.linear(a_xD), e_b + self.linear(b_xD)
    return diff, e_a, e_b

  def pair(self, a_xD: jax.Array, b_xD: jax.Array, z_xL: jax.Array):
    """(r(a) - r(b), r(a), r(b)); the difference leaves out phi's last bias, which cancels."""
    user = self.user(z_xL)
    return tuple((x * user).sum(-1) for x in self.item_pair(a_xD, b_xD))


class ConcatDecoder(nnx.Module):
  """r(s, z) = MLP([s, z]), the paper's decoder.

  The first layer is applied as s W_s + z W_z + b, the two blocks of its kernel: the same
  function as on the concatenation, but z W_z is computed once per latent and broadcast over
  that user's items instead of once per item.
  """

  def __init__(self, feature_dim: int, latent_dim: int, hidden: Sequence[int], *,
               activation: str = "gelu", rngs: nnx.Rngs):
    self.feature_dim = feature_dim
    self.mlp = MLP(feature_dim + latent_dim, hidden, 1, activation=activation, rngs=rngs)

  def _first(self, s_xD: jax.Array, z_part: jax.Array) -> jax.Array:
    """The first layer's output: s W_s plus `z_part` = z W_z + b (`_z_part`)."""
    return s_xD @ self.mlp.layers[0].kernel[...][:self.feature_dim] + z_part

  def _z_part(self, z_xL: jax.Array) -> jax.Array:
    first = self.mlp.layers[0]
    return z_xL @ first.kernel[...][self.feature_dim:] + first.bias[...]

  def __call__(self, s_xD: jax.Array, z_xL: jax.Array) -> jax.Array:
    x = self._first(s_xD, self._z_part(z_xL))
    for layer in self.mlp.layers[1:]:
      x = layer(self.mlp.activation(x))
    return x[..., 0]

  def pair(self, a_xD: jax.Array, b_xD: jax.Array, z_xL: jax.Array):
    """(r(a) - r(b), r(a), r(b)); the difference leaves out the last bias, which cancels."""
    _, *hidden, last = self.mlp.layers
    z_part = self._z_part(z_xL)
    h_a, h_b = _hidden(hidden, self.mlp.activation, self._first(a_xD, z_part),
                       self._first(b_xD, z_part), activate_first=True)
    return ((h_a - h_b) @ last.kernel[...])[..., 0], last(h_a)[..., 0], last(h_b)[..., 0]


def sample_z(mu_BxL: jax.Array, log_var_BxL: jax.Array, key: jax.Array) -> jax.Array:
  """z = mu + sigma * eps, eps ~ N(0, I): the reparameterised draw from q(z | C)."""
  return mu_BxL + jnp.exp(0.5 * log_var_BxL) * jax.random.normal(key, mu_BxL.shape,
                                                                 mu_BxL.dtype)


def temper(mu_BxL, log_var_BxL, prior_mu_L, prior_log_var_L, w_B):
  """q_w proportional to p^(1 - w) q^w for Gaussians: the natural parameters interpolated.

  w = 1 leaves q; w = 0 gives the prior; in between, the precision is
  (1 - w) / prior_var + w / var and the mean the matching precision-weighted blend, so a
  confident posterior keeps nearly its mean and only a weak one moves toward the prior.
  """
  w = w_B[:, None]
  prec, prior_prec = jnp.exp(-log_var_BxL), jnp.exp(-prior_log_var_L)
  total = (1 - w) * prior_prec + w * prec
  mu = ((1 - w) * prior_prec * prior_mu_L + w * prec * mu_BxL) / total
  return mu, -jnp.log(total)


class VPLModel(nnx.Module):
  """Encoder q(z | C), reward decoder r(s, z) and prior p(z); with `num_conditions`, the
  shared position-bias tower of vpl/models/condition_bias.py on the targets' logits."""

  def __init__(self, feature_dim: int, *, hidden: Sequence[int], embed_dim: int,
               latent_dim: int, pooling: str = "mean", num_heads: int = 4,
               learned_prior: bool = False, decoder: str = "concat",
               encoder: str = "pairwise", num_conditions: int = 0,
               activation: str = "gelu", decoder_blocks: int = 1, rngs: nnx.Rngs):
    if decoder_blocks < 1:
      raise ValueError(f"model.decoder_blocks = {decoder_blocks}; it splits the sets into that "
                       f"many blocks for the decoder, so it must be >= 1 (1 = no split).")
    self.latent_dim = latent_dim
    self.decoder_blocks = decoder_blocks
    self.condition_bias = condition_bias.make(num_conditions)
    if pooling == "bayes" and learned_prior:
      raise ValueError("model.pooling = 'bayes' multiplies the pairs' factors with the N(0, I) "
                       "prior; it cannot be combined with model.learned_prior = True. Set one "
                       "of them off.")
    self.encoder = SetEncoder(feature_dim, hidden, embed_dim, latent_dim, pooling=pooling,
                              num_heads=num_heads, layout=encoder, activation=activation,
                              rngs=rngs)
    if decoder == "concat":
      self.decoder = ConcatDecoder(feature_dim, latent_dim, hidden, activation=activation,
                                   rngs=rngs)
    elif decoder in ("product", "product_linear"):
      self.decoder = ProductDecoder(feature_dim, latent_dim, hidden, embed_dim,
                                    activation=activation, linear=decoder == "product_linear",
                                    rngs=rngs)
    else:
      raise ValueError(f"model.decoder = {decoder!r}; choose 'concat' (r = MLP([s, z])), "
                       f"'product' (r = <phi(s), psi(z)>) or 'product_linear' (the same with "
                       f"phi(s) = MLP(s) + A s).")
    self.learned_prior = learned_prior
    if learned_prior:
      self.prior_mu = nnx.Param(jnp.zeros(latent_dim))
      self.prior_log_var = nnx.Param(jnp.zeros(latent_dim))

  def prior(self) -> tuple[jax.Array, jax.Array]:
    """Mean and log-variance `[L]` of p(z): N(0, I), or learned."""
    if self.learned_prior:
      return self.prior_mu[...], self.prior_log_var[...]
    zeros = jnp.zeros(self.latent_dim)
    return zeros, zeros

  def posterior(self, context: dict) -> tuple[jax.Array, jax.Array]:
    """q(z | C)'s mean and log-variance `[B, L]`; tempered toward the prior by the sets'
    `reliability` when the context carries it (model.reliability = 'reask')."""
    mu, log_var = self.encoder(context["a"], context["b"], context["label"],
                               context.get("mask"))
    if "reliability" in context:
      mu, log_var = temper(mu, log_var, *self.prior(), context["reliability"])
    return mu, log_var

  def reward(self, s_xD: jax.Array, z_xL: jax.Array) -> jax.Array:
    """r(s, z) for states `[..., D]` and latents `[..., L]` broadcastable to them.

    z is not broadcast to the states' shape before the decoder: its own layers run once per
    latent, and only their output is broadcast over the items.
    """
    return jnp.broadcast_to(self.decoder(s_xD, z_xL), s_xD.shape[:-1])

  def __call__(self, context: dict, targets: dict,
               key: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
    """Logits of P(a preferred) on the targets, given each set's context.

    Args:
      context: `a`, `b` `[B, N, D]`, `label` `[B, N]`, optional `mask` `[B, N]`; optional
        `reliability` `[B]`, which tempers the posterior toward the prior (`temper`).
      targets: `a`, `b` `[B, T, D]`, optional `condition` `[B, T]` (read by the bias tower).
      key: draws z = mu + sigma * eps when given; z = mu (the posterior mean) when None,
        or, once the trained users' latents are set (`model.atoms`, model.atom_prior), the
        prediction averaged over them weighted by how well each explains the context
        (vpl/models/latent_atoms.py).

    Returns:
      `(logits [B, T], aux)`; aux holds `mu`, `log_var`, `z` `[B, L]` and the targets'
      rewards `reward_a`, `reward_b` `[B, T]`.
    """
    mu, log_var = self.posterior(context)
    if key is None and getattr(self, "atoms", None) is not None:  # model.atom_prior
      logits, aux = latent_atoms.predict(self, context, targets)
      return condition_bias.apply(self, logits, targets), dict(aux, mu=mu, log_var=log_var, z=mu)
    z = mu if key is None else sample_z(mu, log_var, key)
    # The logit r(a) - r(b) leaves out the decoder's last bias, which cancels in it: that
    # parameter's gradient is then exactly zero however the sums are ordered, and 1 and N
    # devices end with the same parameters. With decoder_blocks = K the sets go through the
    # decoder in K blocks: the same function, with activations small enough to stay in a
    # CPU's cache (docs/results.md, "Training throughput").
    blocks = min(self.decoder_blocks, mu.shape[0])
    parts = [self.decoder.pair(a, b, zb[:, None, :]) for a, b, zb in zip(
        jnp.array_split(targets["a"], blocks), jnp.array_split(targets["b"], blocks),
        jnp.array_split(z, blocks))]
    diff, reward_a, reward_b = (jnp.concatenate(p) if blocks > 1 else p[0]
                                for p in zip(*parts))
    aux = dict(mu=mu, log_var=log_var, z=z, reward_a=reward_a, reward_b=reward_b)
    return condition_bias.apply(self, diff, targets), aux
