"""Every bad file and config a hostile user tried gets a clear error: file, row, field, fix.

Files go through `vpl.data.byo.load` (and the experiment where the problem shows only
there); configs through `vpl.config_checks.check` (what `train_and_evaluate` and `load_run`
run first) and `experiments.cli` (the `--config` flags, checked before absl reads them).
"""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, edited, subprocess_env
from experiments import cli
from experiments.configs import byo as byo_config
from experiments.configs import default, tiny
from vpl import config_checks, experiment
from vpl.data import byo


def _rows(num_users=4, per_user=10):
  rng = np.random.default_rng(0)
  n = num_users * per_user
  return dict(user_id=np.repeat(np.arange(num_users), per_user),
              a=rng.normal(size=(n, 2)).astype(np.float32),
              b=rng.normal(size=(n, 2)).astype(np.float32),
              label=(rng.random(n) < 0.5).astype(np.float32))


@pytest.fixture
def csv_bytes(tmp_path):
  path = str(tmp_path / "good.csv")
  byo.write(path, _rows())
  with open(path, "rb") as f:
    return f.read()


def _load_error(path) -> str:
  with pytest.raises(ValueError) as e:
    byo.load(str(path))
  return str(e.value)


def test_a_directory_as_the_path(tmp_path):
  assert "is a directory" in _load_error(tmp_path)


def test_gzip_bytes_in_a_csv(tmp_path, csv_bytes):
  path = tmp_path / "pairs.csv"
  path.write_bytes(gzip.compress(csv_bytes))
  m = _load_error(path)
  assert "pairs.csv" in m and "gzip-compressed" in m and "gunzip" in m


def test_latin1_bytes_in_a_csv(tmp_path, csv_bytes):
  path = tmp_path / "pairs.csv"
  path.write_bytes(csv_bytes.replace(b"\n1,", b"\n1\xe9,", 1))
  m = _load_error(path)
  assert "not UTF-8" in m and "line " in m and "0xe9" in m and "iconv" in m


def test_a_csv_named_parquet(tmp_path, csv_bytes):
  path = tmp_path / "pairs.parquet"
  path.write_bytes(csv_bytes)
  m = _load_error(path)
  assert "pairs.parquet" in m and "not a Parquet file" in m and "starts with text" in m


def test_npz_with_an_object_array(tmp_path):
  path = tmp_path / "pairs.npz"
  np.savez(path, user_id=np.array([1, "x", None], dtype=object), a=np.zeros((3, 2)),
           b=np.zeros((3, 2)), label=np.zeros(3))
  m = _load_error(path)
  assert "pairs.npz" in m and "'user_id'" in m and "object array" in m and "pickle" in m


def test_truncated_npz(tmp_path):
  path = tmp_path / "pairs.npz"
  byo.write(str(path), _rows())
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  m = _load_error(path)
  assert "pairs.npz" in m and "truncated" in m and "np.savez" in m


def test_parquet_string_feature(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  path = tmp_path / "pairs.parquet"
  pq.write_table(pa.table({"user_id": [0, 0, 1], "a": [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]],
                           "b": [["1", "2"], ["1", "x"], ["1", "2"]], "label": [1, 0, 1]}),
                 str(path))
  m = _load_error(path)
  assert "row 0" in m and "field b[0]" in m and "'1'" in m and "numbers" in m


def test_user_id_too_large_for_int64(tmp_path):
  path = tmp_path / "pairs.csv"
  path.write_text("user_id,a_0,b_0,label\n1,0,1,1\n99999999999999999999999,0,1,0\n")
  m = _load_error(path)
  assert "line 3" in m and "user_id = '99999999999999999999999'" in m and "64-bit" in m


def test_long_user_ids_stay_distinct(tmp_path):
  # Two ids that one float64 cannot tell apart are two users.
  path = tmp_path / "pairs.csv"
  path.write_text("user_id,a_0,b_0,label\n12345678901234567,0,1,1\n12345678901234568,0,1,0\n")
  assert byo.load(str(path)).num_users == 2


def test_options_without_features(tmp_path):
  path = tmp_path / "pairs.jsonl"
  path.write_text('{"user_id": 1, "a": [], "b": [], "label": 1}\n' * 3)
  assert "has no features" in _load_error(path)


def test_a_one_user_file(tmp_path):
  path = str(tmp_path / "pairs.csv")
  byo.write(path, _rows(num_users=1, per_user=40))
  config = edited(byo_config.get_config(f"path={path}"), **{"methods": ("btl",)})
  with pytest.raises(ValueError, match=r"1 user\(s\) after filtering.*needs at least 2"):
    experiment.experiment_data(config)


# --- configs -------------------------------------------------------------------------------

BAD_VALUES = [("train.steps_per_call", 0), ("train.num_steps", 0), ("train.num_steps", -5),
              ("loss.beta", -1.0), ("optim.learning_rate", -1.0), ("train.batch_sets", 0),
              ("train.num_targets", 0), ("model.latent_dim", 0), ("optim.learning_rate", 0.0),
              ("data.heldout_fraction", 1.0), ("model.pooling", "max")]


@pytest.mark.parametrize("field,value", BAD_VALUES)
def test_config_value_refused_with_field_value_and_fix(field, value):
  config = edited(tiny.get_config(), **{field: value})
  with pytest.raises(ValueError) as e:
    config_checks.check(config)
  assert f"config {field} = {value!r}" in str(e.value) and f"--config.{field}=" in str(e.value)


def test_refused_before_anything_is_built(tmp_path):
  workdir = str(tmp_path / "run")
  with pytest.raises(ValueError, match="train.num_steps = 0"):
    experiment.train_and_evaluate(edited(tiny.get_config(), **{"train.num_steps": 0}), workdir)
  assert not os.path.exists(workdir)


def test_checkpoint_every_must_be_a_multiple_of_steps_per_call():
  config = edited(tiny.get_config(), **{"train.checkpoint_every": 75})
  with pytest.raises(ValueError, match="not a multiple of train.steps_per_call"):
    config_checks.check(config)


def test_every_shipped_config_passes():
  for name in ("default", "tiny", "compare", "navigation", "maxmin", "real", "adapt", "policy",
               "best_of_n", "select"):
    module = __import__(f"experiments.configs.{name}", fromlist=["get_config"])
    config_checks.check(module.get_config())
  config_checks.check(default.get_config())


@pytest.mark.parametrize("argv,expected", [
    (["--config.train.foo=1"], "--config.train.foo: unknown config field (train has no 'foo'"),
    (["--config.trian.num_steps", "3"], "the config has no 'trian'"),
    (["--config=experiments/configs/nothere.py"], "nothere.py does not exist"),
    (["--config=experiments/configs/compare.py:tsk=ufp4"], "unknown key 'tsk'"),
    (["--config=experiments/configs/compare.py:task=ufp9"], "task=ufp9 is not one of"),
])
def test_config_flags_checked_before_absl(argv, expected, monkeypatch):
  monkeypatch.chdir(REPO)
  assert expected in cli.config_flag_errors(argv, "experiments/configs/default.py")


def test_good_config_flags_pass(monkeypatch):
  monkeypatch.chdir(REPO)
  assert cli.config_flag_errors(
      ["--config=experiments/configs/navigation.py:goals=10", "--config.train.num_steps=5",
       "--workdir", "x"], "experiments/configs/default.py") is None


def test_cli_exits_with_one_line_not_a_traceback(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.main", f"--workdir={tmp_path}",
       "--config.train.foo=1"], cwd=REPO, env=subprocess_env(), capture_output=True,
      text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --config.train.foo: unknown config field (train has no 'foo'; it has "
      "batch_sets, checkpoint_every, context_order, min_context, num_context, num_steps, "
      "num_targets, steps_per_call)."]
