"""vpl/schedules.py: beta at hand-computed steps, eager and under jit."""

import math

import jax
import numpy as np
import pytest

from vpl import schedules

# (kind, step, expected beta) for beta = 2, num_steps = 1000, warmup_steps = 100, 4 cycles:
# each cycle is 250 steps, rising by a half cosine over its first 125.
CASES = [
    ("constant", 0, 2.0),
    ("constant", 999, 2.0),
    ("warmup", 0, 0.0),
    ("warmup", 25, 0.5),
    ("warmup", 100, 2.0),
    ("warmup", 700, 2.0),
    ("cyclical", 0, 0.0),
    ("cyclical", 25, 2.0 * 0.5 * (1 - math.cos(math.pi * 25 / 125))),
    ("cyclical", 62.5, 1.0),
    ("cyclical", 125, 2.0),
    ("cyclical", 200, 2.0),
    ("cyclical", 250, 0.0),  # a new cycle starts from 0
    ("cyclical", 260, 2.0 * 0.5 * (1 - math.cos(math.pi * 10 / 125))),
    ("cyclical", 999, 2.0),
]


def _beta(step, kind):
  return schedules.beta_at(step, kind=kind, beta=2.0, num_steps=1000, warmup_steps=100,
                           cycles=4)


@pytest.mark.parametrize("kind, step, want", CASES)
def test_beta_at_hand_computed_steps(kind, step, want):
  assert float(_beta(step, kind)) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_beta_at_under_jit_matches_eager():
  for kind in schedules.KINDS:
    steps = [c[1] for c in CASES if c[0] == kind and float(c[1]).is_integer()]
    traced = jax.jit(lambda s, kind=kind: _beta(s, kind))
    np.testing.assert_allclose([float(traced(s)) for s in steps],
                               [float(_beta(s, kind)) for s in steps], rtol=1e-6)


def test_warmup_without_warmup_steps_is_constant():
  assert float(schedules.beta_at(0, kind="warmup", beta=1.5, num_steps=10)) == 0.0
  assert float(schedules.beta_at(1, kind="warmup", beta=1.5, num_steps=10)) == 1.5


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match=r"beta_schedule = 'linear'.*constant"):
    schedules.beta_at(0, kind="linear", beta=1.0, num_steps=10)
