"""`ChunkReader`: a streamed run's batches, read from disk a chunk of steps at a time.

Each chunk of `train.steps_per_call` steps is drawn as row numbers by the method's own
sampler (on this process's CPU, with the steps' own keys), and only the rows of the sets on
this process's devices are read, a chunk at a time (one array_record call, decoded
vectorised: vpl/data/records.py). Grain threads read chunks ahead; the global chunk is
assembled on the mesh from every process's part (`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Optional

import grain
import jax
import numpy as np

from vpl import seeding

Batch = dict[str, Any]
Sampler = Callable[[jax.Array, Batch], Batch]  # (key, pool) -> batch, as methods draw

# Pool fields a sampler gathers per pair; the reader replaces their row numbers by the rows.
GATHERED = ("a", "b", "label")


class ChunkReader:
  """Chunks of `steps_per_call` batches, read ahead by grain threads, put on the device.

  Chunk c covers steps [start + c S, start + (c + 1) S), cut at `num_steps`; `start` is the
  step the reader was first asked for (a resumed run starts at its checkpoint's step).
  """

  def __init__(self, data, sample_batch: Sampler, method_key: jax.Array, *,
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
    # A pair's a, b and label share one row number (the index pool holds the same array for
    # each), so each distinct array of row numbers is looked up once.
    distinct: list[np.ndarray] = []
    which = []
    for i in gathered:
      same = (j for j, d in enumerate(distinct)
              if d.shape == out[i].shape and np.array_equal(d, out[i]))
      j = next(same, len(distinct))
      if j == len(distinct):
        distinct.append(out[i])
      which.append(j)
    unique, inverse = np.unique(np.concatenate([d.ravel() for d in distinct]),
                                return_inverse=True)
    offsets = np.cumsum([0] + [d.size for d in distinct])
    rows = self._data.read(unique, GATHERED)
    self.rows_read += len(unique)
    self.max_rows_per_chunk = max(self.max_rows_per_chunk, len(unique))
    for i, j in zip(gathered, which):
      name, shape = _name(leaves[i][0]), out[i].shape
      take = inverse[offsets[j]:offsets[j + 1]]
      out[i] = rows[name][take].reshape(shape + rows[name].shape[1:])
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
