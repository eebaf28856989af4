"""Recency-weighted contexts: a user's recent answers count more when their context is pooled.

`model.context_recency` says how much each context pair counts when a method reads a user's
context (as `context['mask']`, a weight per pair):
  all         every context pair counts fully (the unweighted context);
  latest:N    only the N latest pairs count (weight 1), older ones not at all;
  exp:H       a pair answered j answers before the latest one weighs 0.5 ** (j / H): the
              weight halves every H answers (H, the half-life, is counted in answers, not in
              clock time, so irregular timestamps do not matter).
Weights need the context in time order, oldest first, which the temporal split gives
(`vpl.data.comparisons.split_temporal`); other splits draw unordered contexts. VPL pools its
pair embeddings with these weights (a weighted mean; `bayes` pooling scales each pair's
precision), PReF weights each context pair's log-likelihood, MaxMin counts a pair whose
weight is above zero.
"""

from __future__ import annotations

import numpy as np

FORMS = "'all', 'latest:N' (N >= 1 answers) or 'exp:H' (half-life H > 0 answers)"


def parse(spec: str) -> tuple[str, float]:
  """`(kind, value)` of a recency spec; raises ValueError naming the spec and the forms."""
  if spec == "all":
    return "all", 0.0
  kind, _, value = str(spec).partition(":")
  try:
    number = float(value)
  except ValueError:
    number = float("nan")
  if kind == "latest" and number.is_integer() and number >= 1:
    return kind, number
  if kind == "exp" and np.isfinite(number) and number > 0:
    return kind, number
  raise ValueError(f"model.context_recency = {spec!r}; use {FORMS}.")


def weights(spec: str, num_context: int) -> np.ndarray:
  """`[N]` weight of each of N context pairs in time order (the last is the latest)."""
  kind, value = parse(spec)
  ago_N = np.arange(num_context)[::-1].astype(np.float64)  # answers before the latest
  if kind == "all":
    return np.ones(num_context)
  if kind == "latest":
    return (ago_N < value).astype(np.float64)
  return 0.5 ** (ago_N / value)
