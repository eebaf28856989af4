"""Configs as data: dotted overrides, and the config a run saved. Imports no JAX.

`with_overrides` is the in-process twin of `--config.loss.beta=0.1`: experiment configs
build on the default with it, and notebooks and sweeps use it too.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config from `workdir/config.json` (lists where the config had tuples)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist: workdir = {workdir!r} is not a run directory "
                     f"(experiments.main writes config.json first).")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.lock()
  return config


def lookup(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split("."):
    if part not in node:
      raise ValueError(f"config field {dotted!r} not found ({part!r} missing); use a dotted "
                       f"path such as 'loss.beta'.")
    node = node[part]
  return node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node


# Size fields that also take the string "auto" (chosen from data, vpl/size_selection.py):
# held as untyped references so `--config.maxmin.num_clusters=auto` and `=3` both parse.
AUTO_FIELDS = ("maxmin.num_clusters", "pref.num_bases", "model.latent_dim", "loss.nonlinear_l2",
               "pref.nonlinear_l2")


def allow_auto(config: ml_collections.ConfigDict) -> None:
  """Makes the AUTO_FIELDS of `config` (present ones) accept an int or "auto", in place."""
  for dotted in AUTO_FIELDS:
    *groups, last = dotted.split(".")
    node = config
    if not all(g in node for g in groups):
      continue
    for g in groups:
      node = node[g]
    if last in node:
      with config.unlocked():
        value = node[last]
        del node[last]
        node[last] = ml_collections.FieldReference(value, field_type=object)


def with_overrides(config: ml_collections.ConfigDict,
                   overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A locked copy of `config` with dotted fields set, e.g. `{'loss.beta': 0.1}`.

  The in-process twin of `--config.loss.beta=0.1` on the command line.
  """
  c = config.copy_and_resolve_references()
  for dotted, value in overrides.items():
    *groups, last = dotted.split(".")
    node = c
    for g in groups:
      if g not in node:
        raise ValueError(f"override {dotted!r}: config has no group {g!r}.")
      node = node[g]
    if last not in node:
      raise ValueError(f"override {dotted!r}: config has no field {last!r} (a typo? locked "
                       f"configs take no new fields).")
    with c.unlocked():
      if dotted in AUTO_FIELDS:
        del node[last]
      node[last] = value
  allow_auto(c)
  c.lock()
  return c
