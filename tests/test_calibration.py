"""vpl/calibration.py against hand-computed NLL, Brier score, ECE and reliability bins, and
their place in every held-out report."""

import math

import numpy as np
import pytest

from vpl import calibration, evaluate
from vpl.data.comparisons import UserComparisons


def test_nll_and_brier_by_hand():
  p, y = [0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]
  expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4
  assert calibration.nll(p, y) == pytest.approx(expected)  # 0.484485
  assert calibration.nll(p, y) == pytest.approx(0.484485, abs=1e-6)
  assert calibration.brier(p, y) == pytest.approx((0.01 + 0.04 + 0.36 + 0.25) / 4)


def test_soft_labels_count_fractionally_and_certain_errors_are_clipped():
  # y = 0.25: NLL = -(0.25 log 0.8 + 0.75 log 0.2), Brier (0.8 - 0.25)^2.
  assert calibration.nll([0.8], [0.25]) == pytest.approx(
      -(0.25 * math.log(0.8) + 0.75 * math.log(0.2)))
  assert calibration.brier([0.8], [0.25]) == pytest.approx(0.3025)
  # p = 1 on a pair the user did not prefer: -log(1e-6), not infinity.
  assert calibration.nll([1.0], [0.0]) == pytest.approx(-math.log(1e-6), rel=1e-6)
  assert calibration.nll([1.0, 0.0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-6))


def test_ece_by_hand_one_prediction_per_bin():
  # Confidences 0.95, 0.78, 0.65, 0.5 fall in bins 13, 8, 4, 0 of 15 over [0.5, 1].
  # Correct: a (1), b (1), a on a b-label (0), a tie goes to b on an a-label (0).
  p, y = [0.95, 0.22, 0.65, 0.5], [1, 0, 0, 1]
  assert calibration.ece(p, y) == pytest.approx((0.05 + 0.22 + 0.65 + 0.5) / 4)  # 0.355
  bins = calibration.reliability(p, y)
  assert [i for i, n in enumerate(bins["count"]) if n] == [0, 4, 8, 13]
  assert bins["accuracy"][13] == 1.0 and bins["accuracy"][4] == 0.0
  assert bins["confidence"][8] == pytest.approx(0.78)
  assert np.isnan(bins["accuracy"][1])  # an empty bin


def test_ece_pools_predictions_of_one_bin():
  # 0.9 and 0.91 share bin 12: accuracy 1/2, confidence 0.905, |gap| 0.405.
  assert calibration.ece([0.9, 0.91], [1, 0]) == pytest.approx(0.405)
  # Perfectly calibrated within a bin: 4 predictions at 0.75, 3 right.
  assert calibration.ece([0.75] * 4, [1, 1, 1, 0]) == pytest.approx(0.0)
  assert calibration.reliability([1.0, 0.0], [1, 0])["count"][14] == 2  # last bin closed


def test_mask_and_bad_input():
  p, y = np.array([0.9, 0.1, 0.7]), np.array([1.0, 1.0, 0.0])
  mask = np.array([True, False, True])
  assert calibration.report(p, y, mask) == calibration.report(p[mask], y[mask])
  assert np.isnan(calibration.nll(p, y, np.zeros(3, bool)))
  assert np.isnan(calibration.ece(p, y, np.zeros(3, bool)))
  with pytest.raises(ValueError, match="p has 3 entries and y 2"):
    calibration.nll(p, y[:2])
  with pytest.raises(ValueError, match="mask has 2 entries"):
    calibration.brier(p, y, mask[:2])
  with pytest.raises(ValueError, match="num_bins = 0"):
    calibration.reliability(p, y, num_bins=0)


def test_every_held_out_report_has_calibration():
  p_a = np.array([[0.9, 0.2, 0.6, 0.5], [0.1, 0.7, 0.8, 0.3]])
  label = np.array([[1, 0, 0.25, 1], [1, 1, 0.5, 0]], np.float32)
  target = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
  zeros = np.zeros((2, 4, 2), np.float32)
  data = UserComparisons(zeros, zeros, label, np.ones((2, 4), bool), np.arange(2),
                         np.array([0, 1]))
  report = evaluate.accuracy_report(p_a, data, target)
  for name in ("nll", "brier", "ece"):
    assert report[name] == pytest.approx(getattr(calibration, name)(p_a[target],
                                                                   label[target])), name
