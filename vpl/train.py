"""Training: a pure jitted step, many steps per call under `lax.scan`, data-parallel jit.

The training pool lives on device, replicated; each step draws its batch there with the key
`fold_in(method_key, step)`, so a run resumed from a checkpoint draws exactly the batches an
uninterrupted run would have, and ends with bit-identical parameters. The batch is split
across a 1-D mesh of all devices ('data'); parameters are replicated, and XLA inserts the
gradient all-reduce. This runs unchanged on 1..N devices, and on many hosts once
`jax.distributed.initialize()` has been called.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import zlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vpl import metric_writers
from vpl.checkpointing import Checkpointer
from vpl.data.comparisons import UserComparisons, check_enough_pairs
from vpl.methods.base import Batch, Method

TrainState = dict  # {'params': pure dict, 'opt_state': optax state, 'step': int32 scalar}


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay to 10%, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, optim.learning_rate, min(optim.warmup_steps, num_steps - 1), num_steps,
      end_value=0.1 * optim.learning_rate)
  return optax.chain(optax.clip_by_global_norm(optim.grad_clip),
                     optax.adamw(schedule, weight_decay=optim.weight_decay))


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process."""
  # Auto axes: XLA partitions the step from the batch's sharding constraint.
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def make_pool(data: UserComparisons) -> Batch:
  """The arrays a method's sampler draws from (host numpy; put on device by the trainer)."""
  return dict(a=data.a, b=data.b, label=data.label, mask=data.mask,
              valid_flat=np.flatnonzero(data.mask.reshape(-1)).astype(np.int32))


def step_keys(method_key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(batch key, loss key)` of a step; the streaming reader draws its batches with the same."""
  k_batch, k_loss = jax.random.split(jax.random.fold_in(method_key, step))
  return k_batch, k_loss


def train_step(state: TrainState, pool: Batch, method_key: jax.Array, *,
               graphdef: nnx.GraphDef, tx: optax.GradientTransformation, method: Method,
               batch_sharding: NamedSharding) -> tuple[TrainState, dict]:
  """One optimisation step: draw a batch on device, take the gradient, update."""
  step = state["step"]
  k_batch, k_loss = step_keys(method_key, step)
  batch = jax.lax.with_sharding_constraint(method.sample_batch(k_batch, pool), batch_sharding)

  def loss_of(params):
    return method.loss(nnx.merge(graphdef, params), batch, k_loss, step)

  (_, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(state["params"])
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  metrics["grad_norm"] = optax.tree_utils.tree_norm(grads)
  return dict(params=optax.apply_updates(state["params"], updates), opt_state=opt_state,
              step=step + 1), metrics


def train_steps(state: TrainState, pool: Batch, method_key: jax.Array, *, num_steps: int,
                **step_kwargs) -> tuple[TrainState, dict]:
  """`num_steps` train steps in one `lax.scan`; returns metrics stacked over steps."""
  body = lambda s, _: train_step(s, pool, method_key, **step_kwargs)
  return jax.lax.scan(body, state, None, length=num_steps)


def init_state(method: Method, feature_dim: int, seed: int,
               tx: optax.GradientTransformation) -> tuple[nnx.GraphDef, TrainState]:
  model = method.make_model(feature_dim, nnx.Rngs(seed))
  graphdef, params = nnx.split(model)
  params = nnx.to_pure_dict(params)
  return graphdef, dict(params=params, opt_state=tx.init(params), step=jnp.int32(0))


def method_seed(seed: int, name: str) -> int:
  """A per-method seed, stable across runs and independent of the order of methods."""
  return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


@dataclasses.dataclass(frozen=True)
class Prepared:
  """Everything a training loop needs, on device: what `fit` and the benchmarks run."""
  graphdef: nnx.GraphDef
  state: TrainState
  pool: Batch
  method_key: jax.Array
  run: Callable[..., tuple[TrainState, dict]]  # run(state, pool, key, num_steps=n)


def prepare(method: Method, config: ml_collections.ConfigDict,
            data: UserComparisons) -> Prepared:
  """Initialises the state, puts it and the pool on the mesh, and jits `train_steps`."""
  t = config.train
  mesh = make_mesh()
  if method.batch_axis_size % mesh.size:
    raise ValueError(f"{method.name}'s batch axis ({method.batch_axis_size}) does not split "
                     f"over {mesh.size} devices; make train.batch_sets a multiple of "
                     f"{mesh.size}.")
  check_enough_pairs(data, method.min_pairs_per_user, method.min_pairs_source)
  seed = method_seed(config.seed, method.name)
  tx = make_optimizer(config.optim, t.num_steps)
  graphdef, state = init_state(method, data.feature_dim, seed, tx)
  replicated = NamedSharding(mesh, P())
  run = jax.jit(functools.partial(
      train_steps, graphdef=graphdef, tx=tx, method=method,
      batch_sharding=NamedSharding(mesh, P("data"))), static_argnames="num_steps")
  # Replicated on the global mesh: valid with many processes because each one passes the
  # same host values (built from the seed; vpl.distributed.check_same_on_all_processes).
  return Prepared(graphdef, jax.device_put(state, replicated),
                  jax.device_put(make_pool(data), replicated), jax.random.key(seed), run)


def fit(method: Method, config: ml_collections.ConfigDict, data: UserComparisons, *,
        ckpt_dir: str, metrics_path: Optional[str] = None,
        on_chunk: Optional[Callable[[int], None]] = None) -> tuple[nnx.Module, dict]:
  """Trains `method` on `data`, resuming from the latest checkpoint in `ckpt_dir`.

  Args:
    method: what to train.
    config: the run's config (`train`, `optim`, `seed` are read).
    data: training users.
    ckpt_dir: where this method's checkpoints go.
    metrics_path: JSONL file to append one line per jitted call to (a resumed run appends
      the steps after its checkpoint again; readers keep the last line per method and step);
      written by process 0 through `vpl.metric_writers`, with TensorBoard events beside it
      when `config.metrics.tensorboard` is set.
    on_chunk: called with the step reached after each jitted call (progress hooks, tests).

  Returns:
    `(model, info)`: the trained NNX model and `{'train_seconds', 'final_step', 'resumed_from'}`.
  """
  t = config.train
  if t.checkpoint_every % t.steps_per_call:
    raise ValueError(f"train.checkpoint_every = {t.checkpoint_every} is not a multiple of "
                     f"train.steps_per_call = {t.steps_per_call}; make it one.")
  # Streaming data (vpl/data/streaming.py) prepares itself: its batches are read from disk.
  prep = (prepare(method, config, data) if isinstance(data, UserComparisons)
          else data.prepare(method, config))
  state = prep.state

  # Resume order: the latest checkpoint in ckpt_dir if there is one, else from scratch.
  ckpt = Checkpointer(ckpt_dir)
  writer = metric_writers.create(config, metrics_path, method.name)  # process 0 only
  resumed_from, seconds_before = ckpt.latest_step(), 0.0
  if resumed_from is not None:
    state, meta = ckpt.restore(resumed_from, state)
    seconds_before = meta["train_seconds"]
    logging.info("%s: resumed from step %d in %s", method.name, resumed_from, ckpt_dir)

  start_step = step = int(state["step"])
  start = time.perf_counter()
  # On any exception (NaN check, a hook, Ctrl-C) the last async save is still finished and
  # the manager closed, so a fit retried at once in this process resumes from it.
  try:
    while step < t.num_steps:
      chunk = min(t.steps_per_call, t.num_steps - step)
      state, metrics = prep.run(state, prep.pool, prep.method_key, num_steps=chunk)
      metrics = jax.device_get(metrics)
      step = int(state["step"])
      _check_finite(method.name, metrics, step - chunk, config.optim.learning_rate)
      elapsed = time.perf_counter() - start
      rate = (step - start_step) / max(elapsed, 1e-9)
      row = {k: float(np.mean(v)) for k, v in metrics.items()}
      logging.info("%s step %d/%d  loss %.4f  %.0f steps/s  ETA %.0fs", method.name, step,
                   t.num_steps, row["loss"], rate, (t.num_steps - step) / max(rate, 1e-9))
      writer.write(step, dict(steps_per_s=rate, **row))
      if step % t.checkpoint_every == 0 or step == t.num_steps:
        ckpt.save(step, state, dict(train_seconds=seconds_before + elapsed))
      if on_chunk is not None:
        on_chunk(step)
  finally:
    ckpt.wait()
    ckpt.close()
    writer.close()
  train_seconds = seconds_before + (time.perf_counter() - start if step > start_step else 0.0)
  model = nnx.merge(prep.graphdef, jax.device_get(state["params"]))
  return model, dict(train_seconds=train_seconds, final_step=step, resumed_from=resumed_from)


def _check_finite(name: str, metrics: dict, first_step: int, learning_rate: float) -> None:
  loss = np.asarray(metrics["loss"])
  bad = np.flatnonzero(~np.isfinite(loss))
  if bad.size:
    raise FloatingPointError(
        f"{name}: loss became {loss[bad[0]]} at step {first_step + int(bad[0])}. Lower "
        f"optim.learning_rate (now {learning_rate}) or optim.grad_clip, or check the data "
        f"for extreme feature values.")
