"""VPL's prior of trained users' latents (`model.atom_prior`, docs/methods.md, 'VPL').

After training, each training user's posterior mean z_m from all of their pairs is kept as a
point mass (an "atom"). A new user's prediction is then the Bayesian average over the atoms:
with w_m proportional to p(context | z_m) (times the atom's prior weight, uniform),

    P(a preferred) = sum_m w_m sigmoid(r(a, z_m) - r(b, z_m)),

and the user's reward is the posterior mean sum_m w_m r(s, z_m). The encoder still gives the
Gaussian q(z | C) (`mu`, `log_var`: the question-asking posteriors and the policy read it);
the atoms replace only its point estimate in prediction. It needs the product decoder
r(s, z) = <phi(s), psi(z)>, for which every atom costs one dot product per item.
Shape suffixes: B users, N context pairs, T targets, M atoms, E decoder width.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vpl.models import condition_bias
from vpl.models.pref import atom_logits, atom_posterior, tempered_mask

# Most atoms kept (a random subset of the training users beyond it): the prediction costs
# B x T x M dot products.
MAX_ATOMS = 4096


class AtomStat(nnx.Variable):
  """Set after training from the trained parameters and the training users, never by
  gradients."""


def set_atoms(model: nnx.Module, z_MxL: jax.Array, weight_M: Optional[np.ndarray] = None) -> None:
  """Gives `model` (a VPLModel with a product decoder) the atoms `z_MxL`, weighted by
  `weight_M` (e.g. each training user's reliability: a user without a stable preference is
  not a preference a new user can have) or equally when None or when every weight is 0."""
  z_MxL = jnp.asarray(z_MxL, jnp.float32)
  m = z_MxL.shape[0]
  w_M = np.ones(m) if weight_M is None else np.asarray(weight_M, np.float64)
  if w_M.shape != (m,) or not np.all(np.isfinite(w_M)) or (w_M < 0).any():
    raise ValueError(f"atom weights: need {m} finite values >= 0, got shape {w_M.shape}; "
                     "pass each atom's weight (or None for equal weights).")
  w_M = w_M if w_M.sum() > 0 else np.ones(m)
  model.atoms = AtomStat(z_MxL)
  model.atom_log_weight = AtomStat(jnp.asarray(np.log(np.maximum(w_M / w_M.sum(), 1e-30)),
                                               jnp.float32))


def log_posterior(model: nnx.Module, context: dict,
                  user_MxE: Optional[jax.Array] = None) -> jax.Array:
  """log w `[B, M]`: each atom's posterior weight given the context pairs (their `mask`
  weighs them; a `reliability` per set tempers the likelihood like the encoder's posterior).
  `user_MxE`: the atoms' psi(z_m), when the caller has them."""
  if user_MxE is None:
    user_MxE = model.decoder.user(model.atoms[...])
  diff_BxNxE, _, _ = model.decoder.item_pair(context["a"], context["b"])
  # The tower's mixture for each answer (as the targets'), and the user's reliability w
  # multiplying their log-likelihood, as PReF's mixture prior does (the same computation,
  # with psi(z_m) as the atoms).
  return atom_posterior(diff_BxNxE, context["label"], user_MxE, model.atom_log_weight[...],
                        tempered_mask(context), link=condition_bias.context_link(model, context))


def predict(model: nnx.Module, context: dict, targets: dict) -> tuple[jax.Array, dict]:
  """Logits `[B, T]` of the atoms' averaged P(a preferred), and aux with the posterior-mean
  rewards `reward_a`, `reward_b` `[B, T]` and the posterior-mean user vector `user`
  sum_m w_m psi(z_m) `[B, E]`, for which r(s) = <phi(s), user> (the weights, `[B, M]`, stay
  out of aux: scoring many users would hold users x atoms of them)."""
  user_MxE = model.decoder.user(model.atoms[...])
  log_w_BxM = log_posterior(model, context, user_MxE)
  w_BxM = jnp.exp(log_w_BxM)
  diff_BxTxE, e_a_BxTxE, e_b_BxTxE = model.decoder.item_pair(targets["a"], targets["b"])
  user_BxE = w_BxM @ user_MxE  # the posterior-mean reward is linear in psi
  aux = dict(reward_a=(e_a_BxTxE * user_BxE[:, None]).sum(-1),
             reward_b=(e_b_BxTxE * user_BxE[:, None]).sum(-1), user=user_BxE)
  return atom_logits(log_w_BxM, diff_BxTxE, user_MxE), aux
