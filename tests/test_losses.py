"""vpl/losses.py against values computed by hand, and gradients checked numerically."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vpl import losses


def _log_sigmoid(x: float) -> float:
  return -math.log1p(math.exp(-x))


def _bce(logit: float, label: float) -> float:
  """-log p(label | logit) written out by hand."""
  p = 1.0 / (1.0 + math.exp(-logit))
  return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def _kl_by_hand(mu, var, prior_mu, prior_var) -> float:
  """The textbook form log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2."""
  return (0.5 * math.log(prior_var / var) + (var + (mu - prior_mu) ** 2) / (2 * prior_var)
          - 0.5)


LOGITS = np.array([[1.5, -0.3, 0.0], [2.0, -4.0, 0.7]], np.float32)
LABELS = np.array([[1.0, 0.0, 1.0], [0.25, 1.0, 0.5]], np.float32)  # hard and soft


def test_bt_log_likelihood_matches_hand_values():
  got = np.asarray(losses.bt_log_likelihood(LOGITS, LABELS))
  want = np.array([[-_bce(x, y) for x, y in zip(lr, yr)] for lr, yr in zip(LOGITS, LABELS)])
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Two anchors: a coin flip at logit 0, and log sigma(2) for a hard label.
  assert got[0, 2] == pytest.approx(-math.log(2), rel=1e-6)
  assert got[1, 0] == pytest.approx(0.25 * _log_sigmoid(2.0) + 0.75 * _log_sigmoid(-2.0),
                                    rel=1e-6)


def test_bt_log_likelihood_is_finite_for_extreme_logits():
  # log(sigmoid(-200)) underflows to -inf; log_sigmoid gives -200.
  got = np.asarray(losses.bt_log_likelihood(jnp.float32(-200.0), jnp.float32(1.0)))
  assert got == pytest.approx(-200.0, rel=1e-6)


def test_bt_loss_mean_and_mask():
  want = np.mean([_bce(x, y) for x, y in zip(LOGITS.ravel(), LABELS.ravel())])
  assert float(losses.bt_loss(LOGITS, LABELS)) == pytest.approx(want, rel=1e-6)
  mask = np.array([[True, False, True], [False, False, True]])
  want = np.mean([_bce(x, y) for x, y, m in
                  zip(LOGITS.ravel(), LABELS.ravel(), mask.ravel()) if m])
  assert float(losses.bt_loss(LOGITS, LABELS, mask)) == pytest.approx(want, rel=1e-6)


def test_bt_loss_of_soft_label_is_minimal_at_its_logit():
  # For a soft label p the cross-entropy is minimised at logit log(p / (1 - p)), where it
  # equals the label's entropy.
  p = 0.8
  at = jnp.float32(math.log(p / (1 - p)))
  grad = jax.grad(lambda x: losses.bt_loss(x, jnp.float32(p)))(at)
  assert abs(float(grad)) < 1e-6
  entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
  assert float(losses.bt_loss(at, jnp.float32(p))) == pytest.approx(entropy, rel=1e-6)


def test_bt_loss_swap_a_b_with_flipped_label():
  # Swapping a and b negates the logit; flipping the label must give the same loss.
  for label in (LABELS, np.round(LABELS)):
    np.testing.assert_allclose(losses.bt_loss(-LOGITS, 1 - label),
                               losses.bt_loss(LOGITS, label), rtol=1e-6)


@pytest.mark.parametrize("mu, log_var, prior_mu, prior_log_var", [
    (0.0, 0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0, 0.0),
    (0.3, -1.2, 0.0, 0.0),
    (-0.7, 0.8, 0.5, -0.4),  # non-standard prior
    (2.0, -3.0, -1.0, 1.5),
])
def test_gaussian_kl_matches_textbook_formula(mu, log_var, prior_mu, prior_log_var):
  got = float(losses.gaussian_kl(*map(jnp.float32, (mu, log_var, prior_mu, prior_log_var))))
  want = _kl_by_hand(mu, math.exp(log_var), prior_mu, math.exp(prior_log_var))
  assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_gaussian_kl_anchors_and_convention():
  zero, one = jnp.zeros(3), jnp.ones(3)
  np.testing.assert_allclose(losses.gaussian_kl(zero, zero, zero, zero), 0.0, atol=1e-7)
  # KL(N(1, 1) || N(0, 1)) = 1/2: the exact KL, not the official code's 2 KL.
  np.testing.assert_allclose(losses.gaussian_kl(one, zero, zero, zero), 0.5, rtol=1e-6)
  # Per dimension, elementwise: [B, L] against [L] priors broadcast.
  mu = jnp.array([[0.0, 1.0], [2.0, -1.0]])
  out = losses.gaussian_kl(mu, jnp.zeros_like(mu), jnp.zeros(2), jnp.zeros(2))
  np.testing.assert_allclose(out, 0.5 * np.asarray(mu) ** 2, rtol=1e-6)


# A small ELBO problem: B = 2 sets, T = 3 targets, L = 2 latent dimensions.
MU = np.array([[0.4, -1.0], [0.25, 0.6]], np.float32)
LOG_VAR = np.array([[-0.5, 0.2], [-1.0, 0.0]], np.float32)
PRIOR_MU = np.array([0.1, -0.2], np.float32)
PRIOR_LOG_VAR = np.array([0.3, -0.1], np.float32)


def _kl_per_dim_by_hand() -> np.ndarray:
  """[L]: the batch mean of each dimension's KL."""
  kl = [[_kl_by_hand(MU[b, l], math.exp(LOG_VAR[b, l]), PRIOR_MU[l],
                     math.exp(PRIOR_LOG_VAR[l])) for l in range(2)] for b in range(2)]
  return np.mean(kl, axis=0)


def test_elbo_loss_is_nll_plus_beta_kl_over_targets():
  nll = np.mean([_bce(x, y) for x, y in zip(LOGITS.ravel(), LABELS.ravel())])
  kl = _kl_per_dim_by_hand().sum()
  beta = 0.3
  loss, metrics = losses.elbo_loss(LOGITS, LABELS, MU, LOG_VAR, PRIOR_MU, PRIOR_LOG_VAR,
                                   beta=beta)
  assert float(loss) == pytest.approx(nll + beta * kl / 3, rel=1e-5)
  assert float(metrics["nll"]) == pytest.approx(nll, rel=1e-5)
  assert float(metrics["kl"]) == pytest.approx(kl, rel=1e-5)
  assert float(metrics["beta"]) == pytest.approx(beta)


def test_elbo_loss_with_target_mask_divides_by_mean_real_targets():
  mask = np.array([[True, True, False], [True, False, False]])
  nll = np.mean([_bce(x, y) for x, y, m in
                 zip(LOGITS.ravel(), LABELS.ravel(), mask.ravel()) if m])
  kl = _kl_per_dim_by_hand().sum()
  loss, _ = losses.elbo_loss(LOGITS, LABELS, MU, LOG_VAR, PRIOR_MU, PRIOR_LOG_VAR,
                             beta=1.0, target_mask_BxT=mask)
  assert float(loss) == pytest.approx(nll + kl / 1.5, rel=1e-5)  # (2 + 1) / 2 targets


def test_elbo_free_bits():
  kl_L = _kl_per_dim_by_hand()
  nll = np.mean([_bce(x, y) for x, y in zip(LOGITS.ravel(), LABELS.ravel())])
  args = (LOGITS, LABELS, MU, LOG_VAR, PRIOR_MU, PRIOR_LOG_VAR)
  # A floor between the two dimensions' KLs lifts only the smaller one.
  floor = float(kl_L.mean())
  assert kl_L.min() < floor < kl_L.max()
  loss, metrics = losses.elbo_loss(*args, beta=2.0, free_bits=floor)
  assert float(loss) == pytest.approx(nll + 2.0 * np.maximum(kl_L, floor).sum() / 3, rel=1e-5)
  assert float(metrics["kl"]) == pytest.approx(kl_L.sum(), rel=1e-5)  # reports the true KL
  # A floor below every dimension's KL changes nothing.
  low, _ = losses.elbo_loss(*args, beta=2.0, free_bits=0.5 * float(kl_L.min()))
  plain, _ = losses.elbo_loss(*args, beta=2.0)
  assert float(low) == pytest.approx(float(plain), rel=1e-6)
  # Above every dimension's KL the posterior is not pulled towards the prior at all.
  high = 10.0 * float(kl_L.max())
  grad_mu = jax.grad(lambda m: losses.elbo_loss(LOGITS, LABELS, m, LOG_VAR, PRIOR_MU,
                                                PRIOR_LOG_VAR, beta=2.0, free_bits=high)[0])
  np.testing.assert_array_equal(grad_mu(jnp.asarray(MU)), 0.0)
  grad_plain = jax.grad(lambda m: losses.elbo_loss(LOGITS, LABELS, m, LOG_VAR, PRIOR_MU,
                                                   PRIOR_LOG_VAR, beta=2.0)[0])
  assert np.abs(grad_plain(jnp.asarray(MU))).min() > 1e-3


# Numerical second derivatives need float64: float32 finite differences miss by ~1e-2.
def _f64(*arrays):
  return tuple(jnp.asarray(a, jnp.float64) for a in arrays)


@pytest.mark.parametrize("order", [1, 2])
def test_gradients_of_bt_loss(order):
  with jax.enable_x64(True):
    logits, labels = _f64(LOGITS, LABELS)
    check_grads(lambda x: losses.bt_loss(x, labels), (logits,), order=order,
                modes=("fwd", "rev"))
    check_grads(lambda x, y: losses.bt_log_likelihood(x, y).sum(), (logits, labels),
                order=order, modes=("fwd", "rev"))


@pytest.mark.parametrize("order", [1, 2])
def test_gradients_of_gaussian_kl(order):
  with jax.enable_x64(True):
    check_grads(lambda *a: losses.gaussian_kl(*a).sum(),
                _f64(MU, LOG_VAR, PRIOR_MU, PRIOR_LOG_VAR), order=order, modes=("fwd", "rev"))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("free_bits", [0.0, 0.3])
def test_gradients_of_elbo_loss(order, free_bits):
  # 0.3 nats lies between the two dimensions' KLs (0.23 and 0.37), away from both, so the
  # floor binds on one dimension only and max() is smooth where the gradient is checked.
  kl_L = _kl_per_dim_by_hand()
  assert kl_L.min() + 0.05 < 0.3 < kl_L.max() - 0.05

  def loss(logits, mu, log_var, prior_mu, prior_log_var):
    return losses.elbo_loss(logits, labels, mu, log_var, prior_mu, prior_log_var,
                            beta=0.7, free_bits=free_bits)[0]

  with jax.enable_x64(True):
    labels = _f64(LABELS)[0]
    check_grads(loss, _f64(LOGITS, MU, LOG_VAR, PRIOR_MU, PRIOR_LOG_VAR), order=order,
                modes=("fwd", "rev"))
