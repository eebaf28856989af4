"""How well predicted probabilities match the labels: NLL, Brier score, ECE, reliability bins.

Every function takes flat `p_N` (predicted P(a preferred)) and `y_N` (the label: 1 = a
preferred, 0 = b, or a probability, which counts fractionally) and an optional mask `[N]` of
the entries to score. A prediction is "a" when p > 0.5 and "b" otherwise (a tie goes to b,
as in `vpl.evaluate.accuracy_report`); its confidence is max(p, 1 - p).
(docs/methods.md, 'Asking a new user'.)
"""

from __future__ import annotations

from typing import Optional

import numpy as np

NUM_BINS = 15
EPS = 1e-6  # p is clipped to [EPS, 1 - EPS] for the NLL: a certain wrong answer costs 13.8 nats


def _flat(p_N, y_N, mask_N: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  p, y = np.asarray(p_N, np.float64).reshape(-1), np.asarray(y_N, np.float64).reshape(-1)
  if p.shape != y.shape:
    raise ValueError(f"calibration: p has {p.size} entries and y {y.size}; give one label "
                     f"per prediction.")
  if mask_N is not None:
    keep = np.asarray(mask_N, bool).reshape(-1)
    if keep.shape != p.shape:
      raise ValueError(f"calibration: mask has {keep.size} entries, p has {p.size}; give one "
                       f"mask entry per prediction.")
    p, y = p[keep], y[keep]
  return p, y


def nll(p_N, y_N, mask_N=None) -> float:
  """-mean[y log p + (1 - y) log(1 - p)], p clipped to [EPS, 1 - EPS]; NaN with no entries."""
  p, y = _flat(p_N, y_N, mask_N)
  if not p.size:
    return float("nan")
  p = np.clip(p, EPS, 1 - EPS)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier(p_N, y_N, mask_N=None) -> float:
  """mean (p - y)^2; NaN with no entries."""
  p, y = _flat(p_N, y_N, mask_N)
  return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def correct_and_confidence(p_N, y_N) -> tuple[np.ndarray, np.ndarray]:
  """Agreement of the predicted side with the label (fractional for soft labels), and
  max(p, 1 - p)."""
  p, y = np.asarray(p_N, np.float64), np.asarray(y_N, np.float64)
  pred = (p > 0.5).astype(np.float64)
  return pred * y + (1 - pred) * (1 - y), np.maximum(p, 1 - p)


def reliability(p_N, y_N, mask_N=None, num_bins: int = NUM_BINS) -> dict[str, list]:
  """Confidence in `num_bins` equal-width bins of [0.5, 1] (the last one closed).

  Returns:
    `{'confidence', 'accuracy', 'count'}`, one entry per bin: the mean confidence and mean
    agreement with the label of the predictions in the bin (NaN for an empty bin), and their
    number.
  """
  if num_bins < 1:
    raise ValueError(f"num_bins = {num_bins}; use at least 1 (ECE uses {NUM_BINS}).")
  p, y = _flat(p_N, y_N, mask_N)
  correct, conf = correct_and_confidence(p, y)
  which = np.minimum(((conf - 0.5) * 2 * num_bins).astype(int), num_bins - 1)
  count = np.bincount(which, minlength=num_bins)
  mean = lambda x: np.where(count > 0, np.bincount(which, x, num_bins) / np.maximum(count, 1),
                            np.nan)
  return dict(confidence=mean(conf).tolist(), accuracy=mean(correct).tolist(),
              count=count.tolist())


def ece(p_N, y_N, mask_N=None, num_bins: int = NUM_BINS) -> float:
  """Expected calibration error: sum over bins of n_b / n |accuracy_b - confidence_b|."""
  bins = reliability(p_N, y_N, mask_N, num_bins)
  count = np.asarray(bins["count"], np.float64)
  if not count.sum():
    return float("nan")
  gap = np.abs(np.asarray(bins["accuracy"]) - np.asarray(bins["confidence"]))
  return float(np.sum(np.where(count > 0, count * np.nan_to_num(gap), 0.0)) / count.sum())


def report(p_N, y_N, mask_N=None) -> dict[str, float]:
  """`{'nll', 'brier', 'ece'}` of the masked entries."""
  return dict(nll=nll(p_N, y_N, mask_N), brier=brier(p_N, y_N, mask_N),
              ece=ece(p_N, y_N, mask_N))
