"""Training on 1 and on 4 forced CPU devices gives the same result within float tolerance.

XLA reads --xla_force_host_platform_device_count when JAX starts, so each device count runs
in its own Python (tests/device_equivalence_main.py); the two run side by side.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def _start(devices: int, out_path: str) -> subprocess.Popen:
  env = subprocess_env()
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return subprocess.Popen([sys.executable, "tests/device_equivalence_main.py", out_path],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _finish(proc: subprocess.Popen) -> dict:
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-4000:]
  return json.loads(stdout.strip().splitlines()[-1])


def test_one_and_four_devices_agree(tmp_path):
  one_path, four_path = str(tmp_path / "one.npz"), str(tmp_path / "four.npz")
  procs = {1: _start(1, one_path), 4: _start(4, four_path)}
  one, four = _finish(procs[1]), _finish(procs[4])

  # The flag took effect: otherwise this would compare 1 device with itself.
  assert one["device_count"] == 1 and four["device_count"] == 4
  for name in ("btl", "vpl", "vpl_blocks"):
    assert one["methods"][name]["state_devices"] == 1
    assert four["methods"][name]["state_devices"] == 4
    np.testing.assert_allclose(four["methods"][name]["loss"], one["methods"][name]["loss"],
                               rtol=1e-4)

  params_one, params_four = np.load(one_path), np.load(four_path)
  assert sorted(params_one.files) == sorted(params_four.files)
  assert any(k.startswith("vpl/encoder") for k in params_one.files)
  for key in params_one.files:
    np.testing.assert_allclose(params_four[key], params_one[key], rtol=1e-4, atol=1e-6,
                               err_msg=key)
  # The decoder in blocks, each block's backward at once: the same training as one piece.
  for key in (k for k in params_one.files if k.startswith("vpl/")):
    np.testing.assert_allclose(params_one[key.replace("vpl/", "vpl_blocks/", 1)],
                               params_one[key], rtol=1e-4, atol=1e-6, err_msg=key)

  # A batch that does not split over the devices is refused, naming the fix.
  assert one["indivisible_error"] is None
  assert four["indivisible_error"] == ("vpl's batch axis (6, set by train.batch_sets) does not "
                                       "split over 4 devices; make it a multiple of 4.")
