"""Submits a sweep (experiments/sweeps/NAME.py) to SLURM as one sbatch job array.

  python launch/slurm.py --sweep=beta_latent --workdir=runs/beta_latent --partition=gpu
  ... --dry_run   prints the job script and the sbatch command; writes and submits nothing.

Array task i runs job i of the sweep: experiments.main with that job's --config.X=Y
overrides and its own workdir WORKDIR/<job name>. Each task runs `srun`, so with
--ntasks_per_node / --nodes above 1 it becomes one multi-process JAX run (experiments.main
detects the SLURM step). Rerunning a task resumes its workdir from the last checkpoint.
Arguments after `--` go to every job.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import sweeps  # noqa: E402
from launch import common  # noqa: E402


def job_commands(args: argparse.Namespace, extra: list[str]) -> list[tuple[str, list[str]]]:
  """`[(job name, argv)]` for every job of the sweep."""
  sweep = sweeps.load(args.sweep)
  return [(job["name"], common.main_command(
      args.python, os.path.join(args.workdir, job["name"]), sweep.CONFIG,
      sweeps.override_flags(job["overrides"]) + extra)) for job in sweeps.expand(sweep)]


def script(args: argparse.Namespace, jobs: list[tuple[str, list[str]]]) -> str:
  """The sbatch array script."""
  name = os.path.basename(args.sweep).removesuffix(".py")
  array = f"0-{len(jobs) - 1}" + (f"%{args.max_parallel}" if args.max_parallel else "")
  lines = ["#!/bin/bash", f"#SBATCH --job-name=vpl-{name}", f"#SBATCH --array={array}",
           f"#SBATCH --nodes={args.nodes}", f"#SBATCH --ntasks-per-node={args.ntasks_per_node}",
           f"#SBATCH --cpus-per-task={args.cpus_per_task}", f"#SBATCH --time={args.time}",
           f"#SBATCH --output={os.path.join(args.workdir, 'slurm-%A_%a.out')}"]
  if args.partition:
    lines.append(f"#SBATCH --partition={args.partition}")
  if args.gpus_per_node:
    lines.append(f"#SBATCH --gpus-per-node={args.gpus_per_node}")
  lines += ["set -euo pipefail", f"cd {shlex.quote(args.repo_dir)}"]
  if args.setup:  # one array task at a time (flock): they share the repository's .venv
    lines.append(f"flock .venv.setup.lock bash launch/setup_env.sh --backend={args.setup}")
  lines.append('case "$SLURM_ARRAY_TASK_ID" in')
  for i, (job, argv) in enumerate(jobs):
    lines.append(f"  {i}) srun {shlex.join(argv)} ;;  # {job}")
  lines += ['  *) echo "no job $SLURM_ARRAY_TASK_ID in this sweep" >&2; exit 1 ;;', "esac"]
  return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sweep", required=True, help="A name in experiments/sweeps/ or a path.")
  p.add_argument("--workdir", required=True, help="Base directory; job J runs in WORKDIR/J.")
  p.add_argument("--partition", default=None)
  p.add_argument("--time", default="01:00:00")
  p.add_argument("--nodes", type=int, default=1)
  p.add_argument("--ntasks_per_node", type=int, default=1)
  p.add_argument("--cpus_per_task", type=int, default=2)
  p.add_argument("--gpus_per_node", type=int, default=0)
  p.add_argument("--max_parallel", type=int, default=0, help="Array tasks at once (0: all).")
  p.add_argument("--repo_dir", default=os.getcwd(), help="The repository on the cluster.")
  p.add_argument("--python", default=".venv/bin/python", help="Relative to --repo_dir.")
  p.add_argument("--setup", default=None, choices=("cpu", "cuda12", "tpu"),
                 help="Run launch/setup_env.sh --backend=SETUP in each job first.")
  p.add_argument("--dry_run", action="store_true",
                 help="Print the script and the sbatch command; write and submit nothing.")
  return p.parse_args(argv)


def main() -> int:
  args, extra = parse(common.own_args()), common.passthrough(sys.argv)
  text = script(args, job_commands(args, extra))
  path = os.path.join(args.workdir, "sweep.sbatch")
  print(text, end="")
  print(common.shell(["sbatch", path]), flush=True)
  if args.dry_run:
    return 0
  os.makedirs(args.workdir, exist_ok=True)
  with open(path, "w") as f:
    f.write(text)
  return subprocess.run(["sbatch", path]).returncode


if __name__ == "__main__":
  sys.exit(main())
