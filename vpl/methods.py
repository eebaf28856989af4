"""The common interface every reward-learning method implements, and the registry.

A method is plain functions, so the trainer and evaluator treat all methods alike:
- `make_model(feature_dim, rngs)`: a Flax NNX module;
- `sample_batch(key, pool)`: a training batch drawn on device from the training pool
  (`a`, `b` `[U, K, D]`, `label`, `mask` `[U, K]`, `valid_flat` `[P]` flat indices of real pairs);
- `loss(model, batch, key, step)`: `(scalar, metrics)`;
- `predict(model, context, targets)`: `(logits [B, T], aux)` for users given by their context
  pairs; methods with one reward for everyone ignore the context.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from vpl import losses, schedules
from vpl.models.btl import BTLReward
from vpl.models.vpl import VPLModel

Batch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  make_model: Callable[[int, nnx.Rngs], nnx.Module]
  sample_batch: Callable[[jax.Array, Batch], Batch]
  loss: Callable[[nnx.Module, Batch, jax.Array, jax.Array], tuple[jax.Array, dict]]
  predict: Callable[[nnx.Module, Batch, Batch], tuple[jax.Array, dict]]
  batch_axis_size: int  # size of the batch axis that is split across devices
  # Pairs every training user must have for sample_batch, and the config fields that set it.
  min_pairs_per_user: int = 1
  min_pairs_source: str = "sampling a pair"


def sample_pairs(key: jax.Array, pool: Batch, num_pairs: int) -> Batch:
  """Draws `num_pairs` comparisons uniformly from all real pairs of the pool (with replacement)."""
  pick = jax.random.randint(key, (num_pairs,), 0, pool["valid_flat"].shape[0])
  flat = pool["valid_flat"][pick]
  width = pool["a"].shape[1]
  user, slot = flat // width, flat % width
  return {name: pool[name][user, slot] for name in ("a", "b", "label")}


def sample_sets(key: jax.Array, pool: Batch, *, num_sets: int, num_context: int,
                num_targets: int, target_mode: str) -> Batch:
  """Draws sets of one user each: `num_context` context pairs and target pairs.

  A fresh context is drawn for the same user at every step, so each target is seen with many
  different context sets (the paper's augmentation). `target_mode`:
  'disjoint' targets are other pairs of the same user (trains the encoder to generalise);
  'context' targets are the context pairs themselves (the paper's training);
  'both' targets are the context pairs and the others.
  """
  k_user, k_pair = jax.random.split(key)
  num_users = pool["a"].shape[0]
  users = jax.random.choice(k_user, num_users, (num_sets,), replace=num_users < num_sets)
  mask = pool["mask"][users]
  noise = jnp.where(mask, jax.random.uniform(k_pair, mask.shape), 2.0)
  order = jnp.argsort(noise, axis=1)[:, :num_context + num_targets]
  take = lambda name, idx: pool[name][users[:, None], idx]
  ctx_idx = order[:, :num_context]
  tgt_idx = {"disjoint": order[:, num_context:], "context": ctx_idx, "both": order}[target_mode]
  return dict(context={n: take(n, ctx_idx) for n in ("a", "b", "label")},
              targets={n: take(n, tgt_idx) for n in ("a", "b", "label")})


def _btl(config: ml_collections.ConfigDict) -> Method:
  def make_model(feature_dim, rngs):
    return BTLReward(feature_dim, tuple(config.model.hidden), rngs=rngs)

  def loss(model, batch, key, step):
    del key, step
    logit = model(batch["a"]) - model(batch["b"])
    value = losses.bt_loss(logit, batch["label"])
    return value, dict(loss=value, nll=value)

  def predict(model, context, targets):
    del context
    reward_a, reward_b = model(targets["a"]), model(targets["b"])
    return reward_a - reward_b, dict(reward_a=reward_a, reward_b=reward_b)

  # BTL sees as many comparisons per step as VPL has target pairs.
  num_pairs = config.train.batch_sets * config.train.num_targets
  return Method("btl", make_model,
                functools.partial(sample_pairs, num_pairs=num_pairs), loss, predict,
                batch_axis_size=num_pairs)


def _vpl(config: ml_collections.ConfigDict) -> Method:
  m, l, t = config.model, config.loss, config.train
  if l.target_mode not in ("disjoint", "context", "both"):
    raise ValueError(f"loss.target_mode = {l.target_mode!r}; choose 'disjoint', 'context' "
                     f"or 'both'.")
  beta_at = functools.partial(
      schedules.beta_at, kind=l.beta_schedule, beta=l.beta, num_steps=t.num_steps,
      warmup_steps=l.warmup_steps, cycles=l.cycles)
  beta_at(0)  # Rejects an unknown schedule now, not at trace time.

  def make_model(feature_dim, rngs):
    return VPLModel(feature_dim, hidden=tuple(m.hidden), embed_dim=m.embed_dim,
                    latent_dim=m.latent_dim, pooling=m.pooling, num_heads=m.num_heads,
                    learned_prior=m.learned_prior, rngs=rngs)

  def loss(model, batch, key, step):
    logits, aux = model(batch["context"], batch["targets"], key)
    prior_mu, prior_log_var = model.prior()
    value, metrics = losses.elbo_loss(
        logits, batch["targets"]["label"], aux["mu"], aux["log_var"], prior_mu,
        prior_log_var, beta=beta_at(step), free_bits=l.free_bits)
    return value, dict(loss=value, **metrics)

  def predict(model, context, targets):
    return model(context, targets)

  sampler = functools.partial(sample_sets, num_sets=t.batch_sets, num_context=t.num_context,
                              num_targets=t.num_targets, target_mode=l.target_mode)
  return Method("vpl", make_model, sampler, loss, predict, batch_axis_size=t.batch_sets,
                min_pairs_per_user=t.num_context + t.num_targets,
                min_pairs_source="train.num_context + train.num_targets")


REGISTRY: dict[str, Callable[[ml_collections.ConfigDict], Method]] = {
    "btl": _btl, "vpl": _vpl}


def make_method(name: str, config: ml_collections.ConfigDict) -> Method:
  if name not in REGISTRY:
    raise ValueError(f"config.methods has {name!r}, which is not a method; choose from "
                     f"{sorted(REGISTRY)}.")
  return REGISTRY[name](config)
