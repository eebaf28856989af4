"""vpl/scaling.py: SPO and z-score reward scaling, by hand and by their invariances."""

import numpy as np
import pytest

from vpl import scaling


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_spo_by_hand():
  r = np.array([0.0, 1.0, 3.0])
  ref = np.array([0.0, 1.0])
  expected = [(_sigmoid(0) + _sigmoid(-1)) / 2, (_sigmoid(1) + _sigmoid(0)) / 2,
              (_sigmoid(3) + _sigmoid(2)) / 2]
  np.testing.assert_allclose(scaling.spo(r, ref), expected, rtol=1e-6)


def test_zscore_by_hand():
  ref = np.array([1.0, 3.0])  # mean 2, std 1
  np.testing.assert_allclose(scaling.zscore(np.array([0.0, 2.0, 5.0]), ref), [-2, 0, 3])


def test_trailing_axes_scale_each_reward_against_its_own_reference():
  rng = np.random.default_rng(0)
  r, ref = rng.normal(size=(7, 3)), rng.normal(size=(11, 3)) * [1, 5, 0.2]
  for kind in scaling.SCALINGS:
    together = np.asarray(scaling.scale_rewards(kind, r, ref))
    for e in range(3):
      np.testing.assert_allclose(together[:, e], scaling.scale_rewards(kind, r[:, e], ref[:, e]),
                                 rtol=1e-5, atol=1e-6)


def test_spo_invariant_to_adding_a_constant_and_in_unit_interval():
  rng = np.random.default_rng(1)
  r, ref = rng.normal(size=50) * 30, rng.normal(size=40) * 30  # many saturated sigmoids
  base = np.asarray(scaling.spo(r, ref))
  np.testing.assert_allclose(scaling.spo(r + 7.5, ref + 7.5), base, atol=1e-6)
  assert (base >= 0).all() and (base <= 1).all()


def test_spo_under_positive_rescaling_keeps_the_order_not_the_values():
  rng = np.random.default_rng(2)
  r, ref = rng.normal(size=30), rng.normal(size=25)
  base, scaled = np.asarray(scaling.spo(r, ref)), np.asarray(scaling.spo(4 * r, 4 * ref))
  np.testing.assert_array_equal(np.argsort(base), np.argsort(scaled))
  assert np.abs(base - scaled).max() > 0.05  # SPO is not scale-invariant: say so, test so
  # A huge scale turns r~ into the fraction of the reference that s beats (rewards on a
  # grid, at least 0.05 from every reference value, so every sigmoid saturates).
  r, ref = 0.1 * rng.permutation(30) + 0.05 - 0.5, 0.1 * np.arange(25)
  beaten = (r[:, None] > ref[None]).mean(1)
  np.testing.assert_allclose(scaling.spo(1e3 * r, 1e3 * ref), beaten, atol=1e-6)


def test_zscore_invariant_to_positive_affine_maps():
  rng = np.random.default_rng(3)
  r, ref = rng.normal(size=20), rng.normal(size=30)
  np.testing.assert_allclose(scaling.zscore(3 * r - 2, 3 * ref - 2), scaling.zscore(r, ref),
                             rtol=1e-5, atol=1e-5)


def test_scale_with_a_reward_function():
  items, ref = np.array([[0.0], [2.0]]), np.array([[0.0], [1.0], [2.0]])
  reward_fn = lambda s: np.concatenate([s, -s], axis=-1)  # two rewards, E = 2
  out = np.asarray(scaling.scale("spo", reward_fn, items, ref))
  assert out.shape == (2, 2)
  np.testing.assert_allclose(out[:, 0], scaling.spo(items[:, 0], ref[:, 0]), rtol=1e-6)
  np.testing.assert_allclose(out[:, 1], scaling.spo(-items[:, 0], -ref[:, 0]), rtol=1e-6)
  np.testing.assert_allclose(scaling.spo_scale(reward_fn, items, ref), out)
  with pytest.raises(ValueError, match="'minmax'"):
    scaling.scale("minmax", reward_fn, items, ref)
