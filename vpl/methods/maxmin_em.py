"""The pure steps of MaxMin-RLHF's EM, in numpy (docs/methods.md, 'MaxMin-RLHF').

Initial assignments (k-means on users' preference directions, random, round robin), the
E-step, the objective restarts are ranked by, the mixture weights, reseeding of empty
clusters, and the purity of clusters against known groups. `vpl.methods.maxmin` runs them
around the jitted M-step.
"""

from __future__ import annotations

import numpy as np

from vpl.data.comparisons import UserComparisons

INITS = ("kmeans", "random", "round_robin")


def preference_directions(data: UserComparisons) -> np.ndarray:
  """`[U, D]` per-user statistic for k-means: mean over real pairs of (2y - 1)(a - b)."""
  sign = (2 * data.label - 1) * data.mask
  return (sign[..., None] * (data.a - data.b)).sum(1) / np.maximum(
      data.pairs_per_user, 1)[:, None]


def kmeans(x_UxD: np.ndarray, num_clusters: int, rng: np.random.Generator, *,
           iterations: int = 50, fit_rows: np.ndarray | None = None) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding on standardised rows; returns `[U]` labels.
  With `fit_rows` (boolean `[U]`), the rows are standardised by those rows, the centers are
  fitted to them alone and every row takes its nearest center."""
  fit = np.ones(len(x_UxD), bool) if fit_rows is None else fit_rows
  x = (x_UxD - x_UxD[fit].mean(0)) / np.maximum(x_UxD[fit].std(0), 1e-8)
  labels = _lloyd(x[fit], num_clusters, rng, iterations)
  if fit_rows is None:
    return labels
  centers = np.stack([x[fit][labels == k].mean(0) if (labels == k).any() else x[fit][0]
                      for k in range(num_clusters)])
  return ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1)


def _lloyd(x: np.ndarray, num_clusters: int, rng: np.random.Generator,
           iterations: int) -> np.ndarray:
  """Lloyd's iterations from a k-means++ start on rows `x` (already standardised)."""
  centers = [x[rng.integers(len(x))]]
  for _ in range(1, num_clusters):
    d2 = np.min([((x - c) ** 2).sum(1) for c in centers], axis=0)
    centers.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else
                   x[rng.integers(len(x))])
  centers = np.stack(centers)
  labels = np.full(len(x), -1)
  for _ in range(iterations):
    new = ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
    if (new == labels).all():
      break
    labels = new
    for k in range(num_clusters):
      if (labels == k).any():
        centers[k] = x[labels == k].mean(0)
  return labels


def init_responsibilities(data: UserComparisons, num_clusters: int, how: str,
                          rng: np.random.Generator) -> np.ndarray:
  """One-hot `[U, K]` initial assignment ('kmeans', 'random' or 'round_robin')."""
  if data.num_users < num_clusters:
    raise ValueError(f"maxmin.num_clusters = {num_clusters} exceeds the {data.num_users} "
                     f"training users; lower it.")
  if how == "kmeans":
    # With reliability (model.reliability = 'reask'), the users with no stable preference
    # (w < 1/2) do not place the centers: their directions are noise that merges groups.
    trusted = None if data.reliability is None else data.reliability >= 0.5
    if trusted is not None and trusted.sum() < num_clusters:
      trusted = None
    labels = kmeans(preference_directions(data), num_clusters, rng, fit_rows=trusted)
  elif how == "random":
    labels = rng.permutation(np.arange(data.num_users) % num_clusters)
  elif how == "round_robin":
    labels = np.arange(data.num_users) % num_clusters
  else:
    raise ValueError(f"maxmin.init = {how!r}; choose one of {INITS}.")
  return np.eye(num_clusters)[labels]


def e_step(log_lik_UxK: np.ndarray, log_pi_K: np.ndarray, em: str) -> np.ndarray:
  """Responsibilities `[U, K]`: one-hot argmax_k l (hard) or softmax(log pi + l) (soft)."""
  if em == "hard":
    return np.eye(log_lik_UxK.shape[1])[log_lik_UxK.argmax(1)]
  logits = log_pi_K[None] + log_lik_UxK
  gamma = np.exp(logits - logits.max(1, keepdims=True))
  return gamma / gamma.sum(1, keepdims=True)


def total_log_lik(log_lik_UxK: np.ndarray, log_pi_K: np.ndarray, em: str) -> float:
  """The objective restarts are ranked by (see the module docstring)."""
  if em == "hard":
    return float(log_lik_UxK.max(1).sum())
  logits = log_pi_K[None] + log_lik_UxK
  top = logits.max(1)
  return float((top + np.log(np.exp(logits - top[:, None]).sum(1))).sum())


def mixture_log_pi(gamma_UxK: np.ndarray) -> np.ndarray:
  # A floor keeps an (about to be reseeded) empty cluster's prior finite.
  return np.log(np.maximum(gamma_UxK.mean(0), 1e-12)).astype(np.float32)


def reseed_empty(gamma_UxK: np.ndarray, log_lik_UxK: np.ndarray,
                 pairs_per_user: np.ndarray) -> tuple[np.ndarray, int]:
  """Gives every cluster with less than one user's worth of responsibility some users.

  An empty cluster takes the U / (2K) users (at least one) with the lowest per-pair
  log-likelihood under their current (most responsible) cluster, never emptying the cluster
  they leave.

  Returns:
    The new responsibilities and the number of clusters reseeded.
  """
  gamma = gamma_UxK.copy()
  num_users, num_clusters = gamma.shape
  reseeded = 0
  for k in range(num_clusters):
    if gamma[:, k].sum() >= 1.0:
      continue
    current = gamma.argmax(1)
    fit = log_lik_UxK[np.arange(num_users), current] / np.maximum(pairs_per_user, 1)
    sizes = np.bincount(current, minlength=num_clusters)
    wanted, moved = max(1, num_users // (2 * num_clusters)), []
    for u in np.argsort(fit, kind="stable"):
      if len(moved) == wanted:
        break
      if current[u] != k and sizes[current[u]] > 1:
        sizes[current[u]] -= 1
        moved.append(u)
    gamma[moved] = np.eye(num_clusters)[k]
    reseeded += 1
  return gamma, reseeded


def cluster_purity(assignment_U: np.ndarray, group_U: np.ndarray) -> float:
  """Fraction of users in their cluster's majority group (1.0 = clusters match groups)."""
  known = group_U >= 0
  if not known.any():
    return float("nan")
  a, g = assignment_U[known], group_U[known]
  return float(sum(np.bincount(g[a == k]).max() for k in np.unique(a)) / len(a))


def user_cdf(gamma_UxK: np.ndarray, count_U: np.ndarray,
             reliability_U: np.ndarray | None = None) -> np.ndarray:
  """`[K, U]` cumulative sampling weights gamma[u, k] * pairs(u), each row ending at 1: the
  M-step's draw of each head's pairs. With `reliability_U` (model.reliability = 'reask'),
  times w_u, so users without a stable preference hardly train a head; a cluster whose users
  all have w = 0 keeps the unweighted draw (it would otherwise have nothing to train on)."""
  weight_KxU = (gamma_UxK * count_U[:, None]).T
  if reliability_U is not None:
    trusted_KxU = weight_KxU * reliability_U[None]
    weight_KxU = np.where(trusted_KxU.sum(1, keepdims=True) > 0, trusted_KxU, weight_KxU)
  cdf = np.cumsum(weight_KxU, axis=1)
  return (cdf / np.maximum(cdf[:, -1:], 1e-30)).astype(np.float32)
