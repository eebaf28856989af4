"""Multi-process training on JAX's distributed runtime, and how a launch is detected.

The slow test starts two `experiments.main` processes on this machine (coordinator
127.0.0.1, 2 forced CPU devices each: one 4-device mesh over two processes) and one
single-process run on 4 forced devices, and checks they train and score the same.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, subprocess_env
from vpl import distributed

SLURM_2 = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="node[1-2]", SLURM_NTASKS="2",
               SLURM_PROCID="1", SLURM_LOCALID="0")


def test_cluster_from_env():
  assert distributed.cluster_from_env({}) is None
  assert distributed.cluster_from_env(SLURM_2) == "slurm"
  # A one-task SLURM job (an sbatch script running a single python) is one process.
  assert distributed.cluster_from_env(dict(SLURM_2, SLURM_NTASKS="1")) is None
  # jax's SLURM detection needs every variable; a partial set is not a cluster.
  partial = {k: v for k, v in SLURM_2.items() if k != "SLURM_STEP_NODELIST"}
  assert distributed.cluster_from_env(partial) is None
  assert distributed.cluster_from_env(dict(TPU_WORKER_HOSTNAMES="t-0,t-1")) == "tpu"
  assert distributed.cluster_from_env(dict(TPU_WORKER_HOSTNAMES="t-0")) is None


def test_should_initialize():
  explicit = distributed.Launch("auto", "127.0.0.1:1234", 2, 0)
  assert not distributed.should_initialize(distributed.Launch(), {})  # a laptop run
  assert distributed.should_initialize(distributed.Launch(), SLURM_2)
  assert distributed.should_initialize(explicit, {})
  assert distributed.should_initialize(distributed.Launch("on"), {})
  assert not distributed.should_initialize(distributed.Launch("off"), SLURM_2)
  assert not distributed.initialize(distributed.Launch(), {})  # returns without starting


def test_launch_rejects_partial_or_inconsistent_flags():
  with pytest.raises(ValueError, match="give all three"):
    distributed.Launch("auto", "127.0.0.1:1234", 2, None)
  with pytest.raises(ValueError, match="process_id = 2 with num_processes = 2"):
    distributed.Launch("auto", "127.0.0.1:1234", 2, 2)
  with pytest.raises(ValueError, match="mode = 'off' but coordinator_address"):
    distributed.Launch("off", "127.0.0.1:1234", 2, 0)
  with pytest.raises(ValueError, match="'auto', 'on' or 'off'"):
    distributed.Launch("yes")


def test_fingerprint():
  x = dict(a=np.arange(6, dtype=np.float32), b=np.zeros((2, 3), bool))
  same = distributed.fingerprint(dict(b=x["b"].copy(), a=x["a"].copy()))  # order-free
  np.testing.assert_array_equal(distributed.fingerprint(x), same)
  changed = dict(x, a=x["a"] + np.float32(1e-6) * (np.arange(6) == 5))
  assert (distributed.fingerprint(changed) != same).any()
  reshaped = dict(x, a=x["a"].reshape(2, 3))  # same bytes, other shape
  assert (distributed.fingerprint(reshaped) != same).any()
  distributed.check_same_on_all_processes(x, "x")  # one process: nothing to compare


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# VPL only (its encoder, decoder and latent report cover what BTL would), 2 jitted calls.
TINY = ["--config=experiments/configs/tiny.py", "--config.methods=('vpl',)",
        "--config.train.num_steps=20", "--config.train.steps_per_call=10",
        "--config.train.checkpoint_every=20", "--config.eval.reward_maps=False"]


def _main(workdir, devices: int, *extra) -> subprocess.Popen:
  env = subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen([sys.executable, "-m", "experiments.main", f"--workdir={workdir}",
                           *TINY, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_match_one_process_with_four_devices(tmp_path):
  two, four = str(tmp_path / "two"), str(tmp_path / "four")
  coordinator = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2"]
  procs = [_main(two, 2, *coordinator, f"--process_id={i}") for i in (0, 1)]
  procs.append(_main(four, 4))
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  # The runtime started: one mesh of 4 devices over the two processes.
  assert "jax.distributed: process 1 of 2, 2 local of 4 devices" in outs[1][1]
  # Only process 0 prints the table and writes files.
  assert "Wrote" in outs[0][0] and "Wrote" not in outs[1][0]

  res_two = json.load(open(os.path.join(two, "results.json")))
  res_four = json.load(open(os.path.join(four, "results.json")))
  for name in ("oracle", "vpl"):
    a, b = dict(res_two["methods"][name]), dict(res_four["methods"][name])
    a.pop("train_seconds"), b.pop("train_seconds")
    # Accuracies are counts of correct predictions: identical. KL, latent variances and the
    # calibration metrics (NLL, Brier, ECE: means of probabilities) go through float sums
    # whose order differs across processes: equal to float tolerance.
    close = {k for k in a if k in ("mean_kl", "latent_variance", "nll", "brier", "ece")}
    assert {k: a[k] for k in a if k not in close} == {k: b[k] for k in b if k not in close}
    for k in close:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-4, err_msg=f"{name} {k}")

  lines = lambda w: [json.loads(x) for x in open(os.path.join(w, "metrics.jsonl"))]
  two_rows, four_rows = lines(two), lines(four)
  # One line per method per jitted call: written once, not once per process.
  assert [(r["method"], r["step"]) for r in two_rows] == [("vpl", 10), ("vpl", 20)]
  assert [(r["method"], r["step"]) for r in four_rows] == [
      (r["method"], r["step"]) for r in two_rows]
  np.testing.assert_allclose([r["loss"] for r in two_rows], [r["loss"] for r in four_rows],
                             rtol=1e-5)

  # Final parameters, each restored here on 1 device from its checkpoint.
  from vpl import analysis
  from flax import nnx
  run_two, run_four = analysis.load_run(two), analysis.load_run(four)
  assert run_two.steps == run_four.steps == {"vpl": 20}
  for name in ("vpl",):
    flat_two = dict(nnx.to_flat_state(nnx.state(run_two.models[name])))
    flat_four = dict(nnx.to_flat_state(nnx.state(run_four.models[name])))
    assert flat_two.keys() == flat_four.keys()
    for path in flat_two:
      np.testing.assert_allclose(np.asarray(flat_two[path].get_value()),
                                 np.asarray(flat_four[path].get_value()),
                                 rtol=1e-4, atol=1e-6, err_msg=f"{name} {path}")


@pytest.mark.slow
def test_two_processes_stream_their_own_sets(tmp_path):
  """Streamed: each process reads only the rows of the sets its devices train on, and the
  parameters equal those of one process (4 devices) reading every row."""
  from experiments.configs import tiny
  from vpl.data import tfds_builders
  c = tiny.get_config()
  data_dir = str(tmp_path / "tfds")
  tfds_builders.build(
      tfds_builders.make_config(c.data.source, c.data.kwargs.to_dict(), c.seed), data_dir)
  stream = ["--config.streaming.enabled=True", f"--config.streaming.data_dir={data_dir}"]
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  coordinator = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2"]
  procs = [_main(two, 2, *stream, *coordinator, f"--process_id={i}") for i in (0, 1)]
  procs.append(_main(one, 4, *stream))
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]

  def rows_read(err: str) -> int:
    line = next(x for x in err.splitlines() if "streaming: process" in x)
    return int(line.split(" read ")[1].split()[0])

  halves, whole = [rows_read(outs[i][1]) for i in (0, 1)], rows_read(outs[2][1])
  # Each process reads its half of every batch: fewer rows than one process reading all
  # (not exactly half: a row drawn in both halves of a chunk is read by both processes).
  assert all(0 < h < whole for h in halves), (halves, whole)
  assert sum(halves) >= whole

  from vpl import analysis
  from flax import nnx
  run_two, run_one = analysis.load_run(two), analysis.load_run(one)
  assert run_two.steps == run_one.steps == {"vpl": 20}
  flat_two = dict(nnx.to_flat_state(nnx.state(run_two.models["vpl"])))
  flat_one = dict(nnx.to_flat_state(nnx.state(run_one.models["vpl"])))
  assert flat_two.keys() == flat_one.keys()
  for path in flat_two:
    # Same batches; the gradient's all-reduce sums in another order across processes.
    np.testing.assert_allclose(np.asarray(flat_two[path].get_value()),
                               np.asarray(flat_one[path].get_value()),
                               rtol=1e-4, atol=1e-6, err_msg=f"{path}")
