"""Reward-learning methods behind one interface (`vpl.method.Method`), and their registry.

A new method is one module here with `make(config) -> Method`, plus an entry in REGISTRY.
"""

from __future__ import annotations

from typing import Callable

import ml_collections

from vpl.methods import btl, dpl, maxmin, pref, vpl
from vpl.method import Batch, Method
from vpl.methods.sampling import sample_pairs, sample_sets

__all__ = ["Batch", "Method", "REGISTRY", "make_method", "sample_pairs", "sample_sets"]

REGISTRY: dict[str, Callable[[ml_collections.ConfigDict], Method]] = {
    "btl": btl.make, "vpl": vpl.make, "dpl_mv": dpl.make_mean_variance,
    "dpl_cat": dpl.make_categorical, "pref": pref.make,
    "maxmin": maxmin.make}

# Methods with the shared position-bias tower (model.condition_bias; vpl/models/condition_bias.py).
BIAS_METHODS = ("btl", "vpl", "dpl_mv", "dpl_cat", "pref", "maxmin")


def make_method(name: str, config: ml_collections.ConfigDict) -> Method:
  if name not in REGISTRY:
    raise ValueError(f"config.methods has {name!r}, which is not a method; choose from "
                     f"{sorted(REGISTRY)}.")
  if config.model.get("condition_bias", False) and name not in BIAS_METHODS:
    raise ValueError(f"config model.condition_bias = True, and {name!r} has no position-bias "
                     f"tower yet (only {list(BIAS_METHODS)} do); drop {name!r} from "
                     f"config.methods or set --config.model.condition_bias=False.")
  return REGISTRY[name](config)
