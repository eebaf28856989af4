"""Shared fixtures: the tiny config, its task, and helpers for subprocess tests.

Everything runs on CPU. The suite keeps models tiny and shares what is expensive (the
end-to-end run lives in test_experiment.py at module scope); JAX compilation is most of the
cost.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from experiments.configs import tiny  # noqa: E402


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: runs subprocesses (SIGKILL resume, forced devices); ~10-40 s each.")


@pytest.fixture
def tiny_config():
  """A fresh, locked copy of experiments/configs/tiny.py (tests may unlock and edit it)."""
  return tiny.get_config()


def edited(config, **fields):
  """A copy of `config` with dotted `fields` set, e.g. edited(c, **{"train.num_steps": 4})."""
  from vpl import configs
  return configs.with_overrides(config, fields)


def swap_pairs(part: dict, swap: np.ndarray) -> dict:
  """`part` with a and b exchanged and the label flipped where `swap` is True (other keys kept)."""
  return dict(part, a=np.where(swap[..., None], part["b"], part["a"]),
              b=np.where(swap[..., None], part["a"], part["b"]),
              label=np.where(swap, 1 - part["label"], part["label"]))


def subprocess_env(**extra) -> dict:
  """The environment for a child Python: repo importable, CPU only, quiet TF/absl."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  env.pop("XLA_FLAGS", None)
  env.update(extra)
  return env


def run_python(args, *, env=None, timeout=300, check=True) -> subprocess.CompletedProcess:
  """Runs `python ARGS` from the repo root and returns the completed process."""
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env or subprocess_env(),
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode:
    raise AssertionError(f"python {' '.join(args)} exited {proc.returncode}:\n"
                         f"{proc.stderr[-4000:]}")
  return proc


def assert_trees_equal(x, y):
  """Exact (bitwise) equality of two nested dicts of arrays, leaf by leaf."""
  import jax
  paths_x = jax.tree_util.tree_flatten_with_path(x)[0]
  paths_y = jax.tree_util.tree_flatten_with_path(y)[0]
  assert [p for p, _ in paths_x] == [p for p, _ in paths_y]
  for (path, a), (_, b) in zip(paths_x, paths_y):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, jax.tree_util.keystr(path)
    assert np.array_equal(a, b), (
        f"{jax.tree_util.keystr(path)} differs: max |diff| {np.abs(a - b).max()}")
