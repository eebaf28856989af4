"""Runs experiments.main on this machine: one process, or N processes forming one
multi-process JAX run (coordinator on 127.0.0.1), e.g. to try multi-host code on a laptop.

  python launch/local.py --workdir=runs/headline
  python launch/local.py --workdir=runs/mp --num_processes=2 --cpu_devices=2 \
      --config=experiments/configs/tiny.py -- --config.train.num_steps=100
  ... --dry_run   prints the exact commands and starts nothing.

Arguments after `--` go to every experiments.main process unchanged.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch import common  # noqa: E402


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def commands(args: argparse.Namespace, extra: list[str]) -> list[tuple[dict, list[str]]]:
  """`[(environment additions, argv)]`, one per process."""
  env = {}
  if args.cpu_devices:
    env = dict(JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={args.cpu_devices}")
  if args.num_processes == 1:
    return [(env, common.main_command(args.python, args.workdir, args.config, extra))]
  port = args.port or free_port()
  return [(env, common.main_command(args.python, args.workdir, args.config, [
      f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={args.num_processes}",
      f"--process_id={i}", *extra])) for i in range(args.num_processes)]


def parse(argv: list[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--config", default="experiments/configs/default.py")
  p.add_argument("--num_processes", type=int, default=1)
  p.add_argument("--cpu_devices", type=int, default=0,
                 help="Force this many CPU devices per process (0: use the real devices).")
  p.add_argument("--port", type=int, default=0, help="Coordinator port (0: a free one).")
  p.add_argument("--python", default=sys.executable)
  p.add_argument("--dry_run", action="store_true", help="Print the commands; run nothing.")
  args = p.parse_args(argv)
  if args.num_processes < 1:
    p.error(f"--num_processes = {args.num_processes}; use 1 or more.")
  return args


def main() -> int:
  args, extra = parse(common.own_args()), common.passthrough(sys.argv)
  cmds = commands(args, extra)
  for env, argv in cmds:
    print(common.shell(argv, env), flush=True)
  if args.dry_run:
    return 0
  os.makedirs(args.workdir, exist_ok=True)
  procs = []
  for i, (env, argv) in enumerate(cmds):
    # Process 0 prints the results; the others' output goes to a log file each.
    out = None if i == 0 else open(os.path.join(args.workdir, f"process_{i}.log"), "w")
    procs.append(subprocess.Popen(argv, env={**os.environ, **env}, stdout=out,
                                  stderr=subprocess.STDOUT if out else None))
  codes = [p.wait() for p in procs]
  if any(codes):
    print(f"launch/local.py: exit codes {codes}; see {args.workdir}/process_*.log",
          file=sys.stderr)
  return max(codes)


if __name__ == "__main__":
  sys.exit(main())
