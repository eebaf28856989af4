"""Checks a runner's `--config` flags before absl parses them, then runs it.

absl's config flags report a missing config file, a config's own argument error, or an
unknown `--config.group.field` as a traceback from inside ml_collections. `define_config`
checks them first and exits with one line that names the file, key or field and the fix.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from typing import Optional, Sequence

import ml_collections
from ml_collections import config_flags


def _flag_values(argv: Sequence[str], name: str) -> list[tuple[str, Optional[str]]]:
  """`(flag, value)` for each `--name...` in argv (`--name=v` or `--name v`)."""
  out = []
  for i, arg in enumerate(argv):
    if not arg.startswith(f"--{name}"):
      continue
    flag, sep, value = arg[2:].partition("=")
    if flag != name and not flag.startswith(f"{name}."):
      continue
    if not sep:
      value = argv[i + 1] if i + 1 < len(argv) else None
    out.append((flag, value))
  return out


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of `FILE[:arg]`; ValueError naming the file or the argument."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    here = os.path.dirname(path) or "."
    known = sorted(f for f in os.listdir(here) if f.endswith(".py")) if os.path.isdir(
        here) else []
    raise ValueError(f"--config={spec}: the config file {path} does not exist"
                     + (f"; {here} holds {', '.join(known)}" if known else "")
                     + " (paths are relative to the directory the command runs in).")
  module_spec = importlib.util.spec_from_file_location("_checked_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config={spec}: {path} has no get_config(); it is not a config file.")
  return module.get_config(arg) if arg else module.get_config()


def _check_field(config: ml_collections.ConfigDict, dotted: str) -> Optional[str]:
  node, parts = config, dotted.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = ".".join(parts[:depth]) or "the config"
      fields = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      return (f"--config.{dotted}: unknown config field ({where} has no {part!r}"
              + (f"; it has {', '.join(fields)}" if fields else "") + ").")
    node = node[part]
  return None


def config_flag_errors(argv: Sequence[str], default: Optional[str]) -> Optional[str]:
  """The first problem with argv's `--config` flags, in words; None when there is none."""
  flags = _flag_values(argv, "config")
  files = [v for f, v in flags if f == "config"]
  spec = files[-1] if files else default
  if spec is None:
    return None  # absl says the flag is required
  try:
    config = load_config_file(spec)
  except ValueError as e:
    return str(e)
  for flag, _ in flags:
    if flag != "config":
      problem = _check_field(config, flag[len("config."):])
      if problem:
        return problem
  return None


def define_config(default: Optional[str], help: str) -> None:
  """`--config` (ml_collections' config file flag), after checking argv's config flags.

  The check runs first because absl reads the config file when the flag is defined: a bad
  file, argument or field exits here with status 2 and one line.
  """
  error = config_flag_errors(sys.argv[1:], default)
  if error:
    sys.stderr.write(f"error: {error}\n")
    sys.exit(2)
  config_flags.DEFINE_config_file("config", default, help, lock_config=True)


def parse_sets(items: Sequence[str]) -> dict:
  """`["a.b=1", ...]` -> `{"a.b": 1, ...}`; a value that is not a Python literal is a string."""
  out = {}
  for item in items:
    field, sep, value = item.partition("=")
    if not sep or not field:
      raise ValueError(f"--set={item!r} is not FIELD=VALUE; write e.g. "
                       f"--set=model.encoder=deepsets.")
    try:
      out[field] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[field] = value
  return out
