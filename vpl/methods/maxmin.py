"""MaxMin-RLHF's reward mixture, learned by EM over training users.

See docs/methods.md, 'MaxMin-RLHF'.

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
noise of the first M-step separates them: at least one more round, and no guaranteed split.

Every EM round ends with a checkpoint (current and best parameters, responsibilities, and
the summaries of finished restarts), so a run killed mid-EM resumes at the round it reached;
a finished fit loads its result and trains nothing. Restarts draw their initialisation from
their own named streams of the run's seed, so a resumed restart starts as it did.

A new user is assigned by the same E-step on their context pairs, with pi as the prior
(`RewardMixture.__call__`). With `model.condition_bias`, the shared position-bias tower is in
both steps' likelihoods (vpl/models/mixture.py); with users' `reliability`, it weighs their
pairs in the M-step and tempers a new user's E-step.
"""

from __future__ import annotations

import functools
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

from vpl import losses, seeding, train
from vpl.checkpointing import Checkpointer
from vpl.data.comparisons import UserComparisons
from vpl.method import Batch, Method
from vpl.methods import btl
from vpl.methods.maxmin_em import (INITS, cluster_purity, e_step, init_responsibilities,
                                   kmeans, mixture_log_pi, preference_directions, reseed_empty,
                                   total_log_lik, user_cdf)
from vpl.methods.sampling import pair_fields
from vpl.models import condition_bias
from vpl.models.mixture import RewardMixture

EM_KINDS = ("hard", "soft")
__all__ = ["INITS", "EM_KINDS", "kmeans", "preference_directions", "make", "fit", "run_em"]


def make(config: ml_collections.ConfigDict) -> Method:
  mm = config.maxmin
  if mm.em not in EM_KINDS:
    raise ValueError(f"maxmin.em = {mm.em!r}; choose 'hard' or 'soft'.")
  if mm.init not in INITS:
    raise ValueError(f"maxmin.init = {mm.init!r}; choose one of {INITS}.")
  if mm.num_clusters == "auto":  # each size tried is a method (vpl/size_selection.py)
    raise ValueError("maxmin.num_clusters = 'auto': make the method at one size of them.")
  for name in ("num_clusters", "restarts", "max_rounds", "steps_per_round", "pairs_per_step"):
    if mm[name] < 1:
      raise ValueError(f"maxmin.{name} = {mm[name]}; it must be at least 1.")

  def make_model(feature_dim, rngs):
    return RewardMixture(feature_dim, tuple(config.model.hidden), mm.num_clusters, rngs=rngs,
                         num_conditions=btl.num_conditions(config))

  def loss(model, batch, key, step):
    del key, step
    diff_PxK = condition_bias.apply(  # the position-bias tower, when on
        model, model.rewards_per_head(batch["a"]) - model.rewards_per_head(batch["b"]), batch)
    nll_K = -losses.bt_log_likelihood(diff_PxK, batch["label"]).mean(0)
    # Summed over heads: each head gets the gradient of its own BTL fit.
    return nll_K.sum(), dict(loss=nll_K.mean())

  def predict(model, context, targets):  # the coin of an unreliable user in the answers
    logits, aux = model(context, targets)
    return condition_bias.answers(logits, context, targets), aux

  def restore(config, feature_dim, ckpt_dir, step=None):
    del config
    model = make_model(feature_dim, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    ckpt = Checkpointer(ckpt_dir)
    try:
      zeros = nnx.to_pure_dict(params)
      like = lambda meta: dict(params=zeros, best=zeros, gamma=np.zeros(
          (meta["num_users"], mm.num_clusters), np.float32))
      # A damaged step is logged and the newest readable one before it is used.
      step, state, meta = ckpt.restore_latest(like, quarantine=False, step=step)
      if step is None:
        raise ValueError(f"{ckpt_dir} holds no readable maxmin checkpoint; train first.")
      if not meta.get("finished"):
        raise ValueError(f"{ckpt_dir} step {step} is mid-EM (restart {meta.get('restart')}, "
                         f"round {meta.get('round')}); rerun the experiment to finish it.")
    finally:
      ckpt.close()
    return nnx.merge(graphdef, jax.device_get(state["best"])), step

  return Method("maxmin", make_model,
                functools.partial(sample_cluster_pairs, num_pairs=mm.pairs_per_step), loss,
                predict, batch_axis_size=mm.pairs_per_step,
                batch_axis_source="maxmin.pairs_per_step", fit=fit, restore=restore)


def sample_cluster_pairs(key: jax.Array, pool: Batch, num_pairs: int) -> Batch:
  """`num_pairs` pairs for each head: `a`, `b` `[P, K, D]`, `label` `[P, K]` (and `condition`,
  `pair_id` `[P, K]` when the pool has them: `sampling.pair_fields`).

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
  return {name: pool[name][users_PxK, slot_PxK] for name in pair_fields(pool)}


def _frozen_mixture_weights(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` on the rewards' parameters; log pi (set by EM) is left as it is."""
  labels = lambda params: {k: jax.tree.map(lambda _: "em" if k == "log_pi" else "train", v)
                           for k, v in params.items()}
  return optax.multi_transform({"train": tx, "em": optax.set_to_zero()}, labels)


def em_pool(data: UserComparisons) -> Batch:
  pool = train.make_pool(data)
  pool["valid_order"] = np.argsort(~data.mask, axis=1, kind="stable").astype(np.int32)
  pool["count"] = data.pairs_per_user.astype(np.int32)
  return pool


class _EM:
  """One fit's jitted M-step and E-step, compiled once and shared by all restarts."""

  def __init__(self, method: Method, config: ml_collections.ConfigDict,
               data: UserComparisons):
    mesh = train.make_mesh(method)
    self.replicated = NamedSharding(mesh, P())
    self.tx = _frozen_mixture_weights(
        train.make_optimizer(config.optim, config.maxmin.steps_per_round))
    self.graphdef, _ = nnx.split(method.make_model(data.feature_dim, nnx.Rngs(0)))
    self.run = train.compile_steps(method, self.tx, self.graphdef, mesh)
    self.pool = em_pool(data)

    def log_lik(params, pool):
      model = nnx.merge(self.graphdef, params)
      return model.cluster_log_lik(pool["a"], pool["b"], pool["label"], pool["mask"],
                                   pool.get("condition"))
    self.log_lik = jax.jit(log_lik)
    self.method, self.data = method, data

  def init_params(self, seed: int) -> dict:
    model = self.method.make_model(self.data.feature_dim, nnx.Rngs(seed))
    return nnx.to_pure_dict(nnx.state(model))

  def m_step(self, params: dict, gamma_UxK: np.ndarray, key: jax.Array,
             num_steps: int) -> tuple[dict, dict]:
    """Trains every head on its responsibility-weighted pairs; returns the step metrics."""
    pool = dict(self.pool, user_cdf=user_cdf(gamma_UxK, self.pool["count"],
                                                       self.data.reliability))
    params = dict(params, log_pi=mixture_log_pi(gamma_UxK))
    state = dict(params=params, opt_state=self.tx.init(params), step=jnp.int32(0))
    state, metrics = self.run(jax.device_put(state, self.replicated),
                              jax.device_put(pool, self.replicated), key, num_steps=num_steps)
    return jax.device_get(state["params"]), jax.device_get(metrics)

  def cluster_log_lik(self, params: dict) -> np.ndarray:
    pool = {k: self.pool[k] for k in ("a", "b", "label", "mask", "condition") if k in self.pool}
    return np.asarray(jax.device_get(self.log_lik(params, pool)), np.float64)


def em_round(em: _EM, config: ml_collections.ConfigDict, params: dict, gamma_UxK: np.ndarray,
             key: jax.Array) -> tuple[dict, np.ndarray, dict, dict]:
  """One EM round: reseed an empty start, M-step, E-step, reseed emptied clusters. Returns
  `(params, gamma, metrics of the M-step's steps, row)`: row holds `changed`, `converged`,
  `reseeded`, `log_lik`, `cluster_sizes`, `cluster_purity`."""
  mm, data = config.maxmin, em.data
  reseeded = 0
  if (gamma_UxK.sum(0) < 1.0).any():  # an empty start: reseed before training on nobody
    gamma_UxK, reseeded = reseed_empty(gamma_UxK, em.cluster_log_lik(params),
                                       data.pairs_per_user)
  params, metrics = em.m_step(params, gamma_UxK, key, mm.steps_per_round)
  log_lik = em.cluster_log_lik(params)
  new_gamma = e_step(log_lik, np.asarray(params["log_pi"], np.float64), mm.em)
  new_gamma, reseeded_after = reseed_empty(new_gamma, log_lik, data.pairs_per_user)
  reseeded += reseeded_after
  if mm.em == "hard":
    changed = int((new_gamma.argmax(1) != gamma_UxK.argmax(1)).sum())
    converged = changed == 0
  else:
    changed = float(np.abs(new_gamma - gamma_UxK).max())
    converged = changed < mm.tol and not reseeded_after
  log_pi = mixture_log_pi(new_gamma)
  row = dict(changed=changed, converged=converged, reseeded=reseeded,
             log_lik=total_log_lik(log_lik, log_pi.astype(np.float64), mm.em),
             cluster_sizes=[round(float(s), 2) for s in new_gamma.sum(0)],
             cluster_purity=cluster_purity(new_gamma.argmax(1), data.group))
  return params, new_gamma, metrics, row


def run_em(em: _EM, config: ml_collections.ConfigDict, gamma_UxK: np.ndarray,
           params: dict, key: jax.Array) -> tuple[dict, dict]:
  """EM from `gamma_UxK` and `params` to convergence (one restart, no checkpoints)."""
  state = dict(params=params, gamma=gamma_UxK, rounds=0, reseeds=0, converged=False)
  while not _restart_done(state, config):
    _advance(em, config, state, key)
  return _finish_restart(em, config, state)


def _advance(em: _EM, config, state: dict, key: jax.Array) -> tuple[dict, dict]:
  params, gamma, metrics, row = em_round(em, config, state["params"], state["gamma"],
                                         jax.random.fold_in(key, state["rounds"]))
  state.update(params=params, gamma=gamma, rounds=state["rounds"] + 1,
               reseeds=state["reseeds"] + row["reseeded"], converged=row["converged"])
  return metrics, row


def _restart_done(state: dict, config) -> bool:
  return state["converged"] or state["rounds"] >= config.maxmin.max_rounds


def _finish_restart(em: _EM, config, state: dict) -> tuple[dict, dict]:
  """The restart's parameters (log pi from its final responsibilities) and summary."""
  gamma = state["gamma"]
  params = dict(state["params"], log_pi=mixture_log_pi(gamma))
  final = total_log_lik(em.cluster_log_lik(params), params["log_pi"].astype(np.float64),
                        config.maxmin.em)
  return params, dict(log_lik=final, rounds=state["rounds"], converged=state["converged"],
                      reseeds=state["reseeds"],
                      steps=state["rounds"] * config.maxmin.steps_per_round,
                      assignment=gamma.argmax(1).tolist(),
                      cluster_sizes=[float(s) for s in gamma.sum(0)],
                      cluster_purity=cluster_purity(gamma.argmax(1), em.data.group))


def fit(method: Method, config: ml_collections.ConfigDict, data: UserComparisons, *,
        ckpt_dir: str, metrics_path: Optional[str] = None,
        on_chunk: Optional[Callable[[int], None]] = None) -> tuple[nnx.Module, dict]:
  """EM with restarts, checkpointed every round; same contract as `vpl.train.fit`.

  Returns `(model, info)`: info has `train_seconds`, `final_step` (M-step gradient steps of
  all restarts), `resumed_from`, `best_restart`, `reseeds` (over all restarts), `restarts`
  (each restart's summary, see `_finish_restart`).
  """
  if not isinstance(data, UserComparisons):
    raise ValueError(f"maxmin trains with its own loop (EM), which reads the pool in memory; "
                     f"got {type(data).__name__}. Set streaming.enabled = False for it, or run "
                     f"the gradient-trained methods alone.")
  mm = config.maxmin
  em = _EM(method, config, data)
  zeros = em.init_params(0)
  like = dict(params=zeros, best=zeros,
              gamma=np.zeros((data.num_users, mm.num_clusters), np.float32))
  total_steps = mm.restarts * mm.max_rounds * mm.steps_per_round  # at most
  seed = config.seed
  with train.Session(method.name, config, ckpt_dir, metrics_path, on_chunk) as session:
    # Resume from the latest round's checkpoint (a finished fit's holds the kept model).
    resumed_from, saved, meta = session.resume(like)
    if meta.get("finished"):
      model = nnx.merge(em.graphdef, jax.device_get(saved["best"]))
      return model, dict(meta["info"], resumed_from=resumed_from)
    summaries, best = meta.get("summaries", []), saved["best"]
    restart, steps = meta.get("restart", 0), meta.get("steps", 0)
    seconds_before = meta.get("train_seconds", 0.0)
    state = None
    if resumed_from is not None and meta.get("round", 0) > 0:
      state = dict(params=jax.device_get(saved["params"]),
                   gamma=np.asarray(saved["gamma"], np.float64), rounds=meta["round"],
                   reseeds=meta["reseeds"], converged=False)
    start = time.perf_counter()
    while restart < mm.restarts:
      key = jax.random.key(seeding.derive(seed, method.name, "steps", restart))
      if state is None:
        gamma = init_responsibilities(data, mm.num_clusters, mm.init,
                                      seeding.rng(seed, method.name, "assign", restart))
        state = dict(params=em.init_params(seeding.derive(seed, method.name, "init", restart)),
                     gamma=gamma, rounds=0, reseeds=0, converged=False)
      tick = time.perf_counter()
      metrics, row = _advance(em, config, state, key)
      steps += mm.steps_per_round
      logging.info("maxmin restart %d round %d: log-lik %.1f  cluster sizes %s  changed %s  "
                   "reseeded %d", restart, state["rounds"] - 1, row["log_lik"],
                   row["cluster_sizes"], row["changed"], row["reseeded"])
      session.record(steps, metrics, first_step=steps - mm.steps_per_round,
                     num_steps=total_steps,
                     steps_per_s=mm.steps_per_round / max(time.perf_counter() - tick, 1e-9),
                     extra=dict(restart=restart, round=state["rounds"] - 1,
                                log_lik=row["log_lik"], changed=float(row["changed"]),
                                cluster_sizes=row["cluster_sizes"],
                                reseeded=row["reseeded"], cluster_purity=row["cluster_purity"]))
      current = dict(params=state["params"], gamma=state["gamma"].astype(np.float32))
      round_meta = dict(round=state["rounds"], reseeds=state["reseeds"])
      if _restart_done(state, config):
        params, summary = _finish_restart(em, config, state)
        summaries.append(summary)
        if summary["log_lik"] >= max(s["log_lik"] for s in summaries):
          best = params
        current["params"] = params
        restart, state, round_meta = restart + 1, None, dict(round=0, reseeds=0)
      seconds = seconds_before + time.perf_counter() - start
      finished = restart == mm.restarts
      meta = dict(round_meta, restart=restart, steps=steps, summaries=summaries,
                  train_seconds=seconds, finished=finished, num_users=data.num_users)
      if finished:
        best_restart = int(np.argmax([s["log_lik"] for s in summaries]))
        meta["info"] = dict(train_seconds=seconds, final_step=steps, best_restart=best_restart,
                            reseeds=sum(s["reseeds"] for s in summaries), restarts=summaries)
        logging.info("maxmin: kept restart %d of %d (log-lik %s)", best_restart, mm.restarts,
                     [round(s["log_lik"], 1) for s in summaries])
      session.save(steps, dict(current, best=best), meta)
      session.done(steps)
  return nnx.merge(em.graphdef, best), dict(meta["info"], resumed_from=resumed_from)
