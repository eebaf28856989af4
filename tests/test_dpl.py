"""vpl/models/dpl.py, vpl/methods/dpl.py: hand-computed probabilities, invariances, the bonus."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import edited, swap_pairs
from vpl import methods
from vpl.models import dpl

D = 2


def test_mean_variance_probability_by_hand():
  # z = (1.0 - 0.2) / sqrt(0.6^2 + 0.8^2) = 0.8; Phi(0.8) = 0.7881446.
  log_win, log_lose = dpl.mean_variance_log_probs(
      jnp.array(1.0), jnp.array(0.6), jnp.array(0.2), jnp.array(0.8))
  assert float(jnp.exp(log_win)) == pytest.approx(0.7881446, abs=1e-6)
  assert float(jnp.exp(log_lose)) == pytest.approx(1 - 0.7881446, abs=1e-6)


def test_mean_variance_logit_finite_far_in_the_tail():
  # z = 40: Phi(-40) ~ 1e-350 underflows float32, log_ndtr does not.
  log_win, log_lose = dpl.mean_variance_log_probs(
      jnp.array(40.0), jnp.array(1.0), jnp.array(0.0), jnp.array(1e-8))
  logit = float(log_win - log_lose)
  assert np.isfinite(logit) and logit > 700  # log Phi(-40) = -804.6


@pytest.mark.parametrize("p_a, p_b, expected", [
    # 2 atoms {0, 1}: P(a > b) = 0.7 * 0.6; P(tie) = 0.3 * 0.6 + 0.7 * 0.4 = 0.46.
    ((0.3, 0.7), (0.6, 0.4), 0.42 + 0.5 * 0.46),
    # 3 atoms: P(a > b) = 0.3 * 0.5 + 0.5 * 0.75 = 0.525; P(tie) = 0.1 + 0.075 + 0.125.
    ((0.2, 0.3, 0.5), (0.5, 0.25, 0.25), 0.525 + 0.5 * 0.3),
])
def test_categorical_probability_by_hand(p_a, p_b, expected):
  log_win, log_lose = dpl.categorical_log_probs(jnp.log(jnp.array(p_a)), jnp.log(jnp.array(p_b)))
  assert float(jnp.exp(log_win)) == pytest.approx(expected, abs=1e-6)
  assert float(jnp.exp(log_lose)) == pytest.approx(1 - expected, abs=1e-6)


def test_categorical_moments_by_hand():
  model = dpl.CategoricalReward(D, (4,), 3, rngs=nnx.Rngs(0))
  # Atoms 0, 0.5, 1 with probabilities 0.2, 0.3, 0.5: mean 0.65, variance 0.1525.
  mean, std = model.moments(jnp.log(jnp.array([0.2, 0.3, 0.5])))
  assert float(mean) == pytest.approx(0.65, abs=1e-6)
  assert float(std) == pytest.approx(np.sqrt(0.1525), abs=1e-6)


def _batch(rng, n, soft=True):
  label = rng.random(n) if soft else rng.integers(0, 2, n)
  return dict(a=rng.uniform(-1, 1, (n, D)).astype(np.float32),
              b=rng.uniform(-1, 1, (n, D)).astype(np.float32), label=label.astype(np.float32))


@pytest.mark.parametrize("name", ["dpl_mv", "dpl_cat"])
def test_loss_swap_a_b_with_flipped_label(tiny_config, name):
  method = methods.make_method(name, tiny_config)
  model = method.make_model(D, nnx.Rngs(0))
  rng = np.random.default_rng(0)
  batch = _batch(rng, 32)
  loss, _ = method.loss(model, batch, None, None)
  swap = rng.random(32) < 0.5
  swapped = swap_pairs(batch, swap)
  assert float(method.loss(model, swapped, None, None)[0]) == pytest.approx(float(loss),
                                                                              rel=1e-5)
  # Guard: swapping without flipping the label changes it.
  unflipped = dict(swapped, label=batch["label"])
  assert abs(float(method.loss(model, unflipped, None, None)[0]) - float(loss)) > 1e-4


@pytest.mark.parametrize("name", ["dpl_mv", "dpl_cat"])
def test_predict_logit_is_log_odds_of_the_likelihood(tiny_config, name):
  method = methods.make_method(name, tiny_config)
  model = method.make_model(D, nnx.Rngs(1))
  batch = _batch(np.random.default_rng(1), 16, soft=False)
  logits, aux = method.predict(model, None, dict(a=batch["a"], b=batch["b"]))
  assert {"reward_a", "reward_b", "std_a", "std_b"} <= set(aux)
  assert (np.asarray(aux["std_a"]) > 0).all()
  # The loss on hard labels is the BCE of sigmoid(logit).
  p = jax.nn.sigmoid(logits)
  bce = -np.mean(batch["label"] * np.log(p) + (1 - batch["label"]) * np.log(1 - p))
  _, metrics = method.loss(model, batch, None, None)
  assert float(metrics["nll"]) == pytest.approx(float(bce), rel=1e-4)


def test_categorical_entropy_bonus(tiny_config):
  rng = np.random.default_rng(2)
  batch = _batch(rng, 16)
  values = {}
  for coef in (0.0, 0.1):
    method = methods.make_method("dpl_cat", edited(tiny_config, **{"dpl.entropy_coef": coef}))
    model = method.make_model(D, nnx.Rngs(0))
    values[coef] = method.loss(model, batch, None, None)
  (loss0, m0), (loss1, m1) = values[0.0], values[0.1]
  assert float(loss0) == pytest.approx(float(m0["nll"]), rel=1e-6)
  assert float(loss1) == pytest.approx(float(m1["nll"]) - 0.1 * float(m1["entropy"]), rel=1e-6)
  # 10 atoms: the entropy lies in (0, log 10].
  assert 0 < float(m1["entropy"]) <= np.log(10) + 1e-6


def test_bad_config_raises(tiny_config):
  method = methods.make_method("dpl_cat", edited(tiny_config, **{"dpl.num_atoms": 1}))
  with pytest.raises(ValueError, match="num_atoms"):
    method.make_model(D, nnx.Rngs(0))
  with pytest.raises(ValueError, match="entropy_coef"):
    methods.make_method("dpl_cat", edited(tiny_config, **{"dpl.entropy_coef": -1.0}))
