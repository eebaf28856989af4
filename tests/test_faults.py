"""Fault injection: kills, damaged checkpoints, two starts on one workdir, changed data, NaN.

What README "What a run guarantees" promises, tried the hostile way:
- SIGKILL at seeded random moments (start-up, compile, training, checkpoint writes, MaxMin's
  EM, writing results) of a run of BTL, VPL, PReF and MaxMin; each rerun resumes, and the end
  state is bit-identical to an uninterrupted run's;
- the latest checkpoint damaged six ways: training resumes from the step before (and ends
  bit-identical), analysis restores the step before without touching the run;
- two runs started on one workdir at once: one runs, the other stops with the holder's pid;
- a data file changed between runs: the resume is refused, naming the file;
- a step whose update makes the parameters NaN at a checkpoint boundary: nothing non-finite
  is saved, and the error says what to change and where.
Each test prints its counts (`pytest -s`); the closing note of the issue quotes them.
"""

import dataclasses
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import REPO, assert_trees_equal, edited, run_python, subprocess_env
from experiments.configs import tiny
from vpl import analysis, methods, train
from vpl.checkpointing import Checkpointer
from vpl.data import byo
from vpl.experiment import experiment_data, train_and_evaluate

pytestmark = pytest.mark.slow

KILL_OVERRIDES = {
    "methods": "('btl', 'vpl', 'pref', 'maxmin')", "train.num_steps": 400,
    "train.steps_per_call": 50, "train.checkpoint_every": 50, "eval.reward_maps": False,
    "maxmin.restarts": 2, "maxmin.max_rounds": 3, "maxmin.steps_per_round": 50,
    "pref.prefit_steps": 50}
NUM_KILLS = 6


def _command(workdir):
  return (["-m", "experiments.main", f"--workdir={workdir}",
           "--config=experiments/configs/tiny.py"]
          + [f"--config.{k}={v}" for k, v in KILL_OVERRIDES.items()])


def _raw_latest(ckpt_dir):
  """The latest step's saved state as plain arrays (no template needed)."""
  steps = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  return steps[-1], ocp.StandardCheckpointer().restore(
      os.path.join(ckpt_dir, str(steps[-1]), "state"))


def _scores(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  return {name: {k: v for k, v in m.items() if k not in ("train_seconds", "fit")}
          for name, m in results["methods"].items()}


def test_sigkill_at_random_moments_resumes_bit_identical(tmp_path):
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  env = subprocess_env()
  start = time.monotonic()
  run_python(_command(reference), env=env, timeout=600)
  duration = time.monotonic() - start
  rng = np.random.default_rng(15)
  kills = finished = 0
  # Each attempt resumes the last; one that ends before its kill finished the run, and the
  # next one resumes a finished run (scoring and writing results: a moment to kill, too).
  for delay in rng.uniform(1.0, 0.5 * duration, size=NUM_KILLS):
    proc = subprocess.Popen([sys.executable, *_command(killed)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait(timeout=60)
      kills += 1
    else:
      finished += 1
  run_python(_command(killed), env=env, timeout=600)
  identical = 0
  for name in ("btl", "vpl", "pref", "maxmin"):
    step_r, state_r = _raw_latest(os.path.join(reference, "checkpoints", name))
    step_k, state_k = _raw_latest(os.path.join(killed, "checkpoints", name))
    assert step_k == step_r, name
    assert_trees_equal(state_k, state_r)
    identical += 1
  assert _scores(killed) == _scores(reference)
  print(f"\nSIGKILL: {NUM_KILLS} attempts over a {duration:.0f} s run, {kills} killed at "
        f"seeded random moments, {finished} finished first; {identical}/4 methods "
        f"bit-identical to the uninterrupted run, results identical")
  assert kills >= 1


# --- damaged checkpoints -------------------------------------------------------------------

def _largest_data_file(step_dir):
  files = glob.glob(os.path.join(step_dir, "state", "d", "*"))
  return max(files, key=os.path.getsize)


def _truncate(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _zero(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    f.write(b"\0" * os.path.getsize(path))


def _empty_metadata(step_dir):
  open(os.path.join(step_dir, "state", "_METADATA"), "w").close()


def _empty_dir(step_dir):
  shutil.rmtree(step_dir)
  os.makedirs(step_dir)


CORRUPTIONS = {
    "truncated data file": _truncate, "zeroed data file": _zero,
    "empty _METADATA": _empty_metadata,
    "meta item deleted": lambda d: shutil.rmtree(os.path.join(d, "meta")),
    "state item deleted": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "empty step directory": _empty_dir,
}


def test_damaged_latest_checkpoint_falls_back_to_the_step_before(tmp_path):
  config = edited(tiny.get_config(), **{"train.num_steps": 150, "train.steps_per_call": 50,
                                        "train.checkpoint_every": 50})
  exp = experiment_data(config)
  method = methods.make_method("btl", config)
  reference = str(tmp_path / "reference")
  model_ref, _ = train.fit(method, config, exp.train, ckpt_dir=reference)
  _, state_ref = _raw_latest(reference)
  recovered = 0
  for k, (what, corrupt) in enumerate(CORRUPTIONS.items()):
    run_dir = str(tmp_path / f"damaged_{k}")
    shutil.copytree(reference, run_dir)
    corrupt(os.path.join(run_dir, "150"))
    # Analysis: the step before is restored and the run is left as it is.
    model, step = analysis.restore_model(method, config, exp.train.feature_dim, run_dir)
    assert step == 100, what
    assert os.path.isdir(os.path.join(run_dir, "150")), what
    # Training: resumes from step 100, moves step 150 aside, and ends where the reference did.
    _, info = train.fit(method, config, exp.train, ckpt_dir=run_dir)
    assert info["resumed_from"] == 100, what
    assert os.path.isdir(os.path.join(run_dir, "damaged", "150")), what
    step, state = _raw_latest(run_dir)
    assert step == 150, what
    assert_trees_equal(state, state_ref)
    recovered += 1
  print(f"\ncheckpoint damage: {len(CORRUPTIONS)} kinds tried, {recovered} recovered "
        f"bit-identical")
  assert recovered == len(CORRUPTIONS)


# --- two starts on one workdir -------------------------------------------------------------

def test_two_concurrent_starts_one_runs_the_other_is_refused(tmp_path):
  workdir = str(tmp_path / "run")
  args = ["-m", "experiments.main", f"--workdir={workdir}",
          "--config=experiments/configs/tiny.py", "--config.methods=('btl',)",
          "--config.eval.reward_maps=False"]
  env = subprocess_env()
  procs = [subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  codes = sorted(p.returncode for p in procs)
  assert codes[0] == 0 and codes[1] != 0, codes
  refused = outs[[p.returncode for p in procs].index(codes[1])][1]
  assert "is in use by another run: pid" in refused, refused[-2000:]
  assert os.path.exists(os.path.join(workdir, "results.json"))
  print("\nconcurrent starts: 2 started, 1 ran, 1 refused with the holder's pid")


# --- changed data --------------------------------------------------------------------------

def test_changed_data_file_is_refused_on_resume_and_in_load_run(tmp_path):
  users = experiment_data(tiny.get_config()).train  # any small set of users
  keep = users.mask.reshape(-1)
  rows = dict(user_id=np.repeat(users.user_id, users.a.shape[1])[keep],
              a=users.a.reshape(-1, 2)[keep], b=users.b.reshape(-1, 2)[keep],
              label=users.label.reshape(-1)[keep])
  path = str(tmp_path / "pairs.csv")
  byo.write(path, rows)
  from experiments.configs import byo as byo_config
  config = edited(byo_config.get_config(f"path={path}"), **{
      "methods": ("btl",), "train.num_steps": 50, "train.steps_per_call": 50,
      "train.checkpoint_every": 50, "model.hidden": (16,), "train.num_context": 4,
      "train.num_targets": 4, "eval.num_context": 4})
  workdir = str(tmp_path / "run")
  train_and_evaluate(config, workdir)
  train_and_evaluate(config, workdir)  # unchanged data: resumes
  byo.write(path, dict(rows, label=1.0 - rows["label"]))  # labels flipped
  for attempt in (lambda: train_and_evaluate(config, workdir),
                  lambda: analysis.load_run(workdir)):
    with pytest.raises(ValueError, match=r"trained on other data: the input file .*pairs\.csv "
                                         r"changed"):
      attempt()
  print("\nchanged data: 1 file changed; resume and load_run both refused, naming the file")


# --- NaN at a checkpoint boundary ----------------------------------------------------------

def _nan_gradient_loss(loss):
  """The method's loss plus a term whose value is 0 but whose gradient is NaN."""
  def with_nan_grad(model, batch, key, step):
    value, metrics = loss(model, batch, key, step)
    from flax import nnx
    leaf = jax.tree.leaves(nnx.state(model, nnx.Param))[0]
    return value + jnp.where(leaf < -1e30, jnp.sqrt(leaf), 0.0).sum(), metrics
  return with_nan_grad


def test_nan_parameters_are_never_checkpointed(tmp_path):
  config = edited(tiny.get_config(), **{"train.num_steps": 4, "train.steps_per_call": 1,
                                        "train.checkpoint_every": 1})
  exp = experiment_data(config)
  method = methods.make_method("btl", config)
  method = dataclasses.replace(method, loss=_nan_gradient_loss(method.loss))
  ckpt_dir = str(tmp_path / "btl")
  for attempt in range(2):  # the rerun meets the same step, and refuses it the same way
    with pytest.raises(FloatingPointError, match="NaN or infinite.*new --workdir"):
      train.fit(method, config, exp.train, ckpt_dir=ckpt_dir)
    ckpt = Checkpointer(ckpt_dir)
    assert ckpt.all_steps() == [], attempt  # step 1 held NaN: nothing was saved
    ckpt.close()
    assert not glob.glob(os.path.join(ckpt_dir, "*tmp*"))
  print("\nNaN at a checkpoint boundary: 2 runs, 0 non-finite steps saved")


# --- a failed save, and the lock of a dead process -----------------------------------------

FAILED_SAVE = """
import os, sys
from conftest import edited
from experiments.configs import tiny
from vpl import methods, train
from vpl.experiment import experiment_data
config = edited(tiny.get_config(), **{"model.latent_dim": 0, "train.num_steps": 20,
                                      "train.steps_per_call": 10, "train.checkpoint_every": 10})
try:  # config_checks would refuse latent_dim = 0 first; train.fit alone does not check it
  train.fit(methods.make_method("vpl", config), config, experiment_data(config).train,
            ckpt_dir=sys.argv[1])
except ValueError as e:
  print("refused:", e)
"""


def test_a_failed_save_neither_hangs_nor_leaves_a_temporary_directory(tmp_path):
  ckpt_dir = str(tmp_path / "vpl")
  proc = subprocess.run([sys.executable, "-c", FAILED_SAVE, ckpt_dir], cwd=REPO,
                        env=subprocess_env(PYTHONPATH=REPO + os.pathsep + REPO + "/tests"),
                        capture_output=True, text=True, timeout=180)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "refused:" in proc.stdout and "zero size" in proc.stdout, proc.stdout
  assert os.listdir(ckpt_dir) == []


HOLD = """
import sys, time
from vpl.workdir import lock
with lock(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
  from vpl.workdir import WorkdirBusy, lock
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen([sys.executable, "-c", HOLD, workdir], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkdirBusy, match=f"pid {holder.pid} on host"):
      with lock(workdir):
        pass
  finally:
    holder.kill()
    holder.wait(timeout=30)
  with lock(workdir) as path:  # the dead holder's lock file is stale: taken over
    assert str(os.getpid()) in open(path).read()
