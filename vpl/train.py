"""The trainer every method uses: a pure jitted step, many steps per call, data-parallel jit.

In memory, the training pool lives on device, replicated; each step draws its batch there
with the key `fold_in(method_key, step)`, so a run resumed from a checkpoint draws exactly
the batches an uninterrupted run would have, and ends with bit-identical parameters. Streamed
(`vpl.data.streaming.StreamingData`), the same sampler runs on the host with the same keys and
the batches come from disk; the same step trains on them. The batch is split across a 1-D
mesh of all devices ('data'); parameters are replicated, and XLA inserts the gradient
all-reduce. This runs unchanged on 1..N devices, and on many hosts once
`jax.distributed.initialize()` has been called.

`Session` is the bookkeeping shared by `fit` and by trainers that drive the step themselves
(MaxMin's EM): resume, checkpoints, the NaN check, progress lines and metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vpl import metric_writers, seeding
from vpl.checkpointing import Checkpointer, NonFiniteState
from vpl.data.comparisons import UserComparisons, check_enough_pairs
from vpl.data.streaming import StreamingData
from vpl.method import Batch, Method

TrainState = dict  # {'params': pure dict, 'opt_state': optax state, 'step': int32 scalar}
TrainingData = Union[UserComparisons, StreamingData]


def make_optimizer(optim: ml_collections.ConfigDict,
                   num_steps: int) -> optax.GradientTransformation:
  """AdamW with linear warm-up then cosine decay to 10%, after global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, optim.learning_rate, min(optim.warmup_steps, num_steps - 1), num_steps,
      end_value=0.1 * optim.learning_rate)
  return optax.chain(optax.clip_by_global_norm(optim.grad_clip),
                     optax.adamw(schedule, weight_decay=optim.weight_decay))


def make_mesh(method: Optional[Method] = None) -> Mesh:
  """A 1-D mesh over every device of every process; checks `method`'s batch splits over it."""
  # Auto axes: XLA partitions the step from the batch's sharding constraint.
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  if method is not None and method.batch_axis_size % mesh.size:
    raise ValueError(f"{method.name}'s batch axis ({method.batch_axis_size}, set by "
                     f"{method.batch_axis_source}) does not split over {mesh.size} devices; "
                     f"make it a multiple of {mesh.size}.")
  return mesh


def make_pool(data: UserComparisons, feature_dtype: str = "float32") -> Batch:
  """The arrays a method's sampler draws from (host numpy; put on device by the trainer).

  `feature_dtype = "bfloat16"` stores the features a and b at half the bytes (wide
  embeddings); `train_step` casts each drawn batch back to float32.
  """
  dtype = jnp.bfloat16 if feature_dtype == "bfloat16" else np.float32
  pool = dict(a=data.a.astype(dtype), b=data.b.astype(dtype), label=data.label,
              mask=data.mask, valid_flat=np.flatnonzero(data.mask.reshape(-1)).astype(np.int32))
  # Re-asked questions (vpl/data/reasking.py): the condition feeds model.condition_bias, and
  # pair_id keeps a question's askings on one side of a context/target split.
  if data.condition is not None:
    pool["condition"] = np.maximum(data.condition, 0).astype(np.int32)  # padding: -1 -> 0
  if data.pair_id is not None:
    pool["pair_id"] = data.pair_id.astype(np.int32)
  if data.reliability is not None:  # per user (vpl/reliability.py), read by VPL
    pool["reliability"] = data.reliability.astype(np.float32)
  return pool


def train_step(state: TrainState, pool: Batch, method_key: jax.Array, *,
               graphdef: nnx.GraphDef, tx: optax.GradientTransformation, method: Method,
               batch_sharding: NamedSharding) -> tuple[TrainState, dict]:
  """One optimisation step: draw a batch from `pool` (on device), take the gradient, update."""
  step = state["step"]
  k_batch, k_loss = seeding.step_keys(method_key, step)
  batch = jax.lax.with_sharding_constraint(method.sample_batch(k_batch, pool), batch_sharding)
  # A pool kept in bfloat16 (data.device_dtype) halves its memory; the step computes in float32.
  batch = jax.tree.map(lambda v: v.astype(jnp.float32) if v.dtype == jnp.bfloat16 else v, batch)

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


def _given(key: jax.Array, batch: Batch) -> Batch:
  del key  # A streamed step's batch was drawn on the host: the 'pool' is the batch.
  return batch


def scan_batches(state: TrainState, batches: Batch, method_key: jax.Array, *,
                 method: Method, **step_kwargs) -> tuple[TrainState, dict]:
  """`train_step` over a chunk of host-drawn batches `[S, ...]` in one `lax.scan`."""
  given = dataclasses.replace(method, sample_batch=_given)
  body = lambda s, batch: train_step(s, batch, method_key, method=given, **step_kwargs)
  return jax.lax.scan(body, state, batches)


def compile_steps(method: Method, tx: optax.GradientTransformation, graphdef: nnx.GraphDef,
                  mesh: Mesh) -> Callable[..., tuple[TrainState, dict]]:
  """The jitted `train_steps`: `run(state, pool, method_key, num_steps=n)`."""
  return jax.jit(functools.partial(
      train_steps, graphdef=graphdef, tx=tx, method=method,
      batch_sharding=NamedSharding(mesh, P("data"))), static_argnames="num_steps")


def init_state(method: Method, feature_dim: int, seed: int, tx: optax.GradientTransformation,
               initialize: Optional[Callable[[nnx.Module], None]] = None
               ) -> tuple[nnx.GraphDef, TrainState]:
  """The initial state; `initialize(model)` may set parameters in place first."""
  model = method.make_model(feature_dim, nnx.Rngs(seed))
  if initialize is not None:
    initialize(model)
  graphdef, params = nnx.split(model)
  params = nnx.to_pure_dict(params)
  return graphdef, dict(params=params, opt_state=tx.init(params), step=jnp.int32(0))


def init_seed(config: ml_collections.ConfigDict, name: str) -> int:
  """Seed of a method's initial weights: its own stream of the run's seed."""
  return seeding.derive(config.seed, name, "init")


def step_key(config: ml_collections.ConfigDict, name: str) -> jax.Array:
  """Key of a method's per-step stream (batches, loss noise): distinct from its init."""
  return jax.random.key(seeding.derive(config.seed, name, "steps"))


@dataclasses.dataclass(frozen=True)
class Prepared:
  """Everything a training loop needs, on device: what `fit` and the benchmarks run."""
  graphdef: nnx.GraphDef
  state: TrainState
  pool: Optional[Batch]  # None when streamed: `run` reads its batches
  method_key: jax.Array
  run: Callable[..., tuple[TrainState, dict]]  # run(state, pool, key, num_steps=n)


def prepare(method: Method, config: ml_collections.ConfigDict, data: TrainingData, *,
            initialize: Optional[Callable[[nnx.Module], None]] = None) -> Prepared:
  """Initialises the state on the mesh and jits the steps for in-memory or streamed data."""
  t = config.train
  mesh = make_mesh(method)
  check_enough_pairs(data, method.min_pairs_per_user, method.min_pairs_source)
  tx = make_optimizer(config.optim, t.num_steps)
  graphdef, state = init_state(method, data.feature_dim, init_seed(config, method.name), tx,
                               initialize)
  replicated = NamedSharding(mesh, P())
  key = step_key(config, method.name)
  # Replicated on the global mesh: valid with many processes because each one passes the
  # same host values (built from the seed; vpl.distributed.check_same_on_all_processes).
  state = jax.device_put(state, replicated)
  if isinstance(data, UserComparisons):
    pool = make_pool(data, config.data.get("device_dtype", "float32"))
    return Prepared(graphdef, state, jax.device_put(pool, replicated), key,
                    compile_steps(method, tx, graphdef, mesh))
  reader = data.reader(method.sample_batch, key, num_steps=t.num_steps,
                       steps_per_call=t.steps_per_call,
                       sharding=NamedSharding(mesh, P(None, "data")))
  scan = jax.jit(functools.partial(scan_batches, graphdef=graphdef, tx=tx, method=method,
                                   batch_sharding=NamedSharding(mesh, P("data"))))

  def run(state, pool, method_key, *, num_steps):
    del pool  # The batches come from the reader.
    return scan(state, reader.chunk(int(state["step"]), num_steps), method_key)

  return Prepared(graphdef, state, None, key, run)


class Session:
  """A training run's bookkeeping: checkpoints, metrics, progress lines and the NaN check.

  Use as a context manager: on any exception (NaN check, a hook, Ctrl-C) the last async save
  is still finished and the manager closed, so a fit retried at once in this process resumes
  from it.
  """

  def __init__(self, name: str, config: ml_collections.ConfigDict, ckpt_dir: str,
               metrics_path: Optional[str] = None,
               on_chunk: Optional[Callable[[int], None]] = None):
    self.name, self.config, self.on_chunk = name, config, on_chunk
    self.ckpt = Checkpointer(ckpt_dir)
    self.writer = metric_writers.create(config, metrics_path, name)  # process 0 only

  def __enter__(self) -> "Session":
    return self

  def __exit__(self, *exc) -> None:
    try:
      self.ckpt.wait()
    finally:
      self.ckpt.close()
      self.writer.close()

  def resume(self, like: Any) -> tuple[Optional[int], Any, dict]:
    """`(step, state, meta)` of the latest checkpoint, or `(None, like, {})` without one."""
    step, state, meta = self.ckpt.restore_latest(like, quarantine=True)
    if step is not None:
      logging.info("%s: resumed from step %d", self.name, step)
    return step, state, meta

  def record(self, step: int, metrics: dict, *, first_step: int, num_steps: int,
             steps_per_s: float, extra: Optional[dict] = None) -> None:
    """Checks the losses of steps [first_step, step) and logs their mean (one row)."""
    loss = np.asarray(metrics["loss"])
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
      raise FloatingPointError(
          f"{self.name}: loss became {loss.reshape(-1)[bad[0]]} at step "
          f"{first_step + int(bad[0])}. {self._advice()}")
    row = {k: float(np.mean(v)) for k, v in metrics.items()}
    logging.info("%s step %d/%d  loss %.4f  %.0f steps/s  ETA %.0fs", self.name, step,
                 num_steps, row["loss"], steps_per_s,
                 max(num_steps - step, 0) / max(steps_per_s, 1e-9))
    self.writer.write(step, dict(steps_per_s=steps_per_s, **row, **(extra or {})))

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves, or raises (saving nothing) when the state holds NaN or infinite values."""
    try:
      self.ckpt.save(step, state, meta)
    except NonFiniteState as e:
      last = self.ckpt.latest_step()
      raise NonFiniteState(
          f"{self.name}: {e} {self._advice()} The last good checkpoint is "
          f"{'none' if last is None else f'step {last}'}.") from None

  def _advice(self) -> str:
    return (f"Lower optim.learning_rate (now {self.config.optim.learning_rate}) or "
            f"optim.grad_clip, or check the data for extreme feature values; this workdir's "
            f"config is fixed, so rerun with the change in a new --workdir.")

  def done(self, step: int) -> None:
    """End of a jitted call (after its checkpoint, if any): the `on_chunk` hook."""
    if self.on_chunk is not None:
      self.on_chunk(step)


def fit(method: Method, config: ml_collections.ConfigDict, data: TrainingData, *,
        ckpt_dir: str, metrics_path: Optional[str] = None,
        on_chunk: Optional[Callable[[int], None]] = None) -> tuple[nnx.Module, dict]:
  """Trains `method` on `data`, resuming from the latest checkpoint in `ckpt_dir`.

  A method with per-user parameters is first bound to the training users (`method.bind`);
  a fresh run may set initial values (`method.initialize`); the trained model goes through
  `method.finalize` (a pure function of the parameters, so a restored model gets the same).

  Args:
    method: what to train.
    config: the run's config (`train`, `optim`, `seed` are read).
    data: training users, in memory or streamed.
    ckpt_dir: where this method's checkpoints go.
    metrics_path: JSONL file to append one line per jitted call to (a resumed run appends
      the steps after its checkpoint again; readers keep the last line per method and step),
      with TensorBoard events beside it when `config.metrics.tensorboard` is set.
    on_chunk: called with the step reached after each jitted call (progress hooks, tests).

  Returns:
    `(model, info)`: the trained NNX model and `{'train_seconds', 'final_step',
    'resumed_from'}` plus what `method.initialize` reported.
  """
  t = config.train
  if t.checkpoint_every % t.steps_per_call:
    raise ValueError(f"train.checkpoint_every = {t.checkpoint_every} is not a multiple of "
                     f"train.steps_per_call = {t.steps_per_call}; make it one.")
  if method.bind is not None:
    method = method.bind(data)
  with Session(method.name, config, ckpt_dir, metrics_path, on_chunk) as session:
    fresh = session.ckpt.latest_step() is None
    init_info: dict = {}
    initialize = None
    if fresh and method.initialize is not None:
      initialize = lambda model: init_info.update(method.initialize(model, data))
    prep = prepare(method, config, data, initialize=initialize)
    resumed_from, state, meta = session.resume(prep.state)
    if resumed_from is None and not fresh and method.initialize is not None:
      # Every saved step was damaged (and moved aside): a fresh start, initialised.
      initialize = lambda model: init_info.update(method.initialize(model, data))
      prep = prepare(method, config, data, initialize=initialize)
      state = prep.state
    seconds_before = meta.get("train_seconds", 0.0)
    init_info = init_info or meta.get("init", {})
    start_step = step = int(state["step"])
    start = time.perf_counter()
    while step < t.num_steps:
      chunk = min(t.steps_per_call, t.num_steps - step)
      state, metrics = prep.run(state, prep.pool, prep.method_key, num_steps=chunk)
      step = int(state["step"])
      elapsed = time.perf_counter() - start
      session.record(step, jax.device_get(metrics), first_step=step - chunk,
                     num_steps=t.num_steps, steps_per_s=(step - start_step) / max(elapsed, 1e-9))
      if step % t.checkpoint_every == 0 or step == t.num_steps:
        session.save(step, state, dict(train_seconds=seconds_before + elapsed, init=init_info))
      session.done(step)
  train_seconds = seconds_before + (time.perf_counter() - start if step > start_step else 0.0)
  model = nnx.merge(prep.graphdef, jax.device_get(state["params"]))
  if method.finalize is not None:
    model = method.finalize(model)
  return model, dict(init_info, train_seconds=train_seconds, final_step=step,
                     resumed_from=resumed_from)
