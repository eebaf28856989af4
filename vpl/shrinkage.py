"""Shrinkage of a user's reward toward the population's, by how sure and how stable it is.

A per-user reward with nothing pulling it back to a shared baseline is fitted as confidently
to a user with no opinion as to one with a firm one. Shrinkage blends the two:

  r_shrunk(s) = w * r_user(s) + (1 - w) * r_population(s),
  w = 1 - strength * (1 - certainty * stability),   strength, certainty, stability in [0, 1].

- `strength` is the one knob: 0 leaves every user's reward as it is (w = 1; the default), 1
  makes w = certainty * stability, so a user with no certain or no stable preference gets the
  population's reward.
- `certainty` is how much the user's answers narrowed the latent: for a Gaussian posterior
  N(mu, diag(sigma^2)) against a prior N(0, I), `certainty_from_spread` gives
  1 - mean_d sigma_d^2 (0 at the prior, 1 when the posterior is a point), and
  `certainty_from_kl` gives 1 - exp(-KL) (the same ends, for any posterior family).
- `stability` is how well the user's answers to re-asked questions agree
  (`vpl.stability.user_statistics` consistency c): `stability_from_consistency` maps a coin
  (c = 1/2) to 0 and perfect agreement (c = 1) to 1, linearly; a user without re-asked
  questions gets 1 (nothing says the preference is unstable).
The formula is linear in strength so that the knob reads as "the share of the way to the
fully weighted blend". `user_weight` and `shrink` use only arithmetic, so they also take jax
arrays (inside jit too; the range checks then apply to numpy inputs only).
"""

from __future__ import annotations

import numpy as np


def _check_unit(name: str, value) -> None:
  v = np.asarray(value, np.float64)
  if np.isnan(v).any() or (v < 0).any() or (v > 1).any():
    bad = v[np.isnan(v) | (v < 0) | (v > 1)].reshape(-1)[0]
    raise ValueError(f"shrinkage: {name} = {bad}; it must be in [0, 1] (clip it, or map it "
                     f"with certainty_from_spread / stability_from_consistency).")


def user_weight(certainty, stability, strength: float):
  """`w = 1 - strength * (1 - certainty * stability)`, the weight of the user's own reward.

  Args:
    certainty: `[U]` (or scalar) in [0, 1]: 1 = the posterior is a point, 0 = the prior.
    stability: `[U]` (or scalar) in [0, 1]: 1 = re-asks always agree, 0 = a coin.
    strength: in [0, 1]; 0 = no shrinkage (w = 1), 1 = w = certainty * stability.
  Returns:
    `w` with the broadcast shape of certainty and stability, in [0, 1].
  """
  if isinstance(strength, bool) or not 0 <= float(strength) <= 1:
    raise ValueError(f"shrinkage: strength = {strength!r}; it must be a number in [0, 1] "
                     f"(0 = off).")
  if isinstance(certainty, np.ndarray) or np.isscalar(certainty):
    _check_unit("certainty", certainty)
  if isinstance(stability, np.ndarray) or np.isscalar(stability):
    _check_unit("stability", stability)
  return 1.0 - strength * (1.0 - certainty * stability)


def shrink(reward_user, reward_population, weight):
  """`weight * reward_user + (1 - weight) * reward_population`.

  Args:
    reward_user: `[U, ...]` each user's reward (or log-odds, or P(a > b)).
    reward_population: the population's, broadcastable to reward_user (e.g. `[...]`).
    weight: `[U]` (or scalar) from `user_weight`; it is broadcast over reward_user's
      trailing axes.
  """
  w = weight
  ndim = np.ndim(reward_user)
  if np.ndim(w) and ndim > np.ndim(w):
    w = w.reshape(w.shape + (1,) * (ndim - np.ndim(w)))
  return w * reward_user + (1.0 - w) * reward_population


def certainty_from_spread(logvar_UxD):
  """`1 - mean_d exp(logvar_d)`, clipped to [0, 1] (prior N(0, I): 0 at the prior)."""
  v = np.exp(np.asarray(logvar_UxD, np.float64)).mean(-1)
  return np.clip(1.0 - v, 0.0, 1.0)


def certainty_from_kl(kl_U):
  """`1 - exp(-KL(q || p))`: 0 when the posterior is the prior, toward 1 as it narrows."""
  return 1.0 - np.exp(-np.maximum(np.asarray(kl_U, np.float64), 0.0))


def stability_from_consistency(consistency_U):
  """`clip(2 c - 1, 0, 1)`, NaN (no re-asked question) -> 1."""
  c = np.asarray(consistency_U, np.float64)
  return np.where(np.isnan(c), 1.0, np.clip(2.0 * c - 1.0, 0.0, 1.0))


def stability_from_mixture(agree_U, asked_U, *, iters: int = 100):
  """Posterior probability that each user's re-asked answers come from a stable preference.

  A user answered `asked_U` questions twice and gave the same answer `agree_U` times. A stable
  but noisy user agrees at a rate p (fitted, >= 1/2); a user without a preference agrees at a
  coin's 1/2. A two-part binomial mixture, share pi of stable users, is fitted by EM over all
  users, and the weight is pi Bin(k; n, p) / (pi Bin(k; n, p) + (1 - pi) Bin(k; n, 1/2)).
  Unlike `stability_from_consistency`, a stable user whose noise flips a few answers keeps a
  weight near 1 (the same idea as vpl/reliability.py's stable-versus-coin mixture).
  """
  k = np.asarray(agree_U, np.float64)
  n = np.asarray(asked_U, np.float64)
  if np.any(k < 0) or np.any(k > n):
    raise ValueError("stability_from_mixture: every agree count must lie in [0, asked].")
  coin = n * np.log(0.5)

  def posterior(p, pi):
    stable = np.log(pi) + k * np.log(p) + (n - k) * np.log1p(-p)
    return 1.0 / (1.0 + np.exp(np.log1p(-pi) + coin - stable))

  p, pi = 0.9, 0.5
  for _ in range(iters):
    w = posterior(p, pi)
    pi = float(np.clip(w.mean(), 1e-6, 1 - 1e-6))
    p = float(np.clip((w * k).sum() / max((w * n).sum(), 1e-12), 0.5, 1 - 1e-6))
  return posterior(p, pi)
