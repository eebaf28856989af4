"""PReF: personalised reward as a user-weighted sum of shared bases (arXiv:2503.06358).

r_u(s) = lambda_u . phi(s): `phi` is an MLP with J outputs (the base rewards) shared by
everyone, and `lambda_u` `[J]` is one row per training user. A new user's lambda is the MAP
of a Bayesian logistic regression on v = phi(a) - phi(b) of their few labelled pairs, with a
Gaussian prior fitted to the training users' lambdas; or, where the calibration users say it
predicts better (`pref.mixture_prior`), the prior is the training users' lambdas themselves,
one point mass each, and a new user's prediction averages their rewards weighted by how well
each explains the user's answers (docs/methods.md, 'PReF').
Shape suffixes: B users, N context pairs, T target pairs, C candidate pairs, J bases.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vpl.models import condition_bias
from vpl.models.mlp import MLP, output_l2, with_linear

# Candidate Newton step sizes, largest first: each iteration takes the largest that does not
# lower the objective, so a full step that would overshoot (near-separable labels, a flat
# prior) is halved instead.
# numpy, not jnp: importing a module must not start a JAX backend (jax.distributed must
# be initialised first in multi-process runs).
_STEP_SIZES = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 0.0], np.float32)


class PriorStat(nnx.Variable):
  """Statistics of the training users' lambdas: set after training, never by gradients."""


class PReFModel(nnx.Module):
  """Bases phi(s) `[J]`, the training users' weights `[U, J]` and a new user's prior."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], num_bases: int,
               num_users: int, *, num_scales: int = 1, num_conditions: int = 0,
               linear_path: bool = False, population_head: bool = False, rngs: nnx.Rngs):
    if num_bases < 1:
      raise ValueError(f"pref.num_bases = {num_bases}; use at least 1 (the paper uses ~5).")
    self.num_bases = num_bases
    self.bases = MLP(feature_dim, hidden, num_bases, rngs=rngs)
    # pref.linear_path: phi(s) = MLP(s) + A s, as VPL's product_linear decoder; with
    # pref.nonlinear_l2 the MLP's part pays for its size (docs/methods.md, 'PReF').
    self.linear = (nnx.Linear(feature_dim, num_bases, use_bias=False, rngs=rngs)
                   if linear_path else None)
    # The shared position-bias tower on the targets' logits (model.condition_bias).
    self.condition_bias = condition_bias.make(num_conditions)
    # pref.population_head: a reward r0(s) of its own, trained as BTL on the pooled pairs, is
    # one more base (the last): every user's reward is lambda . [phi(s), r0(s)], and the
    # prior mean (0, ..., 0, 1) is BTL's reward itself (docs/methods.md, 'PReF').
    self.population = nnx.data(MLP(feature_dim, hidden, 1, rngs=rngs) if population_head
                               else None)
    width = num_bases + int(population_head)
    # Small random weights so that every base gets a gradient from the start (lambda = 0
    # would leave phi with none); the head's weight starts at 1.
    weights = jax.random.normal(rngs.params(), (num_users, width)) / jnp.sqrt(width)
    self.user_weights = nnx.Param(weights.at[:, -1].set(1.0) if population_head else weights)
    # The population's weights m: the training users' lambdas are penalised toward m (not
    # toward 0), so m . phi is the reward the users share (docs/methods.md, 'PReF'). With a
    # head, m is fixed at (0, ..., 0, 1) instead (vpl/methods/pref.py, `head_weights`).
    self.population_weights = nnx.Param(jnp.zeros(width))
    self.prior_mean = PriorStat(jnp.zeros(width))
    self.prior_precision = PriorStat(jnp.eye(width))
    # The chosen scale of the prior covariance, and the held-out log-likelihood per pair of
    # each scale of `pref.prior_scales` on the training users (vpl/methods/pref_prior.py).
    self.prior_scale = PriorStat(jnp.ones(()))
    self.prior_curve = PriorStat(jnp.zeros(num_scales))
    # The mixture prior: log prior weight of each training user's lambda as a point mass
    # (-inf for users whose lambda is not trained), and 1 where it was chosen over the Gaussian.
    self.atom_log_weight = PriorStat(jnp.full(num_users, -np.log(num_users), jnp.float32))
    self.prior_mixture = PriorStat(jnp.zeros(()))

  def phi(self, s_xD: jax.Array, *, stop_head: bool = False) -> jax.Array:
    """Base rewards `[..., J]` of states `[..., D]`, the population head's r0 last if there is
    one (`stop_head`: without its gradient)."""
    bases = with_linear(self.bases, self.linear, s_xD)
    if self.population is None:
      return bases
    r0 = self.population(s_xD)
    return jnp.concatenate([bases, jax.lax.stop_gradient(r0) if stop_head else r0], -1)

  def nonlinear_l2(self) -> jax.Array:
    """Squared norm of the bases MLP's output kernel: the size of phi's non-linear part."""
    return output_l2(self.bases)

  def __call__(self, context: dict, targets: dict, *, num_steps: int) -> tuple[jax.Array, dict]:
    """Logits of P(a preferred) on the targets of new users known by their context.

    Args:
      context: `a`, `b` `[B, N, D]`, `label` `[B, N]`, optional `mask` `[B, N]`; optional
        `condition` `[B, N]` (the atoms' likelihood goes through the tower) and
        `reliability` `[B]` (w multiplies each user's log-likelihood: w = 0 gives the prior).
      targets: `a`, `b` `[B, T, D]`.
      num_steps: Newton iterations of the MAP.

    Returns:
      `(logits [B, T], aux)`; aux has each user's `lambda` `[B, J]` and the targets'
      rewards `reward_a`, `reward_b` `[B, T]`.
    """
    v_BxNxJ = self.phi(context["a"]) - self.phi(context["b"])
    phi_a_BxTxJ, phi_b_BxTxJ = self.phi(targets["a"]), self.phi(targets["b"])
    v_BxTxJ = phi_a_BxTxJ - phi_b_BxTxJ
    atoms_UxJ = self.user_weights[...]

    mask_BxN = tempered_mask(context)

    def gaussian():  # the MAP of the context answers, taken as genuine
      lam_BxJ = map_weights(v_BxNxJ, context["label"], self.prior_mean[...],
                            self.prior_precision[...], num_steps=num_steps, mask_BxN=mask_BxN)
      return jnp.einsum("btj,bj->bt", v_BxTxJ, lam_BxJ), lam_BxJ

    def mixture():  # lambda is the posterior mean (what the rewards below use)
      log_post_BxU = atom_posterior(v_BxNxJ, context["label"], atoms_UxJ,
                                    self.atom_log_weight[...], mask_BxN,
                                    link=condition_bias.context_link(self, context))
      return (atom_logits(log_post_BxU, v_BxTxJ, atoms_UxJ),
              jnp.exp(log_post_BxU) @ atoms_UxJ)

    # Only the chosen prior's posterior is computed.
    logits, lam_BxJ = jax.lax.cond(self.prior_mixture[...] > 0.5, mixture, gaussian)
    reward_a = jnp.einsum("btj,bj->bt", phi_a_BxTxJ, lam_BxJ)
    reward_b = jnp.einsum("btj,bj->bt", phi_b_BxTxJ, lam_BxJ)
    return logits, dict(reward_a=reward_a, reward_b=reward_b, **{"lambda": lam_BxJ})


def tempered_mask(context: dict) -> Optional[jax.Array]:
  """Each context answer's weight in a user's log-likelihood `[B, N]`: its `mask` times the
  user's `reliability` w (vpl/reliability.py; w = 0 leaves the prior), or None for all 1."""
  mask_BxN = context.get("mask")
  if "reliability" not in context:
    return mask_BxN
  w_BxN = jnp.broadcast_to(context["reliability"][:, None], context["label"].shape)
  return w_BxN if mask_BxN is None else mask_BxN * w_BxN


def atom_posterior(v_BxNxJ: jax.Array, y_BxN: jax.Array, atoms_UxJ: jax.Array,
                   log_weight_U: jax.Array, mask_BxN: Optional[jax.Array] = None,
                   link: Optional[Callable[[jax.Array], jax.Array]] = None) -> jax.Array:
  """Log posterior `[B, U]` over the prior's point masses `atoms_UxJ` given each user's answers.

  p(u | answers) is proportional to the prior weight of u times the likelihood of the answers
  (soft labels allowed) under lambda = atoms[u]. `link` maps the logits `[B, U, N]` before
  the likelihood (e.g. through the position-bias tower, vpl/models/latent_atoms.py).
  """
  logit_BxUxN = jnp.einsum("bnj,uj->bun", v_BxNxJ, atoms_UxJ)
  if link is not None:
    logit_BxUxN = link(logit_BxUxN)
  y_Bx1xN = y_BxN[:, None]
  ll_BxUxN = (y_Bx1xN * jax.nn.log_sigmoid(logit_BxUxN)
              + (1 - y_Bx1xN) * jax.nn.log_sigmoid(-logit_BxUxN))
  if mask_BxN is not None:
    ll_BxUxN = ll_BxUxN * mask_BxN[:, None].astype(ll_BxUxN.dtype)
  log_post_BxU = ll_BxUxN.sum(-1) + log_weight_U
  return log_post_BxU - jax.nn.logsumexp(log_post_BxU, axis=-1, keepdims=True)


def atom_logits(log_post_BxU: jax.Array, v_BxTxJ: jax.Array, atoms_UxJ: jax.Array) -> jax.Array:
  """Logits `[B, T]` of the posterior predictive sum_u p(u | answers) sigma(atoms[u] . v)."""
  logit_BxTxU = jnp.einsum("btj,uj->btu", v_BxTxJ, atoms_UxJ)
  log_p_a = jax.nn.logsumexp(log_post_BxU[:, None] + jax.nn.log_sigmoid(logit_BxTxU), -1)
  log_p_b = jax.nn.logsumexp(log_post_BxU[:, None] + jax.nn.log_sigmoid(-logit_BxTxU), -1)
  return log_p_a - log_p_b


def log_posterior(lam_BxJ: jax.Array, v_BxNxJ: jax.Array, y_BxN: jax.Array,
                  prior_mean_J: jax.Array, prior_precision_JxJ: jax.Array,
                  mask_BxN: Optional[jax.Array] = None) -> jax.Array:
  """Unnormalised log posterior `[B]` of each user's weights (soft labels allowed)."""
  logit_BxN = jnp.einsum("bnj,bj->bn", v_BxNxJ, lam_BxJ)
  ll_BxN = y_BxN * jax.nn.log_sigmoid(logit_BxN) + (1 - y_BxN) * jax.nn.log_sigmoid(-logit_BxN)
  if mask_BxN is not None:
    ll_BxN = ll_BxN * mask_BxN
  d_BxJ = lam_BxJ - prior_mean_J
  return ll_BxN.sum(-1) - 0.5 * jnp.einsum("bi,ij,bj->b", d_BxJ, prior_precision_JxJ, d_BxJ)


def map_weights(v_BxNxJ: jax.Array, y_BxN: jax.Array, prior_mean_J: jax.Array,
                prior_precision_JxJ: jax.Array, *, num_steps: int,
                mask_BxN: Optional[jax.Array] = None,
                init_BxJ: Optional[jax.Array] = None) -> jax.Array:
  """MAP lambda `[B, J]` of Bayesian logistic regression, by damped Newton (IRLS).

  Maximises sum_n log p(y_n | sigma(lambda . v_n)) - (lambda - m)^T P (lambda - m) / 2 per
  user, from lambda = m (or `init_BxJ`), with a fixed number of iterations (jit- and
  vmap-friendly). The Hessian is negative definite (P is), so each Newton direction is an
  ascent direction; each iteration backtracks along it (steps 1, 1/2, ..., 1/16, else none)
  until the objective does not decrease.

  Args:
    v_BxNxJ: phi(a) - phi(b) of each user's labelled pairs (N may be 0).
    y_BxN: labels, P(a preferred) in [0, 1].
    prior_mean_J, prior_precision_JxJ: the Gaussian prior N(m, P^-1).
    num_steps: Newton iterations.
    mask_BxN: which pairs are real.
    init_BxJ: where to start instead of the prior mean (a warm start).
  """
  batch = v_BxNxJ.shape[0]
  mask_BxN = jnp.ones(y_BxN.shape, v_BxNxJ.dtype) if mask_BxN is None else (
      mask_BxN.astype(v_BxNxJ.dtype))
  objective = lambda lam: log_posterior(lam, v_BxNxJ, y_BxN, prior_mean_J,
                                        prior_precision_JxJ, mask_BxN)

  def step(lam_BxJ, _):
    p_BxN = jax.nn.sigmoid(jnp.einsum("bnj,bj->bn", v_BxNxJ, lam_BxJ))
    grad_BxJ = (jnp.einsum("bn,bnj->bj", (y_BxN - p_BxN) * mask_BxN, v_BxNxJ)
                - (lam_BxJ - prior_mean_J) @ prior_precision_JxJ)
    w_BxN = p_BxN * (1 - p_BxN) * mask_BxN
    neg_hess_BxJxJ = (jnp.einsum("bn,bni,bnj->bij", w_BxN, v_BxNxJ, v_BxNxJ)
                      + prior_precision_JxJ)
    delta_BxJ = jnp.linalg.solve(neg_hess_BxJxJ, grad_BxJ[..., None])[..., 0]
    cand_SxBxJ = lam_BxJ + _STEP_SIZES[:, None, None] * delta_BxJ
    now_B = objective(lam_BxJ)
    # The largest step that does not lower the objective beyond float32 rounding (near the
    # optimum the gain of a full step is below rounding, and it must still be taken).
    ok_SxB = jax.vmap(objective)(cand_SxBxJ) >= now_B - 1e-6 * (1 + jnp.abs(now_B))
    best_B = jnp.argmax(ok_SxB, axis=0)  # first True; the last candidate (0) always is
    return cand_SxBxJ[best_B, jnp.arange(batch)], None

  lam0_BxJ = jnp.broadcast_to(prior_mean_J if init_BxJ is None else init_BxJ,
                              (batch, prior_mean_J.shape[0]))
  return jax.lax.scan(step, lam0_BxJ, None, length=num_steps)[0]


def question_scores(lam_J: jax.Array, v_seen_NxJ: jax.Array, v_cand_CxJ: jax.Array, *,
                    ridge: float = 1e-3) -> jax.Array:
  """PReF's adaptive-question score `[C]` of each candidate pair for one user.

  score(v) = sigma'(lambda . v)^2 v^T Sigma^-1 v with Sigma = ridge I + sum over the pairs
  already answered of sigma'(lambda . v) v v^T (the Fisher information of lambda): large for
  pairs the current lambda is unsure about, in directions the answers so far left unexplored.
  Ask the argmax next (the first question is random: Sigma has no information yet).
  """
  dsig = lambda x: jax.nn.sigmoid(x) * jax.nn.sigmoid(-x)
  w_N = dsig(v_seen_NxJ @ lam_J)
  sigma_JxJ = ridge * jnp.eye(lam_J.shape[0]) + jnp.einsum("n,ni,nj->ij", w_N, v_seen_NxJ,
                                                           v_seen_NxJ)
  solved_CxJ = jnp.linalg.solve(sigma_JxJ, v_cand_CxJ.T).T
  return dsig(v_cand_CxJ @ lam_J) ** 2 * (v_cand_CxJ * solved_CxJ).sum(-1)
