"""experiments/main.py as a real process: SIGKILL mid-run, rerun, bit-identical end state.

One uninterrupted run and one run killed with SIGKILL while VPL trains (BTL, trained first,
has finished) go side by side; the killed one is then rerun with the same command. Its final
checkpoints must equal the uninterrupted run's bit for bit, and so must its results.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

from conftest import REPO, assert_trees_equal, edited, run_python, subprocess_env
from experiments.configs import tiny
from vpl import methods, train
from vpl.checkpointing import Checkpointer

pytestmark = pytest.mark.slow

NUM_STEPS = 1000
OVERRIDES = {"train.num_steps": NUM_STEPS, "train.checkpoint_every": 50,
             "train.steps_per_call": 50, "eval.reward_maps": False}


def _command(workdir):
  return (["-m", "experiments.main", f"--workdir={workdir}",
           "--config=experiments/configs/tiny.py"]
          + [f"--config.{k}={v}" for k, v in OVERRIDES.items()])


def _step_dirs(directory):
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def _final_state(workdir, name, config):
  method = methods.make_method(name, config)
  tx = train.make_optimizer(config.optim, config.train.num_steps)
  _, like = train.init_state(method, 2, train.init_seed(config, name), tx)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints", name))
  assert ckpt.latest_step() == NUM_STEPS
  state, _ = ckpt.restore(NUM_STEPS, like)
  ckpt.close()
  return jax.device_get(state)


def _without_times(results):
  # `fit` says where a run resumed from, which differs between the two by design.
  return {name: {k: v for k, v in m.items() if k not in ("train_seconds", "fit")}
          for name, m in results["methods"].items()}


def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path):
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  env = subprocess_env()
  ref_proc = subprocess.Popen([sys.executable, *_command(reference)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  proc = subprocess.Popen([sys.executable, *_command(killed)], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  vpl_dir = os.path.join(killed, "checkpoints", "vpl")
  deadline = time.monotonic() + 240
  try:
    # Wait for VPL's first finished checkpoint: then BTL is done and VPL is mid-run.
    while not [s for s in _step_dirs(vpl_dir) if s < NUM_STEPS]:
      assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before it was killed"
      assert time.monotonic() < deadline, "no VPL checkpoint appeared within 240 s"
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, "results.json"))
  assert max(_step_dirs(vpl_dir)) < NUM_STEPS

  rerun = run_python(_command(killed), env=env)
  _, ref_err = ref_proc.communicate(timeout=300)
  assert ref_proc.returncode == 0, ref_err[-4000:]
  # The rerun resumed both methods rather than starting over.
  assert f"btl: resumed from step {NUM_STEPS}" in rerun.stderr
  assert "vpl: resumed from step" in rerun.stderr
  assert f"vpl: resumed from step {NUM_STEPS}" not in rerun.stderr

  config = edited(tiny.get_config(), **OVERRIDES)
  for name in ("btl", "vpl"):
    assert_trees_equal(_final_state(killed, name, config), _final_state(reference, name, config))
  with open(os.path.join(killed, "results.json")) as f, \
       open(os.path.join(reference, "results.json")) as g:
    assert _without_times(json.load(f)) == _without_times(json.load(g))

  # metrics.jsonl repeats the steps redone after the checkpoint; every row, repeats
  # included, has exactly the uninterrupted run's loss at that step.
  def rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]

  ref_loss = {(r["method"], r["step"]): r["loss"] for r in rows(reference)}
  killed_rows = rows(killed)
  assert {(r["method"], r["step"]) for r in killed_rows} == set(ref_loss)
  assert all(r["loss"] == ref_loss[r["method"], r["step"]] for r in killed_rows)
