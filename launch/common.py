"""What every launcher shares: the `experiments.main` command line, and printing it."""

from __future__ import annotations

import shlex
import sys
from typing import Sequence


def main_command(python: str, workdir: str, config: str, extra: Sequence[str] = ()) -> list[str]:
  """argv of one `experiments.main` process."""
  return [python, "-m", "experiments.main", f"--workdir={workdir}", f"--config={config}",
          *extra]


def shell(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
  """argv (with environment assignments in front) as one copy-pasteable shell line."""
  prefix = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
  return " ".join(prefix + [shlex.join(argv)])


def passthrough(argv: Sequence[str]) -> list[str]:
  """Arguments after a bare `--`, passed on to experiments.main (e.g. --config.X=Y)."""
  argv = list(argv)
  return argv[argv.index("--") + 1:] if "--" in argv else []


def own_args(argv: Sequence[str] | None = None) -> list[str]:
  """The launcher's own arguments: those before a bare `--`."""
  argv = list(sys.argv[1:] if argv is None else argv)
  return argv[:argv.index("--")] if "--" in argv else argv
