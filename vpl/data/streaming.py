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
loaded (for evaluation). With many processes, each reads only the rows of the sets its own
devices train on (vpl/data/chunk_reader.py).

Real and imported rows are filtered and standardised per run, as in memory: users with too
few pairs for the split are dropped by their counts in the user index, and the features'
mean and standard deviation over the training users' pairs are computed in one chunked pass
over the file, then applied to every chunk read.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np

from vpl.data import chunk_reader, tfds_builders
from vpl.data.chunk_reader import Batch, Sampler
from vpl.data.comparisons import UserComparisons, split_users
from vpl.data.labelling import Task
from vpl.data.rows import add_filter

# `(mean [D], std [D])` (float64) that z-score the features, or None.
Standardization = Optional[tuple[np.ndarray, np.ndarray]]
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


def standardized(rows: dict[str, np.ndarray], standardization: Standardization
                 ) -> dict[str, np.ndarray]:
  """`rows` with features a and b z-scored as `vpl.data.rows.standardize` does (float64)."""
  if standardization is None:
    return rows
  mean, std = standardization
  z = lambda x: ((x.astype(np.float64) - mean) / std).astype(np.float32)
  return {k: z(v) if k in ("a", "b") else v for k, v in rows.items()}


def feature_moments(opened: tfds_builders.Opened, users: np.ndarray, *,
                    chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard deviation of the features (a and b) of `users`' pairs, in one pass
  of `chunk` rows at a time (chunks combined by Chan et al.'s pairwise update); a constant
  feature's deviation is 1, as in `vpl.data.rows.standardize`."""
  rows = user_rows(opened.index, users)
  count, mean, m2 = 0, 0.0, 0.0
  for i in range(0, len(rows), chunk):
    read = opened.read(rows[i:i + chunk], ("a", "b"))
    for x in (read["a"].astype(np.float64), read["b"].astype(np.float64)):
      x_mean = x.mean(0)
      delta, total = x_mean - mean, count + len(x)
      mean = mean + delta * len(x) / total
      m2 = m2 + ((x - x_mean) ** 2).sum(0) + delta ** 2 * count * len(x) / total
      count = total
  std = np.sqrt(m2 / count)
  return mean, np.where(std > 0, std, 1.0)


def load_users(opened: tfds_builders.Opened, users: np.ndarray, *,
               standardization: Standardization = None, chunk: int = 8192
               ) -> UserComparisons:
  """Reads `users` (index positions) into memory, padded to the data set's widest user so
  the layout equals `from_flat` of every row followed by `select_users`."""
  index = opened.index
  counts = user_counts(index)[users]
  width = int(user_counts(index).max())
  rows = user_rows(index, users)
  fields = [k for k in ("a", "b", "label") + TRUTH if k in opened.dtypes]
  parts = [standardized(opened.read(rows[i:i + chunk], fields), standardization)
           for i in range(0, len(rows), chunk)]
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
    standardization: applied to the features of every row read (real rows), or None.
  """
  opened: tfds_builders.Opened
  users: np.ndarray
  read_threads: int = 2
  prefetch_chunks: int = 2
  standardization: Standardization = None

  def read(self, rows: np.ndarray, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Records `rows`' `fields`, standardised."""
    return standardized(self.opened.read(rows, fields), self.standardization)

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
             steps_per_call: int, sharding=None) -> chunk_reader.ChunkReader:
    """The batches a training run of `num_steps` steps draws with `sample_batch`."""
    return chunk_reader.ChunkReader(self, sample_batch, method_key, num_steps=num_steps,
                                    steps_per_call=steps_per_call, sharding=sharding)


def build(config: ml_collections.ConfigDict):
  """The streaming counterpart of `vpl.data.sources.build`, for data split by users.

  The training users stay on disk (`StreamingData`); the evaluated users are those
  `sources.build` picks in memory (held-out, or validation users carved from the training
  users), loaded with the same layout, context pairs and targets. Real and imported rows
  are filtered (users with too few pairs) and standardised as in memory.

  Returns:
    `sources.ExperimentData` whose `train` is a `StreamingData`. For a synthetic task, its
    `task.data` holds only the evaluated users and `task.true_reward` is None (the generator
    is not run again); real rows have no task, as in memory.
  """
  from vpl.data import sources, tasks  # The experiment's data layer; imported when asked.
  s, d = config.streaming, config.data
  if config.eval.split == "temporal":
    raise ValueError(
        "streaming splits by users; eval.split = 'temporal' holds out each user's latest "
        "pairs, which streaming does not implement: set eval.split = 'users' (or "
        "'validation'), or streaming.enabled = False.")
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
  meta, counts = opened.metadata, user_counts(opened.index)
  synthetic = tasks.is_task(d.source)
  kept = np.arange(len(counts))
  if not synthetic:
    need, why = sources.min_pairs_by_users(config)
    kept = np.flatnonzero(counts >= need)
    if not len(kept):
      raise ValueError(f"{meta['task']}: every user has fewer than {need} pairs ({why}); the "
                       f"most any user has is {counts.max()}. Lower the context size.")
    filters = add_filter(meta["filters"], f"users with fewer than {need} pairs ({why})",
                         pairs=int(counts[counts < need].sum()), users=int((counts < need).sum()))
  everyone = kept
  for seed in sources.split_seeds(config.seed, config.eval.split):
    kept, evaluated = split_positions(opened.index, kept, d.heldout_fraction, seed)
  standardization = None
  if not synthetic and d.standardize:
    standardization = feature_moments(opened, kept)
  data = load_users(opened, evaluated, standardization=standardization)
  context_idx, target_mask = sources.split_context_target(
      data, config.eval.num_context, seed=sources.context_seed(config.seed))
  train = StreamingData(opened, kept, s.read_threads, s.prefetch_chunks, standardization)
  if synthetic:
    shares = tuple(meta["shares"])
    info = dict(source=d.source, split=config.eval.split, streaming=opened.path)
    return sources.ExperimentData(meta["task"], train, data, context_idx, target_mask, None,
                                  shares, Task(meta["task"], data, None, shares), info)
  groups = np.maximum(opened.index["group"][everyone], 0)
  shares = tuple(float(c) / len(everyone) for c in np.bincount(groups))
  info = dict(source=d.source, rows=meta["task"], split=config.eval.split,
              num_pairs=int(counts[everyone].sum()), num_users=len(everyone),
              feature_names=meta["feature_names"], group_names=meta["group_names"],
              filters=filters, **{k: v for k, v in meta["info"].items()
                                  if k not in ("user_names", "pair_id_names")})
  if standardization is not None:
    info["standardization"] = dict(
        mean=standardization[0].tolist(), std=standardization[1].tolist(),
        fit_on="features of the training users' pairs (no labels)")
  info["streaming"] = opened.path
  return sources.ExperimentData(d.source, train, data, context_idx, target_mask, None, shares,
                                None, info)
