"""PReF's prior of a new user's weights, and its strength fitted on the training users.

The prior is a Gaussian N(m, s * Sigma + ridge I): m the population's weights (the training
users' lambdas are penalised toward m, so m . phi is the reward they share), Sigma the spread
of the training users' lambdas around m. The scale s is empirical Bayes: calibration users, a
fraction of the training users whose pairs train the pooled reward but not the bases'
personal directions (`calibration_users`), each get `num_context` of their pairs as a
context (as a new user would) and the rest as targets, and s is the value of a grid that
maximises the mean log-likelihood of the targets under the MAP lambda of the contexts.
(Scored on users whose pairs fitted the bases, the largest scale won on Ecdat, where the
smallest ones predict new users best: the bases already point along those users' own
preferences.) s = 0 is the population's reward for everyone (what a single reward gives), so
where a few pairs cannot tell users apart, the chosen s keeps a new user's weights at the
population's (docs/methods.md, 'PReF').

The same calibration users score a second kind of prior (`mixture_log_lik`): the trained
users' own lambdas as equally weighted point masses, whose posterior given a context picks
out the trained users who answered alike. Where users come in a few types, the Gaussian
smears the types together and the mixture keeps them apart; the calibration users' held-out
likelihood decides between the best Gaussian and the mixture.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vpl.data.comparisons import UserComparisons
from vpl.models.pref import atom_logits, atom_posterior, map_weights

# Calibration users at most (for speed).
MAX_USERS = 2000
# Trained users' lambdas in the mixture prior at most (a random subset beyond; for memory).
MAX_ATOMS = 4096


def calibration_users(data: UserComparisons, fraction: float, num_context: int,
                      rng: np.random.Generator) -> np.ndarray:
  """`[U]` bool: a random `fraction` of the training users with more than `num_context` pairs
  (at least one when any has; none when `fraction` is 0)."""
  eligible = np.flatnonzero(data.mask.sum(1) > num_context)
  chosen = np.zeros(data.num_users, bool)
  if fraction > 0 and len(eligible):
    count = min(max(int(round(fraction * data.num_users)), 1), len(eligible), MAX_USERS)
    chosen[rng.choice(eligible, count, replace=False)] = True
  return chosen


def atom_rows(trained_U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Rows of the users whose lambdas are the mixture prior's point masses: the trained ones,
  at most MAX_ATOMS of them (a random subset)."""
  rows = np.flatnonzero(trained_U)
  if len(rows) > MAX_ATOMS:
    rows = np.sort(rng.choice(rows, MAX_ATOMS, replace=False))
  return rows


def atom_log_weight(num_users: int, atoms: np.ndarray,
                    reliability_U: np.ndarray | None = None) -> np.ndarray:
  """log prior weight `[U]` of each user's lambda as a point mass: -inf off `atoms`, equal
  on them, or in proportion to their reliability (vpl/reliability.py: a user with no opinion
  is no preference a new user can have) when given and not all 0."""
  w = np.ones(len(atoms)) if reliability_U is None else np.asarray(reliability_U)[atoms]
  w = w if w.sum() > 0 else np.ones(len(atoms))
  out = np.full(num_users, -np.inf)
  out[atoms] = np.log(np.maximum(w / w.sum(), 1e-30))
  return out


def spread(weights_UxJ: np.ndarray, mean_J: np.ndarray, kind: str) -> np.ndarray:
  """Sigma `[J, J]`: the training weights' second moment around `mean_J`."""
  d = weights_UxJ - mean_J
  j = weights_UxJ.shape[1]
  if kind == "empirical":
    return d.T @ d / max(len(d), 1)
  if kind == "isotropic":
    return float((d**2).mean()) * np.eye(j)
  raise ValueError(f"pref.prior = {kind!r}; choose 'empirical' or 'isotropic'.")


def precision(cov_JxJ: np.ndarray, scale: float, ridge: float) -> np.ndarray:
  return np.linalg.inv(scale * cov_JxJ + ridge * np.eye(len(cov_JxJ)))


def context_split(data: UserComparisons, users: np.ndarray, num_context: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """`(context_idx [V, N], target_mask [V, K])` of `users` (each with > N pairs)."""
  noise = np.where(data.mask[users], rng.random(data.mask[users].shape), 2.0)
  order = np.argsort(noise, axis=1)
  ctx = order[:, :num_context]
  target = data.mask[users].copy()
  np.put_along_axis(target, ctx, False, axis=1)
  return ctx, target


def scale_curve(phi, data: UserComparisons, users: np.ndarray, mean_J: np.ndarray,
                cov_JxJ: np.ndarray, *,
                scales: Sequence[float], ridge: float, num_context: int, newton_steps: int,
                rng: np.random.Generator) -> list[float]:
  """Mean target log-likelihood per pair `[len(scales)]` of `users` given their contexts.

  Args:
    phi: the bases, states `[..., D]` -> `[..., J]`.
    data: the training users; `users` the rows scored (calibration users).
  """
  v_UxKxJ, y_UxK, v_ctx, y_ctx, target = _calibration_pairs(phi, data, users, num_context, rng)
  curve = []
  for scale in scales:
    lam_UxJ = map_weights(jnp.asarray(v_ctx), jnp.asarray(y_ctx), jnp.asarray(mean_J),
                          jnp.asarray(precision(cov_JxJ, scale, ridge), jnp.float32),
                          num_steps=newton_steps)
    logit = jnp.einsum("ukj,uj->uk", jnp.asarray(v_UxKxJ), lam_UxJ)
    ll = y_UxK * jax.nn.log_sigmoid(logit) + (1 - y_UxK) * jax.nn.log_sigmoid(-logit)
    curve.append(float((np.asarray(ll) * target).sum() / target.sum()))
  return curve


def _calibration_pairs(phi, data, users, num_context, rng):
  """v = phi(a) - phi(b) and labels of `users`' pairs, their contexts and target mask."""
  if not len(users):
    raise ValueError(f"no training user has more than eval.num_context = {num_context} "
                     f"pairs, so PReF's prior cannot be fitted; lower eval.num_context, or "
                     f"set pref.prior_scales to one value and pref.mixture_prior = False.")
  ctx, target = context_split(data, users, num_context, rng)
  v_UxKxJ = np.asarray(phi(jnp.asarray(data.a[users]))) - np.asarray(
      phi(jnp.asarray(data.b[users])))
  y_UxK = data.label[users]
  v_ctx = np.take_along_axis(v_UxKxJ, ctx[..., None], axis=1)
  y_ctx = np.take_along_axis(y_UxK, ctx, axis=1)
  return v_UxKxJ, y_UxK, v_ctx, y_ctx, target


def mixture_log_lik(phi, data: UserComparisons, users: np.ndarray, atoms_AxJ: np.ndarray, *,
                    num_context: int, rng: np.random.Generator, block: int = 256) -> float:
  """Mean target log-likelihood per pair of `users` under the point-mass prior `atoms_AxJ`.

  Contexts and targets are drawn as in `scale_curve` (the same `rng` seed gives the same
  split), so the two are compared on the same pairs.
  """
  v_UxKxJ, y_UxK, v_ctx, y_ctx, target = _calibration_pairs(phi, data, users, num_context, rng)
  atoms = jnp.asarray(atoms_AxJ)
  log_weight = jnp.full(len(atoms_AxJ), -np.log(len(atoms_AxJ)), jnp.float32)
  total = 0.0
  for start in range(0, len(users), block):  # bounds the [block, K, atoms] logits
    rows = slice(start, start + block)
    log_post = atom_posterior(jnp.asarray(v_ctx[rows]), jnp.asarray(y_ctx[rows]), atoms,
                              log_weight)
    logit = atom_logits(log_post, jnp.asarray(v_UxKxJ[rows]), atoms)
    y = y_UxK[rows]
    ll = y * jax.nn.log_sigmoid(logit) + (1 - y) * jax.nn.log_sigmoid(-logit)
    total += float((np.asarray(ll) * target[rows]).sum())
  return total / float(target.sum())
