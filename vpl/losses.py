"""Bradley-Terry likelihood, Gaussian KL and the VPL evidence lower bound.

Conventions: labels are P(a preferred) in [0, 1]; log-likelihoods use `jax.nn.log_sigmoid`.
The KL is the exact Gaussian KL (with its factor 1/2; the official VPL code dropped it, i.e.
used 2 KL). The ELBO loss is divided by the number of target pairs per set, so that it reads
as a per-comparison negative log-likelihood plus beta * KL / T; beta = 1 is the true ELBO.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def bt_log_likelihood(logit: jax.Array, label: jax.Array) -> jax.Array:
  """log p(label | logit) under Bradley-Terry, elementwise; soft labels allowed."""
  return label * jax.nn.log_sigmoid(logit) + (1 - label) * jax.nn.log_sigmoid(-logit)


def masked_mean(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  if mask is None:
    return x.mean()
  mask = mask.astype(x.dtype)
  return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def bt_loss(logit: jax.Array, label: jax.Array,
            mask: Optional[jax.Array] = None) -> jax.Array:
  """Mean binary cross-entropy of Bradley-Terry over the (masked) pairs."""
  return -masked_mean(bt_log_likelihood(logit, label), mask)


def gaussian_kl(mu: jax.Array, log_var: jax.Array, prior_mu: jax.Array,
                prior_log_var: jax.Array) -> jax.Array:
  """KL(N(mu, e^log_var) || N(prior_mu, e^prior_log_var)) per dimension `[..., L]`."""
  return 0.5 * (prior_log_var - log_var - 1.0 + jnp.exp(log_var - prior_log_var) +
                (mu - prior_mu) ** 2 * jnp.exp(-prior_log_var))


def target_weight(label_BxT: jax.Array, target_mask_BxT: Optional[jax.Array] = None,
                  set_weight_B: Optional[jax.Array] = None) -> Optional[jax.Array]:
  """Each target's weight in the NLL `[B, T]`: the target mask times its set's weight, or
  None when every target counts once."""
  if set_weight_B is None:
    return target_mask_BxT
  mask = 1.0 if target_mask_BxT is None else target_mask_BxT
  return jnp.broadcast_to(set_weight_B[:, None] * mask, label_BxT.shape)


def elbo_loss(logits_BxT: Optional[jax.Array], label_BxT: jax.Array, mu_BxL: jax.Array,
              log_var_BxL: jax.Array, prior_mu_L: jax.Array, prior_log_var_L: jax.Array, *,
              beta: jax.Array | float, free_bits: float = 0.0,
              target_mask_BxT: Optional[jax.Array] = None,
              set_weight_B: Optional[jax.Array] = None,
              nll: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
  """Negative ELBO per target comparison: NLL + beta * KL / T.

  Args:
    logits_BxT: logits of P(a preferred) on each set's targets, with z ~ q(z | context);
      None when `nll` is given.
    label_BxT: target labels in [0, 1].
    mu_BxL, log_var_BxL: each set's posterior.
    prior_mu_L, prior_log_var_L: the prior.
    beta: weight of the KL term.
    free_bits: nats per latent dimension below which the (batch-mean) KL of that dimension
      is not penalised (Kingma et al. 2016); 0 disables it.
    target_mask_BxT: which targets are real.
    set_weight_B: optional weight of each set's likelihood in [0, 1] (a user's reliability,
      vpl/reliability.py); the mean is over the weighted targets.
    nll: the (weighted) mean NLL when it was computed elsewhere (vpl/models/decoder_blocks.py).

  Returns:
    `(loss, metrics)` with metrics `nll` (per comparison), `kl` (per set, nats), `beta`.
  """
  if nll is None:
    nll = bt_loss(logits_BxT, label_BxT,
                  target_weight(label_BxT, target_mask_BxT, set_weight_B))
  kl_BxL = gaussian_kl(mu_BxL, log_var_BxL, prior_mu_L, prior_log_var_L)
  kl_L = kl_BxL.mean(0)
  penalised = jnp.maximum(kl_L, free_bits).sum() if free_bits > 0 else kl_L.sum()
  if target_mask_BxT is None:
    targets_per_set = label_BxT.shape[1]
  else:
    targets_per_set = jnp.maximum(target_mask_BxT.sum(1).mean(), 1.0)
  loss = nll + beta * penalised / targets_per_set
  return loss, dict(nll=nll, kl=kl_L.sum(), beta=jnp.asarray(beta, jnp.float32))
