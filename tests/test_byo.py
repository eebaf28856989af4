"""vpl/data/byo.py: the four file formats, every validation error, and the round trip of a
synthetic task through a file into training (same result as the task in memory)."""

import json
import os
import re

import numpy as np
import pytest

from conftest import edited
from experiments.configs import byo as byo_config
from vpl import experiment
from vpl.data import byo
from vpl.data.rows import from_comparisons

FORMATS = ("csv", "jsonl", "parquet", "npz")


def _rows():
  """Five comparisons by three users over 3 features, with groups and timestamps."""
  rng = np.random.default_rng(0)
  return dict(user_id=np.array([7, 7, 3, 3, 12]), a=rng.normal(size=(5, 3)).astype(np.float32),
              b=rng.normal(size=(5, 3)).astype(np.float32),
              label=np.array([1, 0, 0.25, 1, 0], np.float32),
              group=np.array([1, 1, 0, 0, 1], np.int32),
              timestamp=np.array([10.0, 11.5, 3.0, 1.0, 1e9]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_load_gives_the_same_rows(tmp_path, fmt):
  rows = _rows()
  path = str(tmp_path / f"pairs.{fmt}")
  byo.write(path, rows)
  loaded = byo.load(path)
  assert set(loaded.arrays) == set(rows)
  for k, v in rows.items():
    np.testing.assert_array_equal(loaded.arrays[k], v, err_msg=k)
    assert loaded.arrays[k].dtype == {"user_id": np.int64, "group": np.int32,
                                      "timestamp": np.float64}.get(k, np.float32), k
  assert loaded.feature_names == ("0", "1", "2") and loaded.filters == {}
  assert loaded.num_users == 3 and loaded.info["format"] == fmt


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_csv_named_features_names_and_reordered_b(tmp_path):
  path = _write(tmp_path, "named.csv",
                "user_id,a_price,a_time,b_time,b_price,label,group\n"
                "alice,1,2,20,10,1,young\n"
                "bob,3,4,40,30,0,old\n"
                "alice,5,6,60,50,0.5,young\n")
  rows = byo.load(path)
  assert rows.feature_names == ("price", "time")
  np.testing.assert_array_equal(rows.arrays["b"], [[10, 20], [30, 40], [50, 60]])
  # Names are mapped to codes in sorted order, and the names are kept.
  np.testing.assert_array_equal(rows.arrays["user_id"], [0, 1, 0])
  assert rows.info["user_names"] == ["alice", "bob"]
  np.testing.assert_array_equal(rows.arrays["group"], [1, 0, 1])
  assert rows.group_names == ("old", "young")


def test_readme_example_file_loads(tmp_path):
  # The README's 5-line example (header + 4 comparisons); docs/data.md holds the same one.
  from conftest import REPO
  for doc in ("README.md", os.path.join("docs", "data.md")):
    text = open(os.path.join(REPO, doc)).read()
    example = re.search(r"```csv\n(.*?)```", text, re.S).group(1)
    assert len(example.strip().splitlines()) == 5, doc
  text = open(os.path.join(REPO, "README.md")).read()
  example = re.search(r"```csv\n(.*?)```", text, re.S).group(1)
  assert len(example.strip().splitlines()) == 5
  rows = byo.load(_write(tmp_path, "example.csv", example))
  assert rows.num_rows == 4 and rows.arrays["a"].shape == (4, 3)


def _error(tmp_path, name, text):
  path = _write(tmp_path, name, text)
  with pytest.raises(ValueError) as e:
    byo.load(path)
  message = str(e.value)
  assert path in message, message  # every error names the file
  return message


HEADER = "user_id,a_0,a_1,b_0,b_1,label\n"


def test_nan_feature(tmp_path):
  m = _error(tmp_path, "nan.csv", HEADER + "1,0.5,1,2,3,1\n1,nan,1,2,3,0\n")
  assert "line 3" in m and "a_0" in m and "nan" in m and "finite" in m and "Impute" in m


def test_inf_feature_jsonl(tmp_path):
  m = _error(tmp_path, "inf.jsonl",
             '{"user_id": 1, "a": [0, 1], "b": [1, 2], "label": 1}\n'
             '{"user_id": 1, "a": [0, 1], "b": [1, Infinity], "label": 0}\n')
  assert "line 2" in m and "b_1" in m and "inf" in m


def test_missing_feature_value(tmp_path):
  m = _error(tmp_path, "hole.csv", HEADER + "1,0.5,,2,3,1\n")
  assert "line 2" in m and "a_1" in m and "missing value" in m


def test_rows_of_different_widths_csv(tmp_path):
  m = _error(tmp_path, "ragged.csv", HEADER + "1,0,1,2,3,1\n1,0,1,2,1\n")
  assert "line 3 has 5 fields" in m and "header has 6" in m


def test_rows_of_different_widths_jsonl(tmp_path):
  m = _error(tmp_path, "ragged.jsonl",
             '{"user_id": 1, "a": [0, 1], "b": [1, 2], "label": 1}\n'
             '{"user_id": 1, "a": [0, 1, 2], "b": [1, 2, 3], "label": 0}\n')
  assert "line 2" in m and "has 3 features" in m and "line 1 has 2" in m


def test_rows_of_different_widths_parquet(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  path = str(tmp_path / "ragged.parquet")
  pq.write_table(pa.table(dict(user_id=[1, 2], a=[[0.0, 1.0], [0.0]], b=[[1.0, 2.0], [1.0]],
                               label=[1.0, 0.0])), path)
  with pytest.raises(ValueError, match=r"row 1, field a has 1 features but row 0 has 2"):
    byo.load(path)


def test_a_and_b_of_different_widths_npz(tmp_path):
  path = str(tmp_path / "widths.npz")
  np.savez(path, user_id=np.arange(2), a=np.zeros((2, 3)), b=np.zeros((2, 4)),
           label=np.ones(2))
  with pytest.raises(ValueError, match="a has 3 features per row but b has 4"):
    byo.load(path)


@pytest.mark.parametrize("label", ["1.5", "-1"])
def test_label_outside_unit_interval(tmp_path, label):
  m = _error(tmp_path, "label.csv", HEADER + f"1,0,1,2,3,1\n2,0,1,2,3,{label}\n")
  assert "line 3" in m and f"label = {float(label)}" in m and "[0, 1]" in m


def test_missing_user_id_csv(tmp_path):
  m = _error(tmp_path, "nouser.csv", HEADER + "1,0,1,2,3,1\n,0,1,2,3,0\n")
  assert "line 3" in m and "user_id" in m and "missing value" in m


def test_missing_user_id_jsonl(tmp_path):
  m = _error(tmp_path, "nouser.jsonl",
             '{"user_id": 1, "a": [0], "b": [1], "label": 1}\n'
             '{"user_id": null, "a": [0], "b": [1], "label": 1}\n')
  assert "line 2" in m and "user_id = None" in m


def test_missing_user_id_column(tmp_path):
  m = _error(tmp_path, "nocolumn.csv", "a_0,b_0,label\n0,1,1\n")
  assert "'user_id'" in m


def test_duplicate_columns_csv(tmp_path):
  m = _error(tmp_path, "dup.csv", "user_id,a_0,a_0,b_0,label\n1,0,0,1,1\n")
  assert "['a_0']" in m and "more than once" in m


def test_duplicate_keys_jsonl(tmp_path):
  m = _error(tmp_path, "dup.jsonl", '{"user_id": 1, "a": [0], "a": [1], "b": [1], "label": 1}\n')
  assert "line 1" in m and "['a']" in m


@pytest.mark.parametrize("name,text", [("empty.csv", ""), ("header_only.csv", HEADER),
                                       ("empty.jsonl", "\n\n")])
def test_empty_file(tmp_path, name, text):
  assert "empty" in _error(tmp_path, name, text)


def test_empty_npz(tmp_path):
  path = str(tmp_path / "empty.npz")
  np.savez(path, user_id=np.zeros(0), a=np.zeros((0, 2)), b=np.zeros((0, 2)), label=np.zeros(0))
  with pytest.raises(ValueError, match="empty"):
    byo.load(path)


def test_unknown_column_and_group_change_within_user(tmp_path):
  assert "['lable']" in _error(tmp_path, "typo.csv", "user_id,a_0,b_0,lable\n1,0,1,1\n")
  m = _error(tmp_path, "groups.csv", "user_id,a_0,b_0,label,group\n1,0,1,1,0\n1,0,1,1,2\n")
  assert "line 3" in m and "group = 2" in m and "one group" in m


def test_unknown_extension(tmp_path):
  assert "extension" in _error(tmp_path, "pairs.txt", HEADER)


# --- A synthetic task through a file gives the same training result as in memory.

@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
  config = edited(experiment_tiny(), **{"train.num_steps": 100, "train.checkpoint_every": 50})
  return config, experiment.train_and_evaluate(config, str(tmp_path_factory.mktemp("memory")))


def experiment_tiny():
  from experiments.configs import tiny
  return tiny.get_config()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_trains_like_the_task_in_memory(tmp_path, in_memory, fmt):
  config, expected = in_memory
  task = experiment.build_task(config)
  path = str(tmp_path / f"task.{fmt}")
  byo.write(path, from_comparisons(task.data))
  # The file's rows regroup into exactly the task's comparisons.
  loaded = byo.load(path)
  np.testing.assert_array_equal(loaded.arrays["a"].reshape(task.data.a.shape), task.data.a)
  byo_cfg = byo_config.get_config(f"path={path}")
  byo_cfg.unlock()
  for group in ("model", "loss", "optim", "train", "data"):
    if group != "data":
      byo_cfg[group] = config[group]
  byo_cfg.data.heldout_fraction = config.data.heldout_fraction
  byo_cfg.eval.num_context = config.eval.num_context
  byo_cfg.methods = config.methods
  byo_cfg.data.standardize = False  # the in-memory task is not standardised
  byo_cfg.lock()
  got = experiment.train_and_evaluate(byo_cfg, str(tmp_path / "run"))
  assert got["oracle_accuracy"] is None and "oracle" in got["skipped"]
  assert got["num_train_users"] == expected["num_train_users"]
  for name in config.methods:
    for key in ("heldout_accuracy", "group_accuracy", "worst_group_accuracy"):
      assert got["methods"][name][key] == expected["methods"][name][key], (name, key)
  json.dumps(got)  # results stay JSON-serialisable
