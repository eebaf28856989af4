"""The one parser of a config file's argument: `--config=FILE.py:key=value,key=value`.

Each config declares the keys it takes, with a default (or `REQUIRED`) and, where the values
are few, the choices; a wrong key, a missing required key or a value outside the choices is a
`ValueError` that names the config, the key, the value and what is allowed.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

REQUIRED = object()


class Key(NamedTuple):
  default: Any = REQUIRED
  choices: Optional[tuple] = None
  parse: Callable[[str], Any] = str  # applied to the string before checking choices


def parse(arg: Optional[str], config: str, **keys: Key) -> dict[str, Any]:
  """`{key: value}` for every declared key, from `arg` ('a=1,b=x') and the defaults."""
  given = {}
  for part in filter(None, (arg or "").split(",")):
    name, sep, value = part.partition("=")
    if not sep:
      raise ValueError(f"{config}:{arg}: {part!r} is not key=value; {config} takes "
                       f"{_usage(keys)}.")
    if name not in keys:
      raise ValueError(f"{config}:{arg}: unknown key {name!r}; {config} takes {_usage(keys)}.")
    given[name] = value
  out = {}
  for name, key in keys.items():
    if name not in given:
      if key.default is REQUIRED:
        raise ValueError(f"{config} needs {name}=...; it takes {_usage(keys)}.")
      out[name] = key.default
      continue
    try:
      value = key.parse(given[name])
    except ValueError as e:
      raise ValueError(f"{config}:{name}={given[name]} is not valid ({e}).") from None
    if key.choices is not None and value not in key.choices:
      raise ValueError(f"{config}:{name}={given[name]} is not one of {list(key.choices)}.")
    out[name] = value
  return out


def boolean(text: str) -> bool:
  if text not in ("true", "false"):
    raise ValueError("use true or false")
  return text == "true"


def shares(text: str) -> tuple[float, ...]:
  """'0.8/0.2' -> (0.8, 0.2)."""
  return tuple(float(s) for s in text.split("/"))


def _usage(keys: dict[str, Key]) -> str:
  return ", ".join(f"{n}=" + ("|".join(map(str, k.choices)) if k.choices else "...")
                   + ("" if k.default is REQUIRED else f" (default {k.default})")
                   for n, k in keys.items())
