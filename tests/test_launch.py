"""Launchers print the exact commands they would run (--dry_run), and sweeps expand into
jobs whose --config.X=Y flags parse into the intended config."""

import json
import os
import shlex
import types

import pytest

from conftest import run_python
from experiments import sweeps
from experiments.configs import default


def _dry(*args) -> list[str]:
  return run_python(list(args)).stdout.splitlines()


def test_tpu_vm_runs_one_command_on_every_worker():
  out = _dry("launch/tpu_vm.py", "--tpu=vpl-v4-16", "--zone=us-central2-b",
             "--project=my-proj", "--workdir=/mnt/shared/runs/h", "--setup", "--dry_run",
             "--", "--config.train.num_steps=10")
  assert out == [
      "gcloud compute tpus tpu-vm ssh vpl-v4-16 --zone=us-central2-b --project=my-proj "
      "--worker=all '--command=cd ~/vpl && bash launch/setup_env.sh --backend=tpu && "
      ".venv/bin/python -m "
      "experiments.main --workdir=/mnt/shared/runs/h --config=experiments/configs/default.py "
      "--distributed=on --config.train.num_steps=10'"]


def test_local_multi_process_commands():
  out = _dry("launch/local.py", "--workdir=runs/mp", "--num_processes=2", "--cpu_devices=2",
             "--port=12345", "--python=py", "--dry_run", "--", "--config.seed=3")
  env = "JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 "
  assert out == [env + "py -m experiments.main --workdir=runs/mp "
                 "--config=experiments/configs/default.py --coordinator_address=127.0.0.1:12345 "
                 f"--num_processes=2 --process_id={i} --config.seed=3" for i in (0, 1)]
  single = _dry("launch/local.py", "--workdir=runs/h", "--python=py", "--dry_run")
  assert single == ["py -m experiments.main --workdir=runs/h "
                    "--config=experiments/configs/default.py"]


def test_slurm_array_over_the_beta_latent_sweep(tmp_path):
  workdir = str(tmp_path / "sweep")
  out = _dry("launch/slurm.py", "--sweep=beta_latent", f"--workdir={workdir}",
             "--partition=gpu", "--gpus_per_node=1", "--repo_dir=/home/me/vpl", "--dry_run")
  assert not os.path.exists(workdir)  # a dry run writes nothing
  assert "#SBATCH --array=0-3" in out and "#SBATCH --partition=gpu" in out
  assert "#SBATCH --gpus-per-node=1" in out and "cd /home/me/vpl" in out
  assert out[-1] == f"sbatch {workdir}/sweep.sbatch"
  assert not any("setup_env" in line for line in out)  # only with --setup
  setup = _dry("launch/slurm.py", "--sweep=beta_latent", f"--workdir={workdir}",
               "--setup=cuda12", "--dry_run")
  assert "flock .venv.setup.lock bash launch/setup_env.sh --backend=cuda12" in setup
  assert setup.index("flock .venv.setup.lock bash launch/setup_env.sh --backend=cuda12") < (
      setup.index('case "$SLURM_ARRAY_TASK_ID" in'))
  jobs = [line for line in out if line.startswith("  ") and ") srun " in line]
  expected = [(0.1, 2), (0.1, 8), (1.0, 2), (1.0, 8)]  # the grid, last field fastest
  assert len(jobs) == 4
  for i, (line, (beta, latent)) in enumerate(zip(jobs, expected)):
    name = f"beta{beta}-latent_dim{latent}"
    assert line == (f"  {i}) srun .venv/bin/python -m experiments.main "
                    f"--workdir={workdir}/{name} --config=experiments/configs/default.py "
                    f"'--config.methods=(\"vpl\",)' --config.loss.beta={beta} "
                    f"--config.model.latent_dim={latent} ;;  # {name}")


PARSE = """
import json, sys
from absl import flags
from ml_collections import config_flags
config_flags.DEFINE_config_file("config", lock_config=True)
flags.FLAGS(["prog", *sys.argv[1:]])
c = flags.FLAGS.config
print(json.dumps(dict(methods=list(c.methods), beta=c.loss.beta, latent=c.model.latent_dim,
                      train_context=c.train.num_context, eval_context=c.eval.num_context,
                      shares=list(c.data.kwargs.shares))))
"""


@pytest.mark.parametrize("name", ["beta_latent", "ablations"])
def test_sweep_flags_parse_into_the_config(name):
  sweep = sweeps.load(name)
  jobs = sweeps.expand(sweep)
  assert len({j["name"] for j in jobs}) == len(jobs)
  # One child parses every job's flags, the way experiments.main does.
  lines = []
  for job in jobs:
    argv = [f"--config={sweep.CONFIG}", *sweeps.override_flags(job["overrides"])]
    lines.append(json.loads(run_python(["-c", PARSE, *argv]).stdout))
  for job, parsed in zip(jobs, lines):
    o = job["overrides"]
    assert parsed["methods"] == ["vpl"]
    assert parsed["beta"] == o.get("loss.beta", default.get_config().loss.beta)
    assert parsed["latent"] == o.get("model.latent_dim", 8)
    assert parsed["train_context"] == o.get("train.num_context", 8)
    assert parsed["eval_context"] == o.get("eval.num_context", 8)
    assert parsed["shares"] == list(o.get("data.kwargs.shares", (0.51, 0.49)))


def test_expand_order_names_and_errors():
  sweep = types.SimpleNamespace(CONFIG="c.py", FIXED={"seed": 1},
                                GRID={"loss.beta": (0.1, 1.0), "model.hidden": ((8, 8),)},
                                RUNS=[{"eval.num_context": 2, "train.num_context": 2}])
  jobs = sweeps.expand(sweep)
  assert [j["name"] for j in jobs] == ["beta0.1-hidden_8_8", "beta1.0-hidden_8_8",
                                       "eval.num_context2-train.num_context2"]
  assert jobs[0]["overrides"] == {"seed": 1, "loss.beta": 0.1, "model.hidden": (8, 8)}
  assert sweeps.override_flags(jobs[0]["overrides"]) == [
      "--config.seed=1", "--config.loss.beta=0.1", "--config.model.hidden=(8,8)"]
  assert shlex.split(shlex.join(sweeps.override_flags({"methods": ("vpl",)}))) == [
      '--config.methods=("vpl",)']
  with pytest.raises(ValueError, match="two jobs named 'beta0.1'"):
    sweeps.expand(types.SimpleNamespace(CONFIG="c", RUNS=[{"loss.beta": 0.1}] * 2))
  with pytest.raises(ValueError, match="sweep 'nope' not found .*known sweeps: .*beta_latent"):
    sweeps.load("nope")
