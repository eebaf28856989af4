"""vpl/shrinkage.py: the blend and the weight, by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from vpl import shrinkage


def test_weight_by_hand():
  c, s = np.array([1.0, 0.5, 0.0]), np.array([1.0, 0.5, 1.0])
  np.testing.assert_allclose(shrinkage.user_weight(c, s, 0.0), [1, 1, 1])
  np.testing.assert_allclose(shrinkage.user_weight(c, s, 1.0), [1, 0.25, 0])
  # half strength: 1 - 0.5 * (1 - c s)
  np.testing.assert_allclose(shrinkage.user_weight(c, s, 0.5), [1, 0.625, 0.5])


def test_shrink_broadcasts_over_trailing_axes():
  r_user = np.array([[2.0, 4.0], [0.0, 0.0]])
  r_pop = np.array([1.0, 1.0])
  out = shrinkage.shrink(r_user, r_pop, np.array([0.5, 0.0]))
  np.testing.assert_allclose(out, [[1.5, 2.5], [1.0, 1.0]])
  # strength 0 returns the user's reward unchanged; jax arrays work too.
  w = shrinkage.user_weight(jnp.array([0.3, 0.9]), jnp.array([0.2, 1.0]), 0.0)
  np.testing.assert_allclose(shrinkage.shrink(jnp.asarray(r_user), r_pop, w), r_user)


def test_maps_to_unit_interval():
  np.testing.assert_allclose(shrinkage.certainty_from_spread(np.log([[1.0, 1.0], [0.5, 0.0]])),
                             [0.0, 0.75])
  np.testing.assert_allclose(shrinkage.certainty_from_kl([0.0, np.log(2)]), [0.0, 0.5])
  np.testing.assert_allclose(shrinkage.stability_from_consistency([0.5, 0.75, 1.0, 0.3,
                                                                    np.nan]),
                             [0, 0.5, 1, 0, 1])


@pytest.mark.parametrize("kw", [dict(strength=1.5), dict(strength=-0.1),
                                dict(certainty=2.0), dict(stability=np.nan)])
def test_bad_values_raise(kw):
  args = dict(certainty=0.5, stability=0.5, strength=0.5) | kw
  name = next(iter(kw))
  with pytest.raises(ValueError, match=name):
    shrinkage.user_weight(**args)
