"""MaxMin-RLHF's reward mixture, learned by EM over training users (ALGORITHMS.md 4).

Users belong to K latent groups, each with its own Bradley-Terry reward r_k
(`vpl.models.mixture.RewardMixture`). EM alternates:
- M-step: train every r_k by BTL on all training pairs, user u's pairs weighted by gamma[u, k]
  (hard EM: one-hot). It runs the repository's pure jitted `train_step` under `lax.scan`
  (`vpl.train.train_steps`): head k's batch is drawn on device by sampling users with
  probability proportional to gamma[u, k] * (pairs of u), then one of their pairs, which is
  an unbiased sample of the weighted BTL loss and gives every head a full batch however
  small its cluster. Each M-step restarts the optimizer's warm-up/decay schedule from the
  previous round's parameters.
- E-step: l[u, k] = sum over u's pairs of y log sigma(d_k) + (1 - y) log sigma(-d_k),
  d_k = r_k(a) - r_k(b). Hard: gamma[u] = onehot(argmax_k l[u, k]); soft:
  gamma[u, k] ∝ pi_k exp(l[u, k]). pi_k = mean_u gamma[u, k].
Stops when no assignment changes (hard) or no responsibility moves by more than
`maxmin.tol` (soft), or after `maxmin.max_rounds`. A cluster that empties (less than one
user's worth of responsibility) is reseeded with the users worst explained, per pair, by
their current cluster. `maxmin.restarts` runs start from different initialisations and
parameters; the one with the best total log-likelihood is kept: sum_u max_k l[u, k] for hard
EM (the classification likelihood it climbs), sum_u log sum_k pi_k exp(l[u, k]) for soft.

Initialisation (`maxmin.init`): 'kmeans' (the default) clusters users by their preference
direction, the mean over their pairs of (2y - 1)(a - b), standardised: users of one group
prefer the same region of feature space, so the first M-step already trains one reward per
group. 'random' (a balanced random split) and 'round_robin' (user i in cluster i mod K)
start every cluster as the same mix of groups, so the K rewards begin alike and only the
noise of the first M-step separates them; it needs at least one more round, and nothing
guarantees the split. (didactic 0.8/0.2, seed 0: k-means converged after 1 round in all 3
restarts, random after 2, both with every training user in its group's cluster.)

A new user is assigned by the same E-step on their context pairs, with pi as the prior
(`RewardMixture.__call__`).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from vpl import losses, train
from vpl.checkpointing import Checkpointer
from vpl.data.comparisons import UserComparisons
from vpl.methods.base import Batch, Method
from vpl.models.mixture import RewardMixture

EM_KINDS = ("hard", "soft")
INITS = ("kmeans", "random", "round_robin")


def make(config: ml_collections.ConfigDict) -> Method:
  mm = config.maxmin
  if mm.em not in EM_KINDS:
    raise ValueError(f"maxmin.em = {mm.em!r}; choose 'hard' or 'soft'.")
  if mm.init not in INITS:
    raise ValueError(f"maxmin.init = {mm.init!r}; choose one of {INITS}.")
  for name in ("num_clusters", "restarts", "max_rounds", "steps_per_round", "pairs_per_step"):
    if mm[name] < 1:
      raise ValueError(f"maxmin.{name} = {mm[name]}; it must be at least 1.")

  def make_model(feature_dim, rngs):
    return RewardMixture(feature_dim, tuple(config.model.hidden), mm.num_clusters, rngs=rngs)

  def loss(model, batch, key, step):
    del key, step
    diff_PxK = model.rewards_per_head(batch["a"]) - model.rewards_per_head(batch["b"])
    nll_K = -losses.bt_log_likelihood(diff_PxK, batch["label"]).mean(0)
    # Summed over heads: each head gets the gradient of its own BTL fit.
    return nll_K.sum(), dict(loss=nll_K.mean())

  def predict(model, context, targets):
    return model(context, targets)

  def restore(config, feature_dim, ckpt_dir, step=None):
    del config
    model = make_model(feature_dim, nnx.Rngs(0))
    graphdef, _ = nnx.split(model)
    ckpt = Checkpointer(ckpt_dir)
    try:
      step = ckpt.latest_step() if step is None else step
      if step is None:
        raise ValueError(f"{ckpt_dir} holds no maxmin checkpoint; train first.")
      state, _ = ckpt.restore(step, dict(params=nnx.to_pure_dict(nnx.state(model))))
    finally:
      ckpt.close()
    return nnx.merge(graphdef, jax.device_get(state["params"])), step

  return Method("maxmin", make_model,
                functools.partial(sample_cluster_pairs, num_pairs=mm.pairs_per_step), loss,
                predict, batch_axis_size=mm.pairs_per_step, fit=fit, restore=restore)


def sample_cluster_pairs(key: jax.Array, pool: Batch, num_pairs: int) -> Batch:
  """`num_pairs` pairs for each head: `a`, `b` `[P, K, D]`, `label` `[P, K]`.

  Head k's users are drawn with probability ∝ gamma[u, k] * pairs(u) by inverting
  `pool['user_cdf']` `[K, U]` (their cumulative sum; a binary search per draw, where
  `jax.random.categorical` would draw a Gumbel for every user), then one of their real pairs
  uniformly (`pool['valid_order']` lists each user's real slots first, `pool['count']` how
  many).
  """
  k_user, k_slot = jax.random.split(key)
  cdf_KxU = pool["user_cdf"]
  u_PxK = jax.random.uniform(k_user, (num_pairs, cdf_KxU.shape[0])) * cdf_KxU[:, -1]
  # side='right' never lands on a user of zero weight (their cdf step is flat).
  users_PxK = jax.vmap(functools.partial(jnp.searchsorted, side="right"),
                       in_axes=(0, 1), out_axes=1)(cdf_KxU, u_PxK)
  users_PxK = jnp.minimum(users_PxK, cdf_KxU.shape[1] - 1)
  count_PxK = pool["count"][users_PxK]
  rank_PxK = jnp.floor(jax.random.uniform(k_slot, users_PxK.shape) * count_PxK)
  rank_PxK = jnp.minimum(rank_PxK.astype(jnp.int32), count_PxK - 1)
  slot_PxK = pool["valid_order"][users_PxK, rank_PxK]
  return {name: pool[name][users_PxK, slot_PxK] for name in ("a", "b", "label")}


def preference_directions(data: UserComparisons) -> np.ndarray:
  """`[U, D]` per-user statistic for k-means: mean over real pairs of (2y - 1)(a - b)."""
  sign = (2 * data.label - 1) * data.mask
  return (sign[..., None] * (data.a - data.b)).sum(1) / np.maximum(
      data.pairs_per_user, 1)[:, None]


def kmeans(x_UxD: np.ndarray, num_clusters: int, rng: np.random.Generator, *,
           iterations: int = 50) -> np.ndarray:
  """Lloyd's k-means with k-means++ seeding on standardised rows; returns `[U]` labels."""
  x = (x_UxD - x_UxD.mean(0)) / np.maximum(x_UxD.std(0), 1e-8)
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
    labels = kmeans(preference_directions(data), num_clusters, rng)
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


def _frozen_mixture_weights(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` on the rewards' parameters; log pi (set by EM) is left as it is."""
  labels = lambda params: {k: jax.tree.map(lambda _: "em" if k == "log_pi" else "train", v)
                           for k, v in params.items()}
  return optax.multi_transform({"train": tx, "em": optax.set_to_zero()}, labels)


def _pool(data: UserComparisons) -> Batch:
  pool = train.make_pool(data)
  pool["valid_order"] = np.argsort(~data.mask, axis=1, kind="stable").astype(np.int32)
  pool["count"] = data.pairs_per_user.astype(np.int32)
  return pool


def _user_cdf(gamma_UxK: np.ndarray, count_U: np.ndarray) -> np.ndarray:
  """`[K, U]` cumulative sampling weights gamma[u, k] * pairs(u), each row ending at 1."""
  weight_KxU = (gamma_UxK * count_U[:, None]).T
  cdf = np.cumsum(weight_KxU, axis=1)
  return (cdf / np.maximum(cdf[:, -1:], 1e-30)).astype(np.float32)


class _EM:
  """One fit's jitted M-step and E-step, compiled once and shared by all restarts."""

  def __init__(self, method: Method, config: ml_collections.ConfigDict,
               data: UserComparisons):
    mesh = train.make_mesh()
    if method.batch_axis_size % mesh.size:
      raise ValueError(f"maxmin.pairs_per_step = {method.batch_axis_size} does not split "
                       f"over {mesh.size} devices; make it a multiple of {mesh.size}.")
    self.replicated = NamedSharding(mesh, P())
    self.tx = _frozen_mixture_weights(
        train.make_optimizer(config.optim, config.maxmin.steps_per_round))
    self.graphdef, _ = nnx.split(method.make_model(data.feature_dim, nnx.Rngs(0)))
    self.run = jax.jit(functools.partial(
        train.train_steps, graphdef=self.graphdef, tx=self.tx, method=method,
        batch_sharding=NamedSharding(mesh, P("data"))), static_argnames="num_steps")
    self.pool = _pool(data)

    def log_lik(params, pool):
      model = nnx.merge(self.graphdef, params)
      return model.cluster_log_lik(pool["a"], pool["b"], pool["label"], pool["mask"])
    self.log_lik = jax.jit(log_lik)
    self.method, self.data = method, data

  def init_params(self, seed: int) -> dict:
    model = self.method.make_model(self.data.feature_dim, nnx.Rngs(seed))
    return nnx.to_pure_dict(nnx.state(model))

  def m_step(self, params: dict, gamma_UxK: np.ndarray, key: jax.Array,
             num_steps: int) -> tuple[dict, float]:
    pool = dict(self.pool, user_cdf=_user_cdf(gamma_UxK, self.pool["count"]))
    params = dict(params, log_pi=mixture_log_pi(gamma_UxK))
    state = dict(params=params, opt_state=self.tx.init(params), step=jnp.int32(0))
    state, metrics = self.run(jax.device_put(state, self.replicated),
                              jax.device_put(pool, self.replicated), key, num_steps=num_steps)
    loss = np.asarray(jax.device_get(metrics["loss"]))
    if not np.isfinite(loss).all():
      raise FloatingPointError(
          f"maxmin: the M-step loss became {loss[~np.isfinite(loss)][0]}. Lower "
          f"optim.learning_rate or optim.grad_clip, or check the data for extreme values.")
    return jax.device_get(state["params"]), float(loss[-min(50, len(loss)):].mean())

  def cluster_log_lik(self, params: dict) -> np.ndarray:
    pool = {k: self.pool[k] for k in ("a", "b", "label", "mask")}
    return np.asarray(jax.device_get(self.log_lik(params, pool)), np.float64)


def run_em(em: _EM, config: ml_collections.ConfigDict, gamma_UxK: np.ndarray,
           params: dict, key: jax.Array, *, restart: int = 0, step_offset: int = 0,
           emit: Optional[Callable[[dict], None]] = None) -> tuple[dict, dict]:
  """EM from responsibilities `gamma_UxK` and reward parameters `params` (one restart).

  Returns:
    `(params, summary)`: the final parameters (log pi from the final responsibilities) and
    `log_lik`, `rounds`, `converged`, `reseeds`, `steps`, `assignment`, `cluster_sizes`.
  """
  mm = config.maxmin
  data = em.data
  reseeds, steps, converged = 0, 0, False
  for round_ in range(mm.max_rounds):
    start = time.perf_counter()
    reseeded = 0
    if (gamma_UxK.sum(0) < 1.0).any():  # an empty start: reseed before training on nobody
      gamma_UxK, reseeded = reseed_empty(gamma_UxK, em.cluster_log_lik(params),
                                         data.pairs_per_user)
    params, loss = em.m_step(params, gamma_UxK, jax.random.fold_in(key, round_),
                             mm.steps_per_round)
    steps += mm.steps_per_round
    log_lik = em.cluster_log_lik(params)
    new_gamma = e_step(log_lik, np.asarray(params["log_pi"], np.float64), mm.em)
    new_gamma, reseeded_after = reseed_empty(new_gamma, log_lik, data.pairs_per_user)
    reseeded += reseeded_after
    reseeds += reseeded
    if mm.em == "hard":
      changed = int((new_gamma.argmax(1) != gamma_UxK.argmax(1)).sum())
      converged = changed == 0
    else:
      changed = float(np.abs(new_gamma - gamma_UxK).max())
      converged = changed < mm.tol and not reseeded_after
    gamma_UxK = new_gamma
    log_pi = mixture_log_pi(gamma_UxK)
    row = dict(restart=restart, round=round_, step=step_offset + steps, loss=loss,
               log_lik=total_log_lik(log_lik, log_pi.astype(np.float64), mm.em),
               cluster_sizes=[round(float(s), 2) for s in gamma_UxK.sum(0)],
               changed=changed, reseeded=reseeded,
               cluster_purity=cluster_purity(gamma_UxK.argmax(1), data.group),
               steps_per_s=mm.steps_per_round / (time.perf_counter() - start))
    logging.info("maxmin restart %d round %d: log-lik %.1f  cluster sizes %s  changed %s  "
                 "reseeded %d", restart, round_, row["log_lik"], row["cluster_sizes"],
                 changed, reseeded)
    if emit is not None:
      emit(row)
    if converged:
      break
  params = dict(params, log_pi=mixture_log_pi(gamma_UxK))
  # Ranked on the final responsibilities and prior.
  final = total_log_lik(em.cluster_log_lik(params), params["log_pi"].astype(np.float64), mm.em)
  return params, dict(log_lik=final, rounds=round_ + 1, converged=converged, reseeds=reseeds,
                      steps=steps, assignment=gamma_UxK.argmax(1).tolist(),
                      cluster_sizes=[float(s) for s in gamma_UxK.sum(0)],
                      cluster_purity=cluster_purity(gamma_UxK.argmax(1), data.group))


def fit(method: Method, config: ml_collections.ConfigDict, data: UserComparisons, *,
        ckpt_dir: str, metrics_path: Optional[str] = None,
        on_chunk: Optional[Callable[[int], None]] = None) -> tuple[nnx.Module, dict]:
  """EM with restarts; same contract as `vpl.train.fit`.

  The kept model is checkpointed once, at the end; a fit on a `ckpt_dir` that holds it loads
  it and trains nothing.

  Returns:
    `(model, info)`: info has `train_seconds`, `final_step` (M-step gradient steps of all
    restarts), `resumed_from`, and `best_restart`, `reseeds` (over all restarts),
    `restarts` (each restart's summary, see `run_em`).
  """
  mm = config.maxmin
  em = _EM(method, config, data)
  ckpt = Checkpointer(ckpt_dir)
  try:
    # Resume order: the final model in ckpt_dir if there is one, else EM from scratch.
    resumed_from = ckpt.latest_step()
    if resumed_from is not None:
      like = dict(params=em.init_params(0))
      state, meta = ckpt.restore(resumed_from, like)
      logging.info("maxmin: loaded the EM result (step %d) from %s", resumed_from, ckpt_dir)
      model = nnx.merge(em.graphdef, jax.device_get(state["params"]))
      return model, dict(meta, resumed_from=resumed_from)

    def emit(row):
      if metrics_path is not None and jax.process_index() == 0:
        with open(metrics_path, "a") as f:
          f.write(json.dumps(dict(method=method.name, **row)) + "\n")
      if on_chunk is not None:
        on_chunk(row["step"])

    seed = train.method_seed(config.seed, method.name)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    results, steps = [], 0
    for restart in range(mm.restarts):
      gamma = init_responsibilities(data, mm.num_clusters, mm.init, rng)
      params, summary = run_em(em, config, gamma, em.init_params(seed + restart),
                               jax.random.fold_in(jax.random.key(seed), restart),
                               restart=restart, step_offset=steps, emit=emit)
      steps += summary["steps"]
      results.append((params, summary))
    best = int(np.argmax([s["log_lik"] for _, s in results]))
    info = dict(train_seconds=time.perf_counter() - start, final_step=steps,
                best_restart=best, reseeds=sum(s["reseeds"] for _, s in results),
                restarts=[s for _, s in results])
    logging.info("maxmin: kept restart %d of %d (log-lik %s)", best, mm.restarts,
                 [round(s["log_lik"], 1) for _, s in results])
    ckpt.save(steps, dict(params=results[best][0]), info)
  finally:
    ckpt.wait()
    ckpt.close()
  return nnx.merge(em.graphdef, results[best][0]), dict(info, resumed_from=None)
