"""Training from a built TFDS data set, for training splits that do not fit in memory.

The in-memory trainer keeps the whole pool (`a`, `b` `[U, K, D]`) on device and each step's
sampler gathers its batch there. Here the pool stays on disk (array_record, random access)
and only an index pool goes to the sampler: the same `[U, K]` layout, holding each pair's
row number in the file instead of its features (4 bytes a pair instead of 8 D + 4). The
method's own sampler (handed to `StreamingData.reader` by the trainer), run on the host CPU
with the step's own key (`vpl.seeding.step_keys`), therefore picks exactly the pairs the
in-memory run picks; the reader fetches those rows (grain threads prefetch whole chunks of
`train.steps_per_call` steps) and puts them on the device, where `vpl.train` trains on them
with the same jitted step under `lax.scan`. This module knows nothing of methods or
training: it serves batches. Given the same seed, streaming and in-memory training see
identical batches and end with identical parameters (tests/test_streaming.py).

Host memory: the user index (8 bytes per row and 20 per user), the index pool (5 bytes per
pair slot) and `streaming.prefetch_chunks` chunks of batches; never the split's features.
Held-out users are chosen exactly as `split_users` chooses them in memory, and only they are
loaded (for evaluation).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterator, Optional

import grain
import jax
import ml_collections
import numpy as np

from vpl import seeding
from vpl.data import tfds_builders
from vpl.data.comparisons import UserComparisons, split_users
from vpl.data.labelling import Task

Batch = dict[str, Any]
Sampler = Callable[[jax.Array, Batch], Batch]  # (key, pool) -> batch, as methods draw

# Pool fields a sampler gathers per pair; the reader replaces their row numbers by the rows.
GATHERED = ("a", "b", "label")
TRUTH = ("true_pref", "pooled_pref", "divergent", "group_pref")


def user_counts(index: dict[str, np.ndarray]) -> np.ndarray:
  return np.diff(index["row_start"])


def user_rows(index: dict[str, np.ndarray], users: np.ndarray) -> np.ndarray:
  """Row numbers of `users` (positions in the index), user after user, each in file order."""
  start, end = index["row_start"][users], index["row_start"][users + 1]
  return np.concatenate([index["rows"][s:e] for s, e in zip(start, end)] or [np.zeros(0, int)])


def split_positions(index: dict[str, np.ndarray], users: np.ndarray, heldout_fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`(training, held-out)` positions among `users`, chosen by `split_users` itself.

  `split_users` reads only user ids and groups, so it runs on a stand-in with no pairs; the
  held-out users are then exactly those of the in-memory path.
  """
  num_users = len(users)
  stub = UserComparisons(
      a=np.zeros((num_users, 1, 0), np.float32), b=np.zeros((num_users, 1, 0), np.float32),
      label=np.full((num_users, 1), 0.5, np.float32), mask=np.zeros((num_users, 1), bool),
      user_id=index["user_id"][users], group=index["group"][users])
  kept, heldout = split_users(stub, heldout_fraction, seed)
  find = lambda ids: np.searchsorted(index["user_id"], ids)
  return find(kept.user_id), find(heldout.user_id)


def load_users(opened: tfds_builders.Opened, users: np.ndarray, *,
               chunk: int = 8192) -> UserComparisons:
  """Reads `users` (index positions) into memory, padded to the data set's widest user so
  the layout equals `from_flat` of every row followed by `select_users`."""
  index = opened.index
  counts = user_counts(index)[users]
  width = int(user_counts(index).max())
  rows = user_rows(index, users)
  fields = [k for k in ("a", "b", "label") + TRUTH if k in opened.dtypes]
  parts = [opened.read(rows[i:i + chunk], fields) for i in range(0, len(rows), chunk)]
  flat = {k: np.concatenate([p[k] for p in parts]) for k in fields}
  row_of = np.repeat(np.arange(len(users)), counts)
  slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
  shape = (len(users), width)

  def grid(name: str, fill) -> np.ndarray:
    x = flat[name]
    out = np.full(shape + x.shape[1:], fill, x.dtype)
    out[row_of, slot] = x
    return out

  mask = np.zeros(shape, bool)
  mask[row_of, slot] = True
  return UserComparisons(
      a=grid("a", 0), b=grid("b", 0), label=grid("label", 0.5), mask=mask,
      user_id=index["user_id"][users], group=index["group"][users],
      **{k: grid(k, 0) for k in TRUTH if k in flat})


@dataclasses.dataclass(frozen=True)
class StreamingData:
  """Training users whose pairs stay on disk; `vpl.train.fit` accepts it in place of the
  in-memory `UserComparisons` and trains on the batches of `reader`.

  Attributes:
    opened: the built data set.
    users: positions (in `opened.index`) of the training users, in user-id order.
    read_threads: grain threads that read chunks ahead.
    prefetch_chunks: chunks read ahead (each `train.steps_per_call` steps of batches).
  """
  opened: tfds_builders.Opened
  users: np.ndarray
  read_threads: int = 2
  prefetch_chunks: int = 2

  @property
  def num_users(self) -> int:
    return len(self.users)

  @property
  def feature_dim(self) -> int:
    return self.opened.feature_dim

  @property
  def pairs_per_user(self) -> np.ndarray:
    return user_counts(self.opened.index)[self.users]

  @property
  def user_id(self) -> np.ndarray:
    return self.opened.index["user_id"][self.users]

  def index_pool(self) -> Batch:
    """The sampler's pool with row numbers in place of features (`a`, `b`, `label` `[U, K]`).

    K is the widest user of the whole data set, as in memory, so a sampler draws the same
    random numbers (its noise has shape `[sets, K]`) in both paths.
    """
    index = self.opened.index
    if self.opened.num_rows >= 2**31:
      raise ValueError(f"{self.opened.path} has {self.opened.num_rows} rows; row numbers are "
                       f"int32 on the sampler's side. Split the data set below 2**31 rows.")
    width = int(user_counts(index).max())
    slot = np.arange(width)[None, :]
    mask = slot < self.pairs_per_user[:, None]
    where = np.minimum(index["row_start"][self.users][:, None] + slot, len(index["rows"]) - 1)
    rows = np.where(mask, index["rows"][where], 0).astype(np.int32)
    return dict(a=rows, b=rows, label=rows, mask=mask,
                valid_flat=np.flatnonzero(mask.reshape(-1)).astype(np.int32))

  def reader(self, sample_batch: Sampler, method_key: jax.Array, *, num_steps: int,
             steps_per_call: int, sharding=None) -> "ChunkReader":
    """The batches a training run of `num_steps` steps draws with `sample_batch`."""
    return ChunkReader(self, sample_batch, method_key, num_steps=num_steps,
                       steps_per_call=steps_per_call, sharding=sharding)


class ChunkReader:
  """Chunks of `steps_per_call` batches, read ahead by grain threads, put on the device.

  Chunk c covers steps [start + c S, start + (c + 1) S), cut at `num_steps`; `start` is the
  step the reader was first asked for (a resumed run starts at its checkpoint's step).
  """

  def __init__(self, data: StreamingData, sample_batch: Sampler, method_key: jax.Array, *,
               num_steps: int, steps_per_call: int, sharding=None):
    self._data, self._num_steps, self._per_call = data, num_steps, steps_per_call
    self._sharding = sharding
    cpu = jax.local_devices(backend="cpu")[0]  # Row picking never touches the accelerator.
    self._pool = jax.device_put(data.index_pool(), cpu)
    self._key = jax.device_put(method_key, cpu)
    draw = lambda pool, key, step: sample_batch(seeding.step_keys(key, step)[0], pool)
    self._draw = jax.jit(jax.vmap(draw, in_axes=(None, None, 0)))
    shapes = jax.eval_shape(self._draw, self._pool, self._key, np.zeros(1, np.int32))
    self._batch_sizes = [x.shape[1] for x in jax.tree_util.tree_leaves(shapes)]  # global
    self._chunks: Optional[Iterator] = None
    self._next_step: Optional[int] = None
    self.rows_read = 0  # rows fetched from disk so far (for tests and benchmarks)
    self.max_rows_per_chunk = 0

  def row_numbers(self, steps: np.ndarray) -> Batch:
    """Each step's batch as row numbers: the method's sampler run on the index pool."""
    return jax.device_get(self._draw(self._pool, self._key, np.asarray(steps, np.int32)))

  def load(self, first: int) -> Batch:
    """This process's part of the host batches `[S, ...]` of the chunk that starts at step
    `first`: every step's whole batch is drawn (as row numbers), but only the rows of the
    sets on this process's devices (`local_span`) are read."""
    steps = np.arange(first, min(first + self._per_call, self._num_steps))
    numbers = self.row_numbers(steps)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(numbers)
    out = [leaf[:, self.local_span(leaf.shape[1])] for _, leaf in leaves]
    gathered = [i for i, (path, _) in enumerate(leaves) if _name(path) in GATHERED]
    wanted = np.concatenate([out[i].ravel() for i in gathered])
    unique, inverse = np.unique(wanted, return_inverse=True)
    rows = self._data.opened.read(unique, GATHERED)
    self.rows_read += len(unique)
    self.max_rows_per_chunk = max(self.max_rows_per_chunk, len(unique))
    offset = 0
    for i in gathered:
      name, leaf = _name(leaves[i][0]), out[i]
      take = inverse[offset:offset + leaf.size]
      offset += leaf.size
      out[i] = rows[name][take].reshape(leaf.shape + rows[name].shape[1:])
    return jax.tree_util.tree_unflatten(treedef, out)

  def local_span(self, batch_size: int) -> slice:
    """The sets (axis 1 of a chunk) that this process's devices train on: all of them with
    one process, its contiguous share of the 'data' mesh axis with many."""
    if self._sharding is None or jax.process_count() == 1:
      return slice(0, batch_size)
    index_map = self._sharding.addressable_devices_indices_map((1, batch_size))
    spans = sorted({s.indices(batch_size)[:2] for _, s in index_map.values()})
    lo, hi = spans[0][0], spans[-1][1]
    if sum(b - a for a, b in spans) != hi - lo:
      raise ValueError(f"process {jax.process_index()}'s devices hold sets {spans} of the "
                       f"batch, not one contiguous span; order the mesh's devices by process "
                       f"(jax.make_mesh does).")
    return slice(lo, hi)

  def _on_device(self, host: Batch) -> Batch:
    """The global chunk on the mesh, assembled from every process's part."""
    leaves, treedef = jax.tree_util.tree_flatten(host)
    placed = [jax.make_array_from_process_local_data(
        self._sharding, x, (x.shape[0], size) + x.shape[2:])
        for x, size in zip(leaves, self._batch_sizes)]
    return jax.tree_util.tree_unflatten(treedef, placed)

  def _stream(self, start: int) -> Iterator[tuple[int, Batch]]:
    firsts = list(range(start, self._num_steps, self._per_call))
    chunks = grain.MapDataset.source(firsts).map(lambda first: (first, self.load(first)))
    read = chunks.to_iter_dataset(grain.ReadOptions(
        num_threads=self._data.read_threads,
        prefetch_buffer_size=self._data.prefetch_chunks))
    pending = None
    for first, host in read:
      # The next chunk's transfer starts before the current one is handed over.
      on_device = (first, self._on_device(host) if self._sharding else host)
      if pending is not None:
        yield pending
      pending = on_device
    # Every chunk is read: logged before the last is handed over (the trainer asks no more).
    logging.info("streaming: process %d read %d rows (at most %d in a chunk)",
                 jax.process_index(), self.rows_read, self.max_rows_per_chunk)
    if pending is not None:
      yield pending

  def chunk(self, step: int, num_steps: int) -> Batch:
    """The batches of steps [step, step + num_steps), on the device."""
    if self._chunks is None or step != self._next_step:
      self._chunks = self._stream(step)
    first, batches = next(self._chunks)
    size = jax.tree_util.tree_leaves(batches)[0].shape[0]
    if first != step or size != num_steps:
      raise ValueError(f"the reader's chunk covers steps [{first}, {first + size}) but steps "
                       f"[{step}, {step + num_steps}) were asked for; call it with "
                       f"train.steps_per_call steps at a time, as train.fit does.")
    self._next_step = step + num_steps
    return batches


def _name(path) -> Optional[str]:
  last = path[-1]
  return getattr(last, "key", None)


def build(config: ml_collections.ConfigDict):
  """The streaming counterpart of `vpl.data.sources.build` for synthetic tasks.

  The training users stay on disk (`StreamingData`); the evaluated users are those
  `sources.build` picks in memory (held-out, or validation users carved from the training
  users), loaded with the same layout, context pairs and targets.

  Returns:
    `sources.ExperimentData` whose `train` is a `StreamingData`; its `task.data` holds only
    the evaluated users and `task.true_reward` is None (the generator is not run again).
  """
  from vpl.data import sources, tasks  # The experiment's data layer; imported when asked.
  s, d = config.streaming, config.data
  if not tasks.is_task(d.source) or config.eval.split == "temporal":
    raise ValueError(
        f"streaming reads synthetic tasks split by users; data.source = {d.source!r}, "
        f"eval.split = {config.eval.split!r}. Real rows are filtered and standardised per run "
        f"in memory: set streaming.enabled = False for them.")
  if d.source in tasks.SHARED_POOL and config.eval.unseen_fraction > 0:
    raise ValueError(
        f"{d.source} shares one pool of pairs among users, and eval.unseen_fraction = "
        f"{config.eval.unseen_fraction} withholds some of them from the training users, which "
        f"the streamed files hold whole; set eval.unseen_fraction = 0 to stream it.")
  if not s.data_dir:
    raise ValueError("streaming.enabled is True but streaming.data_dir is empty; set it to "
                     "the --data_dir given to experiments/build_datasets.py.")
  builder_config = tfds_builders.make_config(d.source, d.kwargs.to_dict(), config.seed)
  opened = tfds_builders.open_dataset(s.data_dir, builder_config)
  kept = np.arange(len(opened.index["user_id"]))
  for seed in sources.split_seeds(config.seed, config.eval.split):
    kept, evaluated = split_positions(opened.index, kept, d.heldout_fraction, seed)
  data = load_users(opened, evaluated)
  context_idx, target_mask = sources.split_context_target(
      data, config.eval.num_context, seed=sources.context_seed(config.seed))
  meta = opened.metadata
  shares = tuple(meta["shares"])
  task = Task(meta["task"], data, None, shares)
  info = dict(source=d.source, split=config.eval.split, streaming=opened.path)
  return sources.ExperimentData(meta["task"], StreamingData(
      opened, kept, s.read_threads, s.prefetch_chunks), data, context_idx, target_mask, None,
      shares, task, info)
