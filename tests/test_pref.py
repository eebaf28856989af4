"""vpl/models/pref.py, vpl/methods/pref.py: Newton MAP, SVD completion and init, end to end."""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import edited, swap_pairs
from vpl import experiment, methods, seeding, train
from vpl.data import pairs, synthetic
from vpl.data.comparisons import from_flat
from vpl.methods import pref, pref_prior
from vpl import posteriors
from vpl.models import condition_bias
from vpl.models.pref import (atom_logits, atom_posterior, log_posterior, map_weights,
                             question_scores)

J = 3


def _logistic_problem(seed=0, users=4, pairs=12, soft=False):
  rng = np.random.default_rng(seed)
  v = rng.normal(size=(users, pairs, J)).astype(np.float32)
  lam_true = rng.normal(size=(users, J)) * 2
  p = 1 / (1 + np.exp(-np.einsum("bnj,bj->bn", v, lam_true)))
  y = p if soft else (rng.random(p.shape) < p)
  mean = np.array([0.5, -0.3, 0.1], np.float32)
  a = rng.normal(size=(J, J))
  precision = (a @ a.T / J + 0.5 * np.eye(J)).astype(np.float32)
  return jnp.asarray(v), jnp.asarray(y, jnp.float32), jnp.asarray(mean), jnp.asarray(precision)


@pytest.mark.parametrize("soft", [False, True])
def test_newton_map_equals_gradient_ascent_optimum(soft):
  v, y, mean, precision = _logistic_problem(soft=soft)
  lam = map_weights(v, y, mean, precision, num_steps=20)
  # Stationarity: the gradient of the log posterior vanishes at the MAP.
  grad = jax.grad(lambda l: log_posterior(l, v, y, mean, precision).sum())(lam)
  assert float(jnp.abs(grad).max()) < 1e-4
  # The same optimum, found another way: plain gradient ascent from the prior mean.
  grad_of = jax.grad(lambda l: log_posterior(l, v, y, mean, precision).sum())
  ascent = jax.lax.fori_loop(0, 5000, lambda _, l: l + 0.02 * grad_of(l),
                             jnp.broadcast_to(mean, lam.shape))
  np.testing.assert_allclose(lam, ascent, atol=1e-3)


def test_newton_map_never_decreases_the_objective():
  # Nearly separable labels and a weak prior: where an undamped Newton step can overshoot.
  rng = np.random.default_rng(3)
  v = jnp.asarray(rng.normal(size=(8, 6, J)) * 3, jnp.float32)
  y = jnp.asarray(np.einsum("bnj,j->bn", np.asarray(v), np.ones(J)) > 0, jnp.float32)
  mean, precision = jnp.zeros(J), 1e-3 * jnp.eye(J)
  one_step = jax.jit(functools.partial(map_weights, v, y, mean, precision, num_steps=1))
  lam = jnp.zeros((8, J))
  values = [log_posterior(lam, v, y, mean, precision)]
  for _ in range(8):
    lam = one_step(init_BxJ=lam)
    values.append(log_posterior(lam, v, y, mean, precision))
  # Warm-starting one step at a time is the same as running them all at once.
  np.testing.assert_allclose(lam, map_weights(v, y, mean, precision, num_steps=8), atol=1e-5)
  for before, after in zip(values[:-1], values[1:]):
    assert (np.asarray(after) >= np.asarray(before) - 1e-5 * (1 + np.abs(before))).all()
  assert (np.asarray(values[-1]) > np.asarray(values[0]) + 1).all()


def test_newton_map_moves_toward_the_prior():
  v, y, mean, precision = _logistic_problem(seed=1)
  # No context at all: the prior mean, exactly.
  empty = map_weights(v[:, :0], y[:, :0], mean, precision, num_steps=5)
  np.testing.assert_array_equal(empty, np.broadcast_to(mean, empty.shape))
  # Context with masked-out pairs only: also the prior mean.
  masked = map_weights(v, y, mean, precision, num_steps=5, mask_BxN=jnp.zeros(y.shape))
  np.testing.assert_allclose(masked, np.broadcast_to(mean, masked.shape), atol=1e-6)
  # A stronger prior pulls the MAP closer to the prior mean.
  run = jax.jit(functools.partial(map_weights, num_steps=20))
  dist = [float(jnp.linalg.norm(run(v, y, mean, s * precision) - mean, axis=-1).sum())
          for s in (0.1, 1.0, 10.0, 100.0)]
  assert dist == sorted(dist, reverse=True) and dist[-1] < 0.2 * dist[0]


def test_question_scores_by_hand_and_prefer_unexplored_directions():
  lam = jnp.array([1.0, 0.0])
  cand = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  # Nothing answered yet: Sigma = 1e-3 I, score = sigma'(lam.v)^2 |v|^2 / 1e-3.
  dsig = lambda x: 1 / (1 + np.exp(-x)) * (1 - 1 / (1 + np.exp(-x)))
  expected = [dsig(1.0) ** 2 * 1 / 1e-3, dsig(0.0) ** 2 * 4 / 1e-3]
  np.testing.assert_allclose(question_scores(lam, jnp.zeros((0, 2)), cand), expected, rtol=1e-5)
  # After many answers along the first axis, a question along the second scores higher than
  # one along the first with the same sigma'.
  seen = jnp.tile(jnp.array([[0.0, 0.0], [1.0, 0.0]]), (10, 1))
  scores = question_scores(jnp.zeros(2), seen, jnp.array([[1.0, 0.0], [0.0, 1.0]]))
  assert float(scores[1]) > 10 * float(scores[0])


def test_complete_low_rank_recovers_a_planted_matrix():
  rng = np.random.default_rng(0)
  truth = rng.normal(size=(60, 2)) @ rng.normal(size=(2, 40))
  observed = rng.random(truth.shape) < 0.5
  missing = ~observed
  err = lambda x: np.sqrt(np.mean((x - truth)[missing] ** 2) / np.mean(truth[missing] ** 2))
  u, s, vt = pref.complete_low_rank(truth, observed, rank=2, rounds=100)
  assert err((u * s) @ vt) < 0.05
  u, s, vt = pref.complete_low_rank(truth, observed, rank=2, rounds=10)
  assert err((u * s) @ vt) < 0.5  # zero fill: error 1.0


def _shared_pairs_data(num_users=40, num_pairs=30, per_user=20, seed=0):
  """Users of two groups (reward = s_0, or = s_1) labelling subsets of one pool of pairs.

  Half of each user's pairs are stored in the swapped order (b, a) with the label flipped.
  """
  rng = np.random.default_rng(seed)
  pool_a = rng.uniform(-1, 1, (num_pairs, 2)).astype(np.float32)
  pool_b = rng.uniform(-1, 1, (num_pairs, 2)).astype(np.float32)
  rows = dict(a=[], b=[], label=[], user=[], group=[])
  for u in range(num_users):
    g = u % 2
    for i in rng.choice(num_pairs, per_user, replace=False):
      a, b = pool_a[i], pool_b[i]
      label = float(a[g] > b[g])
      if rng.random() < 0.5:
        a, b, label = b, a, 1 - label
      for name, x in zip(rows, (a, b, label, u, g)):
        rows[name].append(x)
  return from_flat(np.array(rows["a"]), np.array(rows["b"]), np.array(rows["label"]),
                   np.array(rows["user"]), np.array(rows["group"]))


def test_pair_ids_match_identical_and_swapped_rows():
  data = _shared_pairs_data()
  (pair_id,), (flipped,) = pairs.pair_ids(data)
  assert pair_id.max() + 1 == 30  # the pool's 30 pairs, in either order
  u, k = np.nonzero(data.mask)
  canon_a = np.where(flipped[u, k, None], data.b[u, k], data.a[u, k])
  for i in range(30):
    assert len(np.unique(canon_a[pair_id[u, k] == i], axis=0)) == 1


def test_svd_completion_recovers_planted_labels(tiny_config):
  # The label matrix of two groups is rank 2 once centred: completion fills the labels each
  # user did not give with those of their group.
  data = _shared_pairs_data()
  p = edited(tiny_config, **{"pref.num_bases": 2}).pref
  init = pref.svd_init(data, p)
  assert init["init"] == "svd" and init["svd_pairs"] == 30 and init["svd_users"] == 40
  logits = init["target"] @ init["weights"].T  # [pairs, users]: 4 (label - 0.5) completed
  (pair_id,), (flipped,) = pairs.pair_ids(data)
  group_label = np.zeros((30, 2))
  u, k = np.nonzero(data.mask)
  label = np.where(flipped[u, k], 1 - data.label[u, k], data.label[u, k])
  group_label[pair_id[u, k], data.group[u]] = label
  truth = group_label[init["pair_ids"]][:, data.group]
  seen = np.zeros_like(truth, bool)
  seen[pair_id[u, k], u] = True
  seen = seen[init["pair_ids"]]
  agree = (logits > 0) == (truth > 0.5)
  assert agree[~seen].mean() > 0.95 and agree[seen].mean() > 0.95


def test_svd_init_needs_most_labels_on_shared_pairs(tiny_config):
  shared = _shared_pairs_data(num_users=6, num_pairs=10, per_user=10)  # all 60 shared
  own = synthetic.didactic(num_users=6, pairs_per_user=20, seed=0).data  # 120 of their own
  mixed = from_flat(np.concatenate([shared.a.reshape(-1, 2), own.a.reshape(-1, 2)]),
                    np.concatenate([shared.b.reshape(-1, 2), own.b.reshape(-1, 2)]),
                    np.concatenate([shared.label.ravel(), own.label.ravel()]),
                    np.concatenate([shared.user_id.repeat(10), own.user_id.repeat(20)]))
  init = pref.svd_init(mixed, edited(tiny_config, **{"pref.num_bases": 2}).pref)
  assert init["init"] == pref.FEW_SHARED_INIT
  assert init["shared_label_fraction"] == pytest.approx(60 / 180)


def _quick(config, steps):
  return edited(config, **{"train.num_steps": steps, "train.steps_per_call": steps,
                           "train.checkpoint_every": steps, "pref.num_bases": 2})


def _train_accuracy(model, data):
  phi = lambda s: np.asarray(model.phi(jnp.asarray(s)))
  logit = np.einsum("ukj,uj->uk", phi(data.a) - phi(data.b), np.asarray(model.user_weights[...]))
  return float((((logit > 0) == (data.label > 0.5)) & data.mask).sum() / data.mask.sum())


def test_fit_uses_svd_init_on_shared_pairs(tiny_config, tmp_path):
  data = _shared_pairs_data()
  # 600 pre-fit steps: with 300 the least-squares fit of phi stopped at 0.21 of its starting
  # error from this seed's initial bases.
  config = edited(_quick(tiny_config, 2), **{"pref.prefit_steps": 600})
  method = methods.make_method("pref", config)
  model, info = train.fit(method, config, data, ckpt_dir=str(tmp_path / "c"))
  assert info["init"] == "svd" and info["svd_pairs"] == 30
  before, after = info["prefit_relative_mse"]
  assert after < 0.2 * before
  # Two steps at a warm-up learning rate leave the model at its initialisation, which
  # already fits the training labels; a random start does not.
  assert _train_accuracy(model, data) > 0.9
  fresh = method.make_model(2, nnx.Rngs(0))
  fresh.user_weights.set_value(jax.random.normal(jax.random.key(0), (data.num_users, 2)))
  assert _train_accuracy(fresh, data) < 0.75


def test_fit_reports_random_init_without_shared_pairs(tiny_config, tmp_path):
  config = _quick(tiny_config, 20)
  data = synthetic.didactic(num_users=30, pairs_per_user=16, seed=0).data
  method = methods.make_method("pref", config)
  model, info = train.fit(method, config, data, ckpt_dir=str(tmp_path / "c"))
  assert info["init"] == pref.RANDOM_INIT == "random (no shared pairs)"
  assert info["num_shared_pairs"] == 0 and info["num_distinct_pairs"] == 30 * 16
  assert info["shared_label_fraction"] == 0
  # The prior stored in the model: at the population's weights, with the spread of the
  # other users' trained weights (not the calibration users'), times the chosen scale.
  calibration = pref_prior.calibration_users(
      data, config.pref.calibration_fraction, config.eval.num_context,
      seeding.rng(config.seed, "pref", "calibration"))
  assert calibration.sum() == 6
  scale = float(model.prior_scale[...])
  curve = np.asarray(model.prior_curve[...])
  num_scales = len(config.pref.prior_scales)
  assert len(curve) == num_scales + 1  # the Gaussian's scales, then the mixture
  assert scale == config.pref.prior_scales[int(np.argmax(curve[:num_scales]))]
  assert float(model.prior_mixture[...]) == float(curve[-1] > curve[:num_scales].max())
  # The mixture's point masses are the trained users' lambdas, equally weighted; the
  # calibration users' (never trained) have no weight.
  log_weight = np.asarray(model.atom_log_weight[...])
  assert np.all(np.isneginf(log_weight[calibration]))
  np.testing.assert_allclose(log_weight[~calibration], -np.log(24), rtol=1e-6)
  mean, precision = pref.fit_prior(np.asarray(model.user_weights[...])[~calibration],
                                   "empirical", 0.01, scale,
                                   np.asarray(model.population_weights[...]))
  np.testing.assert_allclose(model.prior_mean[...], mean, rtol=1e-5)
  np.testing.assert_allclose(model.prior_precision[...], precision, rtol=1e-4)


def test_fit_prior_isotropic_and_bad_kind():
  w = np.array([[1.0, 0.0], [3.0, 4.0]])
  mean, precision = pref.fit_prior(w, "isotropic", 0.5)
  np.testing.assert_allclose(mean, [2.0, 2.0])
  # Variances 1 and 4 (population): mean 2.5, plus ridge 0.5 -> precision I / 3.
  np.testing.assert_allclose(precision, np.eye(2) / 3)
  with pytest.raises(ValueError, match="pref.prior"):
    pref.fit_prior(w, "flat", 0.5)


def test_loss_swap_a_b_with_flipped_label(tiny_config):
  method = methods.make_method("pref", tiny_config)
  model = method.make_model(2, nnx.Rngs(0), num_users=5)
  rng = np.random.default_rng(0)
  n = 32
  batch = dict(a=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               b=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               label=rng.random(n).astype(np.float32), user=rng.integers(0, 5, n))
  loss, _ = method.loss(model, batch, None, None)
  swap = rng.random(n) < 0.5
  swapped = swap_pairs(batch, swap)
  assert float(method.loss(model, swapped, None, None)[0]) == pytest.approx(float(loss),
                                                                              rel=1e-5)
  unflipped = dict(swapped, label=batch["label"])
  assert abs(float(method.loss(model, unflipped, None, None)[0]) - float(loss)) > 1e-4


def test_linear_path_and_nonlinear_l2_by_hand(tiny_config):
  """pref.linear_path: phi(s) = MLP(s) + A s; pref.nonlinear_l2 = lam adds lam x the squared
  norm of the bases MLP's output kernel to the loss (negative lam refused)."""
  rng = np.random.default_rng(0)
  n = 16
  batch = dict(a=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               b=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               label=rng.random(n).astype(np.float32), user=rng.integers(0, 5, n))
  values = {}
  for lam in (0.0, 0.7):
    config = edited(tiny_config, **{"pref.linear_path": True, "pref.nonlinear_l2": lam})
    method = methods.make_method("pref", config)
    model = method.make_model(2, nnx.Rngs(0), num_users=5)
    values[lam], metrics = method.loss(model, batch, None, None)
  kernel = np.asarray(model.linear.kernel[...])
  assert kernel.shape == (2, model.num_bases)
  np.testing.assert_allclose(model.phi(batch["a"]),
                             np.asarray(model.bases(batch["a"])) + batch["a"] @ kernel,
                             rtol=1e-5, atol=1e-6)
  last = np.asarray(model.bases.layers[-1].kernel[...])
  assert float(metrics["nonlinear_l2"]) == pytest.approx(float((last ** 2).sum()), rel=1e-5)
  assert float(values[0.7] - values[0.0]) == pytest.approx(0.7 * (last ** 2).sum(), rel=1e-4)
  plain = methods.make_method("pref", edited(tiny_config, **{"pref.linear_path": False}))
  assert plain.make_model(2, nnx.Rngs(0), num_users=5).linear is None
  with pytest.raises(ValueError, match="pref.nonlinear_l2 = -1.0"):
    methods.make_method("pref", edited(tiny_config, **{"pref.nonlinear_l2": -1.0}))


def test_bad_config_raises(tiny_config):
  with pytest.raises(ValueError, match="pref.prior"):
    methods.make_method("pref", edited(tiny_config, **{"pref.prior": "flat"}))
  with pytest.raises(ValueError, match="newton_steps"):
    methods.make_method("pref", edited(tiny_config, **{"pref.newton_steps": 0}))


def test_end_to_end_tiny_run_writes_every_method(tiny_config, tmp_path):
  names = ("btl", "dpl_mv", "dpl_cat", "pref")
  experiment.train_and_evaluate(edited(tiny_config, methods=names), str(tmp_path))
  assert os.path.isfile(tmp_path / "reward_maps.png")  # drawn from every method's aux
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert set(names) <= set(results["methods"])
  for name in names:
    assert 0 <= results["methods"][name]["heldout_accuracy"] <= 1
    assert os.path.isdir(tmp_path / "checkpoints" / name)
  # Every method restores from its checkpoint and re-scores exactly; PReF's prior of a new
  # user (fitted after training) included.
  from vpl import analysis
  run = analysis.load_run(str(tmp_path))
  assert not run.skipped
  again = run.evaluate()
  for name in names:
    saved = {k: v for k, v in results["methods"][name].items() if k not in ("train_seconds", "fit")}
    assert again[name] == saved, name
  np.testing.assert_array_equal(run.models["pref"].prior_mean[...],
                                run.models["pref"].population_weights[...])
  acc = {n: results["methods"][n]["heldout_accuracy"] for n in names}
  # Seed 0 of the tiny config: btl 0.690, dpl_mv 0.698, dpl_cat 0.690, pref 0.802.
  assert acc["pref"] > acc["btl"] + 0.05
  assert abs(acc["dpl_mv"] - acc["btl"]) < 0.05 and abs(acc["dpl_cat"] - acc["btl"]) < 0.05


def test_calibration_users_train_the_pooled_reward_only(tiny_config):
  """Their pairs give no gradient to their own weights (their held-out likelihood chooses the
  prior's scale), and do give one to the population's weights."""
  data = synthetic.didactic(num_users=30, pairs_per_user=16, seed=0).data
  method = methods.make_method("pref", tiny_config).bind(data)
  calibration = pref_prior.calibration_users(
      data, tiny_config.pref.calibration_fraction, tiny_config.eval.num_context,
      seeding.rng(tiny_config.seed, "pref", "calibration"))
  users = np.flatnonzero(calibration)
  model = method.make_model(2, nnx.Rngs(0))
  batch = dict(a=data.a[users, :4].reshape(-1, 2), b=data.b[users, :4].reshape(-1, 2),
               label=data.label[users, :4].reshape(-1), user=np.repeat(users, 4))
  grads = nnx.grad(lambda m: method.loss(m, batch, None, None)[0])(model)
  assert np.abs(np.asarray(grads.user_weights[...])).max() == 0
  assert np.abs(np.asarray(grads.population_weights[...])).max() > 0


def test_prior_scale_curve_by_hand():
  """One user, one base phi(s) = s: context says lambda > 0, targets agree; the scale 0 prior
  (lambda = m = 0) gives log(1/2) per target, a wide prior a better likelihood."""
  a = np.zeros((1, 6, 1), np.float32)
  b = a.copy()
  a[0, :, 0] = 1.0
  data = from_flat(a[0], b[0], np.ones(6, np.float32), np.zeros(6, np.int64))
  curve = pref_prior.scale_curve(lambda s: s, data, np.array([0]), np.zeros(1),
                                 np.ones((1, 1)), scales=(0.0, 10.0), ridge=1e-6,
                                 num_context=2, newton_steps=20,
                                 rng=np.random.default_rng(0))
  assert curve[0] == pytest.approx(np.log(0.5), abs=1e-4)
  assert curve[1] > curve[0] + 0.2


def test_mixture_prior_posterior_and_predictive_by_hand():
  """Two point masses lambda = +1 and -1 on one base phi(s) = s; one answer 'a' on v = 1."""
  atoms = jnp.array([[1.0], [-1.0]])
  log_post = atom_posterior(jnp.ones((1, 1, 1)), jnp.ones((1, 1)), atoms, jnp.log(
      jnp.array([0.5, 0.5])))
  s = lambda x: 1 / (1 + np.exp(-x))
  post = np.array([s(1.0), s(-1.0)]) / (s(1.0) + s(-1.0))
  np.testing.assert_allclose(np.exp(log_post[0]), post, rtol=1e-5)
  # A masked answer adds nothing: the posterior stays at the prior.
  masked = atom_posterior(jnp.ones((1, 1, 1)), jnp.ones((1, 1)), atoms,
                          jnp.log(jnp.array([0.5, 0.5])), jnp.zeros((1, 1)))
  np.testing.assert_allclose(np.exp(masked[0]), [0.5, 0.5], rtol=1e-6)
  # The predictive on a target v = 2 averages the atoms' probabilities, not their lambdas
  # (the posterior mean lambda, 0.46, would give sigma(0.92)).
  p_a = post[0] * s(2.0) + post[1] * s(-2.0)
  logit = atom_logits(log_post, jnp.full((1, 1, 1), 2.0), atoms)
  np.testing.assert_allclose(float(logit[0, 0]), np.log(p_a / (1 - p_a)), rtol=1e-5)
  # A point mass with weight 0 (log -inf) never counts.
  gone = atom_posterior(jnp.ones((1, 1, 1)), jnp.ones((1, 1)), atoms,
                        jnp.array([0.0, -jnp.inf]))
  np.testing.assert_allclose(np.exp(gone[0]), [1.0, 0.0], atol=1e-7)


def test_mixture_log_lik_by_hand():
  """The user of test_prior_scale_curve_by_hand (every answer 'a' on v = 1): two point masses
  +3 and -3; two context answers put the posterior on +3, whose targets score log sigma(3)."""
  a = np.zeros((1, 6, 1), np.float32)
  a[0, :, 0] = 1.0
  data = from_flat(a[0], np.zeros((6, 1), np.float32), np.ones(6, np.float32),
                   np.zeros(6, np.int64))
  ll = pref_prior.mixture_log_lik(lambda s: s, data, np.array([0]), np.array([[3.0], [-3.0]]),
                                  num_context=2, rng=np.random.default_rng(0))
  s3 = 1 / (1 + np.exp(-3.0))
  w = s3**2 / (s3**2 + (1 - s3)**2)  # the posterior of +3 after two answers
  p_a = w * s3 + (1 - w) * (1 - s3)
  assert ll == pytest.approx(np.log(p_a), rel=1e-5)


@pytest.mark.parametrize("mixture", [0.0, 1.0])
def test_model_and_posterior_follow_the_chosen_prior(tiny_config, mixture):
  model = methods.make_method("pref", tiny_config).make_model(2, nnx.Rngs(0), num_users=5)
  model.prior_mixture.set_value(jnp.asarray(mixture))
  rng = np.random.default_rng(0)
  context = dict(a=rng.normal(size=(3, 4, 2)).astype(np.float32),
                 b=rng.normal(size=(3, 4, 2)).astype(np.float32),
                 label=(rng.random((3, 4)) < 0.5).astype(np.float32),
                 mask=np.ones((3, 4), np.float32))
  targets = dict(a=rng.normal(size=(3, 6, 2)).astype(np.float32),
                 b=rng.normal(size=(3, 6, 2)).astype(np.float32))
  logits, aux = model(context, targets, num_steps=5)
  v_ctx = model.phi(context["a"]) - model.phi(context["b"])
  v_tgt = model.phi(targets["a"]) - model.phi(targets["b"])
  atoms = model.user_weights[...]
  log_post = atom_posterior(v_ctx, context["label"], atoms, model.atom_log_weight[...])
  gauss = map_weights(v_ctx, context["label"], model.prior_mean[...],
                      model.prior_precision[...], num_steps=5)
  lam = jnp.exp(log_post) @ atoms if mixture else gauss
  want = (atom_logits(log_post, v_tgt, atoms) if mixture
          else jnp.einsum("btj,bj->bt", v_tgt, gauss))
  np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux["lambda"], lam, rtol=1e-5, atol=1e-6)
  # The posterior used to choose questions predicts the same probabilities.
  post = posteriors.pref(5)
  info = post.infer(model, context)
  np.testing.assert_allclose(info["lam"], lam, rtol=1e-5, atol=1e-6)
  p = post.predict(model, info, context, targets, None)
  np.testing.assert_allclose(p, jax.nn.sigmoid(want), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mixture", [0.0, 1.0])
def test_reliability_tempers_and_the_tower_frames_a_new_users_answers(tiny_config, mixture):
  config = edited(tiny_config, **{"model.condition_bias": True})
  method = methods.make_method("pref", config)
  model = method.make_model(2, nnx.Rngs(0), num_users=5)
  model.prior_mixture.set_value(jnp.asarray(mixture))
  model.atom_log_weight.set_value(jnp.log(jnp.array([0.1, 0.2, 0.3, 0.15, 0.25])))
  model.prior_mean.set_value(jnp.full_like(model.prior_mean[...], 0.7))
  model.condition_bias.theta[...] = jnp.array([[0.0, -1.0, -3.0], [0.0, -3.0, -1.0]])
  rng = np.random.default_rng(1)
  context = dict(a=rng.normal(size=(3, 4, 2)).astype(np.float32),
                 b=rng.normal(size=(3, 4, 2)).astype(np.float32),
                 label=(rng.random((3, 4)) < 0.5).astype(np.float32),
                 condition=rng.integers(0, 2, (3, 4)))
  targets = dict(a=rng.normal(size=(3, 6, 2)).astype(np.float32),
                 b=rng.normal(size=(3, 6, 2)).astype(np.float32))
  w = jnp.array([1.0, 0.5, 0.0])
  _, aux = model(dict(context, reliability=w), targets, num_steps=5)
  v_ctx = model.phi(context["a"]) - model.phi(context["b"])
  atoms = model.user_weights[...]
  framed = dict(condition=context["condition"][:, None, :])
  link = lambda logit: condition_bias.apply(model, logit, framed)
  mask = jnp.broadcast_to(w[:, None], (3, 4))  # w multiplies every answer's log-likelihood
  log_post = atom_posterior(v_ctx, context["label"], atoms, model.atom_log_weight[...], mask,
                            link=link)
  want = (jnp.exp(log_post) @ atoms if mixture else map_weights(
      v_ctx, context["label"], model.prior_mean[...], model.prior_precision[...],
      num_steps=5, mask_BxN=mask))
  np.testing.assert_allclose(aux["lambda"], want, rtol=1e-5, atol=1e-6)
  prior = (jnp.exp(model.atom_log_weight[...]) @ atoms if mixture else model.prior_mean[...])
  np.testing.assert_allclose(aux["lambda"][2], prior, rtol=1e-5, atol=1e-6)  # w = 0
  # the predicted answers of a w = 0 user are a coin; their own preference is not
  said, _ = method.predict(model, dict(context, reliability=w),
                           dict(targets, condition=np.zeros((3, 6), np.int32)))
  own, _ = method.predict(model, dict(context, reliability=w), targets)
  np.testing.assert_allclose(said[2], 0.0, atol=1e-6)
  assert np.abs(own[2]).max() > 1e-3
  # reliability weighs the atoms of the training users
  np.testing.assert_allclose(
      np.exp(pref_prior.atom_log_weight(4, np.array([0, 2, 3]), np.array([0.5, 9, 0.25, 0.0]))),
      [2 / 3, 0.0, 1 / 3, 0.0], atol=1e-12)


def _bt(logit, y):
  return float(-(y * jax.nn.log_sigmoid(logit) + (1 - y) * jax.nn.log_sigmoid(-logit)).mean())


def test_population_head_is_a_base_trained_as_btl_by_hand(tiny_config):
  """pref.population_head: r0 is the last base; the personal term gives it no gradient, the
  pooled term is BTL on r0 alone, and the weights are penalised toward (0, ..., 0, 1)."""
  config = edited(tiny_config, **{"pref.population_head": True, "pref.l2": 0.3,
                                  "pref.linear_path": False, "pref.nonlinear_l2": 0.0})
  method = methods.make_method("pref", config)
  model = method.make_model(2, nnx.Rngs(0), num_users=5)
  j = config.pref.num_bases
  rng = np.random.default_rng(0)
  n = 16
  batch = dict(a=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               b=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
               label=(rng.random(n) < 0.5).astype(np.float32), user=rng.integers(0, 5, n))
  r0 = lambda s: np.asarray(model.population(s))[..., 0]
  phi_a, phi_b = np.asarray(model.phi(batch["a"])), np.asarray(model.phi(batch["b"]))
  assert phi_a.shape == (n, j + 1)
  np.testing.assert_allclose(phi_a[:, -1], r0(batch["a"]), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(model.user_weights[...])[:, -1], 1.0)
  value, metrics = method.loss(model, batch, None, None)
  v = phi_a - phi_b
  lam = np.asarray(model.user_weights[...])[batch["user"]]
  y = batch["label"]
  e = np.eye(j + 1)[-1]
  reg = (((lam - e) ** 2).sum(-1).mean()
         + 0.5 * ((phi_a[:, :j] ** 2).sum(-1) + (phi_b[:, :j] ** 2).sum(-1)).mean())
  assert float(metrics["nll"]) == pytest.approx(_bt((v * lam).sum(-1), y), rel=1e-5)
  assert float(metrics["population_nll"]) == pytest.approx(
      _bt(r0(batch["a"]) - r0(batch["b"]), y), rel=1e-5)
  assert float(metrics["reg"]) == pytest.approx(reg, rel=1e-4)
  assert float(value) == pytest.approx(
      float(metrics["nll"]) + float(metrics["population_nll"]) + 0.3 * reg, rel=1e-5)
  # Only the pooled term trains the head: without it, r0 gets no gradient.
  personal_only = dataclasses.replace(method, loss=lambda m, b, k, s: (
      method.loss(m, b, k, s)[1]["nll"], {}))
  grads = nnx.grad(lambda m: personal_only.loss(m, batch, None, None)[0])(model)
  assert all(np.abs(np.asarray(g)).max() == 0
             for g in jax.tree.leaves(nnx.state(grads.population)))
  grads = nnx.grad(lambda m: method.loss(m, batch, None, None)[0])(model)
  assert max(np.abs(np.asarray(g)).max() for g in jax.tree.leaves(nnx.state(
      grads.population))) > 0


def test_population_head_at_prior_scale_zero_predicts_with_btl_reward(tiny_config, tmp_path):
  """With a head, the prior mean is (0, ..., 0, 1): at scale 0 (and a tiny ridge) a new
  user's reward is r0, whatever their answers."""
  config = edited(_quick(tiny_config, 20), **{"pref.population_head": True,
                                              "pref.prior_scales": (0.0,),
                                              "pref.prior_ridge": 1e-6,
                                              "pref.mixture_prior": False})
  data = synthetic.didactic(num_users=30, pairs_per_user=16, seed=0).data
  method = methods.make_method("pref", config)
  model, _ = train.fit(method, config, data, ckpt_dir=str(tmp_path / "c"))
  np.testing.assert_array_equal(model.prior_mean[...], np.eye(config.pref.num_bases + 1)[-1])
  context = {k: data.a[:3, :4] if k == "a" else data.b[:3, :4] if k == "b"
             else data.label[:3, :4] for k in ("a", "b", "label")}
  targets = dict(a=data.a[:3, 4:10], b=data.b[:3, 4:10])
  logits, _ = method.predict(model, context, targets)
  r0 = lambda s: np.asarray(model.population(s))[..., 0]
  np.testing.assert_allclose(logits, r0(targets["a"]) - r0(targets["b"]), rtol=1e-3,
                             atol=1e-3)
