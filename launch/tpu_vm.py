"""Runs experiments.main on every worker of a Cloud TPU VM slice, over `gcloud ... ssh`.

  python launch/tpu_vm.py --tpu=my-v4-16 --zone=us-central2-b --workdir=/mnt/shared/runs/x \
      -- --config.train.num_steps=10000
  ... --dry_run   prints the exact gcloud command and starts nothing.

Every worker runs the same command with `--distributed=on`: jax.distributed.initialize()
finds the slice's workers itself. The repository must sit at --repo_dir on every worker
(`--setup` runs launch/setup_env.sh there first), and the workdir must be on storage every
worker sees (checkpoints are written by all processes together).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # noqa: E402


def command(args: argparse.Namespace, extra: list[str]) -> list[str]:
  """The gcloud argv; its --command is what each worker runs."""
  run = common.main_command(args.python, args.workdir, args.config,
                            ["--distributed=on", *extra])
  remote = f"cd {args.repo_dir} && "
  if args.setup:
    remote += "bash launch/setup_env.sh --backend=tpu && "
  remote += shlex.join(run)
  argv = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.tpu, f"--zone={args.zone}"]
  if args.project:
    argv.append(f"--project={args.project}")
  return argv + ["--worker=all", f"--command={remote}"]


def parse(argv: list[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--tpu", required=True, help="TPU VM name.")
  p.add_argument("--zone", required=True)
  p.add_argument("--project", default=None)
  p.add_argument("--workdir", required=True, help="On storage shared by all workers.")
  p.add_argument("--config", default="experiments/configs/default.py")
  p.add_argument("--repo_dir", default="~/vpl", help="The repository on every worker.")
  p.add_argument("--python", default=".venv/bin/python", help="Relative to --repo_dir.")
  p.add_argument("--setup", action="store_true",
                 help="Run launch/setup_env.sh --backend=tpu first.")
  p.add_argument("--dry_run", action="store_true", help="Print the command; run nothing.")
  return p.parse_args(argv)


def main() -> int:
  args, extra = parse(common.own_args()), common.passthrough(sys.argv)
  argv = command(args, extra)
  print(common.shell(argv), flush=True)
  return 0 if args.dry_run else subprocess.run(argv).returncode


if __name__ == "__main__":
  sys.exit(main())
