"""TFDS array_record data sets of comparison rows, one builder for every source.

A built data set holds the rows a source's loader produced, one example per comparison, in
the loader's order: `user_id`, `a [D]`, `b [D]`, `label`, and whichever optional fields the
source has (`group`, `timestamp`, and for synthetic tasks the generator's per-pair truth:
`true_pref`, `pooled_pref`, `divergent`, `group_pref [G]`). There is one split, 'train' =
every row: the held-out users are chosen later by the experiment, exactly as in memory.

One builder class, `Comparisons` (TFDS name 'vpl_comparisons'), is parameterised by a
`ComparisonsConfig` = (source, keyword arguments, seed): the same triple always yields the
same rows. `DATASETS` names the configs the project's experiments use; any other triple gets
a name with a digest of its arguments. Files are array_record, written and read without
TensorFlow (`tfds.data_source` / `builder_from_directory(...).as_data_source()` give random
access). Beside the records, `user_index.npz` lists each user's rows, so a user's pairs can
be read without scanning the file (vpl/data/streaming.py).

Layout: `<data_dir>/vpl_comparisons/<config name>/<version>/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import resource
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from vpl import seeding
from vpl.data import records, tasks
from vpl.data.comparisons import UserComparisons

NAME = "vpl_comparisons"
VERSION = "2.0.0"
INDEX_FILE = "user_index.npz"
REQUIRED = ("user_id", "a", "b", "label")

# The data sets the project's configs read: name -> (source, generator kwargs, seed): every
# task preset of vpl/data/tasks.py, and the real sources' rows as their loaders return them.
DATASETS: dict[str, tuple[str, dict, int]] = {
    **{name: (p.generator, p.kwargs, 0) for name, p in tasks.PRESETS.items()},
    **{name: (name, {}, 0) for name in ("ecdat_train", "movielens100k", "movielens_small")},
}


def _canonical(kwargs: dict) -> dict:
  """kwargs with tuples as lists, so configs from Python and from JSON compare equal."""
  return json.loads(json.dumps(dict(kwargs), sort_keys=True))


@dataclasses.dataclass(eq=False)
class ComparisonsConfig(tfds.core.BuilderConfig):
  """One source's rows: a synthetic task (vpl/data/tasks.py) or a loader's name
  (`vpl.data.sources.LOADERS`), its keyword arguments, and the seed."""
  source: str = ""
  kwargs: dict = dataclasses.field(default_factory=dict)
  seed: int = 0


def make_config(source: str, kwargs: Optional[dict] = None, seed: int = 0) -> ComparisonsConfig:
  """The config of (source, kwargs, seed): the DATASETS name if one matches, else a digest."""
  kwargs = _canonical(kwargs or {})
  name = next((n for n, (s, k, sd) in DATASETS.items()
               if s == source and _canonical(k) == kwargs and sd == seed), None)
  if name is None:
    digest = hashlib.sha1(json.dumps([source, kwargs, seed], sort_keys=True).encode())
    name = f"{source}_{digest.hexdigest()[:10]}"
  return ComparisonsConfig(name=name, version=VERSION, source=source, kwargs=kwargs, seed=seed,
                           description=f"{source}(seed={seed}, **{kwargs})")


def named_config(name: str) -> ComparisonsConfig:
  if name not in DATASETS:
    raise ValueError(f"dataset {name!r} is not a named data set; choose one of "
                     f"{sorted(DATASETS)}, or build a config with make_config(source, kwargs, "
                     f"seed).")
  return make_config(*DATASETS[name])


def comparison_rows(data: UserComparisons) -> dict[str, np.ndarray]:
  """Flat rows (one per real pair, users in order, each user's pairs in slot order).

  `from_flat` of these rows rebuilds `data` exactly when each user's real pairs come first
  in its row (true of every synthetic task and of everything `from_flat` builds).
  """
  mask = data.mask
  user_row = np.broadcast_to(np.arange(data.num_users)[:, None], mask.shape)[mask]
  rows = dict(user_id=data.user_id[user_row].astype(np.int64), a=data.a[mask],
              b=data.b[mask], label=data.label[mask].astype(np.float32))
  if (data.group >= 0).all():
    rows["group"] = data.group[user_row].astype(np.int32)
  for name in ("true_pref", "pooled_pref", "divergent", "group_pref"):
    value = getattr(data, name)
    if value is not None:
      rows[name] = value[mask]
  return rows


def _jsonable(x):
  """Numpy scalars and arrays as plain JSON values (for loaders' info and filter reports)."""
  return x.tolist() if isinstance(x, (np.ndarray, np.generic)) else str(x)


def load_source(config: ComparisonsConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Runs the source's loader: `(rows, metadata)`; metadata is JSON-serialisable.

  A source is a synthetic task (vpl/data/tasks.py, rows carry the generator's truth) or
  a loader of real or imported rows (vpl/data/sources.py: rows as the loader returns them,
  unfiltered and unstandardised, which the experiment does per run).
  """
  from vpl.data import sources  # Real loaders (pandas) only when such a source is built.
  if config.source in sources.LOADERS:
    kwargs = dict(config.kwargs)
    if "seed" in inspect.signature(sources.LOADERS[config.source]).parameters:
      kwargs.setdefault("seed", seeding.derive(config.seed, "data"))
    rows = sources.load_rows(config.source, **kwargs)
    metadata = dict(source=config.source, kwargs=config.kwargs, seed=config.seed, kind="rows",
                    task=rows.name, feature_names=list(rows.feature_names),
                    group_names=None if rows.group_names is None else list(rows.group_names),
                    filters=rows.filters, info=rows.info)
    return dict(rows.arrays), json.loads(json.dumps(metadata, default=_jsonable))
  task = tasks.generate(config.source, config.kwargs, config.seed)
  metadata = dict(source=config.source, kwargs=config.kwargs, seed=config.seed,
                  kind="synthetic", task=task.name, shares=list(task.shares),
                  filter_report=getattr(task, "filter_report", {}))
  return comparison_rows(task.data), json.loads(json.dumps(metadata, default=_jsonable))


def validate_rows(rows: dict[str, np.ndarray], source: str) -> None:
  """Raises ValueError naming the field and the fix when rows cannot be written."""
  missing = [k for k in REQUIRED if k not in rows]
  if missing:
    raise ValueError(f"{source}: rows lack {missing}; every comparison needs {list(REQUIRED)}.")
  n = len(rows["label"])
  for name, x in rows.items():
    if x.ndim == 0 or x.shape[0] != n:
      raise ValueError(f"{source}: field {name} has shape {x.shape}; expected ({n}, ...), one "
                       f"entry per comparison row.")
    if x.dtype.kind not in "biuf":
      raise ValueError(f"{source}: field {name} has dtype {x.dtype}; rows hold numbers or "
                       f"booleans only (map names to integer codes).")
  if rows["user_id"].dtype.kind not in "iu":
    raise ValueError(f"{source}: user_id has dtype {rows['user_id'].dtype}; use integer codes.")


def user_index(user_id: np.ndarray, group: Optional[np.ndarray]) -> dict[str, np.ndarray]:
  """Each user's rows: sorted `user_id [U]`, `group [U]` (-1 unknown), `row_start [U + 1]`
  offsets into `rows [N]` (row numbers grouped by user, each user's in file order)."""
  ids, inverse, counts = np.unique(user_id, return_inverse=True, return_counts=True)
  rows = np.argsort(inverse, kind="stable").astype(np.int64)
  user_group = np.full(len(ids), -1, np.int32)
  if group is not None:
    user_group[inverse] = group
    if (user_group[inverse] != group).any():
      raise ValueError("field group differs between rows of the same user; a user belongs to "
                       "one group.")
  row_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  return dict(user_id=ids.astype(np.int64), group=user_group, row_start=row_start, rows=rows)


class _Metadata(tfds.core.MetadataDict):
  """JSON metadata plus the user index, written with the records (atomically with them)."""

  def __init__(self, *args, index: Optional[dict] = None, **kwargs):
    super().__init__(*args, **kwargs)
    self._index = index

  def save_metadata(self, data_dir):
    super().save_metadata(data_dir)
    if self._index is not None:
      with (epath.Path(data_dir) / INDEX_FILE).open("wb") as f:
        np.savez(f, **self._index)


def _feature(x: np.ndarray) -> tfds.features.FeatureConnector:
  if x.ndim == 1:
    return tfds.features.Scalar(dtype=x.dtype)
  return tfds.features.Tensor(shape=x.shape[1:], dtype=x.dtype)


class Comparisons(tfds.core.GeneratorBasedBuilder):
  """Comparison rows of one source (see the module docstring)."""

  name = NAME
  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {"1.0.0": "Flat comparison rows, per-pair truth fields, user index.",
                   "2.0.0": "Generators draw from the seed's named 'data' stream."}
  BUILDER_CONFIGS = [named_config(n) for n in DATASETS]

  _loaded = None  # (rows, metadata) once loaded; TFDS's __init__ already asks for _info.

  def _rows(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    # Loaded once, and only when building: reading goes through builder_from_directory.
    if self._loaded is None:
      rows, metadata = load_source(self.builder_config)
      validate_rows(rows, self.builder_config.name)
      self._loaded = rows, metadata
    return self._loaded

  def _info(self) -> tfds.core.DatasetInfo:
    rows, metadata = self._rows()
    index = user_index(rows["user_id"], rows.get("group"))
    return tfds.core.DatasetInfo(
        builder=self, description=self.builder_config.description,
        features=tfds.features.FeaturesDict({k: _feature(v) for k, v in rows.items()}),
        disable_shuffling=True,  # Rows keep the loader's order.
        metadata=_Metadata(metadata, num_users=len(index["user_id"]),
                           feature_dim=int(rows["a"].shape[1]), index=index))

  def _split_generators(self, dl_manager):
    del dl_manager  # Sources are generated or read from installed packages, never downloaded.
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rows, _ = self._rows()
    for i in range(len(rows["label"])):
      yield i, {k: v[i] for k, v in rows.items()}


def dataset_dir(data_dir: str, config: ComparisonsConfig) -> str:
  return os.path.join(data_dir, NAME, config.name, VERSION)


class _LocalFiles:
  """The few `tf.io.gfile` calls TFDS's shuffler makes, on local files, for builds without
  TensorFlow: past 1 GB of serialised records it spills them to 1,000 bucket files through
  `tf.io.gfile` (tensorflow_datasets/core/shuffle.py), which would import TensorFlow."""

  class errors:  # noqa: N801 (mirrors tf.errors)
    class ResourceExhaustedError(Exception):
      message = ""

  class io:  # noqa: N801 (mirrors tf.io.gfile)
    class gfile:  # noqa: N801
      GFile = staticmethod(lambda path, mode="r": open(path, mode))  # noqa: SIM115
      exists = staticmethod(os.path.exists)
      remove = staticmethod(os.remove)


def _spill_without_tensorflow() -> None:
  """Lets TFDS's shuffler spill to local bucket files when TensorFlow is not installed."""
  from tensorflow_datasets.core import shuffle  # noqa: PLC0415
  try:
    import tensorflow  # noqa: F401, PLC0415
  except ImportError:
    shuffle.tf = _LocalFiles
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:  # 1,000 buckets open at once
      resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def build(config: ComparisonsConfig, data_dir: str) -> str:
  """Builds `config` into `data_dir` (a no-op when already built); returns its directory."""
  path = dataset_dir(data_dir, config)
  if not os.path.exists(os.path.join(path, "dataset_info.json")):
    _spill_without_tensorflow()
    # TFDS takes a named config by name only; other configs are passed whole.
    builder = Comparisons(config=config.name if config.name in DATASETS else config,
                          data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
  return path


@dataclasses.dataclass(frozen=True)
class Opened:
  """A built data set: its random-access records, user index, features and metadata.

  `source` returns the serialised records (`__getitems__` reads many in one call, in C++);
  `read` decodes them a chunk at a time (vpl/data/records.py), or one by one with TFDS's
  `features` when the records do not share one layout.
  """
  path: str
  source: Any  # serialised records: len(), [i], __getitems__([i, ...]) (records.RecordFiles)
  index: dict[str, np.ndarray]
  dtypes: dict[str, np.dtype]
  metadata: dict
  features: Any = None  # tfds.features.FeaturesDict: the one-by-one fallback

  @property
  def num_rows(self) -> int:
    return len(self.source)

  @property
  def feature_dim(self) -> int:
    return int(self.metadata["feature_dim"])

  def read(self, rows: Sequence[int], fields: Optional[Sequence[str]] = None
           ) -> dict[str, np.ndarray]:
    """The fields of records `rows` (in that order), stacked: `{field: [len(rows), ...]}`."""
    fields = tuple(self.dtypes) if fields is None else tuple(fields)
    raw = self.source.__getitems__(np.asarray(rows, np.int64).tolist())
    specs = {k: (self.dtypes[k], self._shape(k)) for k in fields}
    decoded = records.decode(raw, specs, fields)
    if decoded is not None:
      return decoded
    examples = [self.features.deserialize_example_np(r) for r in raw]
    return {k: np.asarray([e[k] for e in examples], self.dtypes[k]).reshape(
        (len(examples),) + self._shape(k)) for k in fields}

  def _shape(self, field: str) -> tuple[int, ...]:
    return tuple(self.metadata["shapes"][field])


def open_dataset(data_dir: str, config: ComparisonsConfig) -> Opened:
  """Opens a built data set for random access; raises with the build command when missing."""
  path = dataset_dir(data_dir, config)
  if not os.path.exists(os.path.join(path, "dataset_info.json")):
    raise ValueError(
        f"{path} holds no built data set for {config.description}. Build it with "
        f"`python -m experiments.build_datasets --data_dir={data_dir} "
        f"--config=<the experiment's config>` (or --datasets=<name> for a DATASETS entry).")
  builder = tfds.builder_from_directory(path)
  features = builder.info.features
  metadata = dict(builder.info.metadata)
  metadata["shapes"] = {k: tuple(features[k].shape) for k in features.keys()}
  with open(os.path.join(path, INDEX_FILE), "rb") as f:
    index = dict(np.load(f))
  files = builder.info.splits["train"].file_instructions
  if all(f.skip == 0 and f.take == f.examples_in_shard for f in files):
    source = records.RecordFiles([f.filename for f in files], [f.take for f in files])
  else:  # Part of a file: TFDS's own data source knows how to read it.
    source = builder.as_data_source(
        deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)["train"]
  return Opened(path, source, index,
                {k: np.dtype(features[k].np_dtype) for k in features.keys()}, metadata,
                features)


def read_rows(opened: Opened, chunk: int = 8192) -> dict[str, np.ndarray]:
  """Every row, in file order (reads everything: for tests and small data sets)."""
  parts = [opened.read(range(i, min(i + chunk, opened.num_rows)))
           for i in range(0, opened.num_rows, chunk)]
  return {k: np.concatenate([p[k] for p in parts]) for k in opened.dtypes}
