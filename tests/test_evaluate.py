"""vpl/evaluate.py on hand-made examples, and batched prediction."""

import jax
import numpy as np
import pytest
from flax import nnx

from vpl import evaluate, methods
from vpl.data import synthetic
from vpl.data.comparisons import UserComparisons, split_context_target


def _users(label, group, divergent=None, **extra):
  users, pairs = np.shape(label)
  zeros = np.zeros((users, pairs, 2), np.float32)
  return UserComparisons(a=zeros, b=zeros, label=np.asarray(label, np.float32),
                         mask=np.ones((users, pairs), bool), user_id=np.arange(users),
                         group=np.asarray(group), divergent=divergent, **extra)


def test_accuracy_report_by_hand():
  p_a = np.array([[0.9, 0.2, 0.6, 0.5], [0.1, 0.7, 0.8, 0.3]])  # 0.5 is a tie: predicts b
  label = [[1, 0, 0.25, 1], [1, 1, 0.5, 0]]  # soft labels count fractionally
  divergent = np.array([[1, 0, 1, 0], [1, 1, 0, 1]], bool)
  target_mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
  # Correct per pair: user 0 [1, 1, 0.25, 0], user 1 [0, 1, 0.5, (1, not a target)].
  report = evaluate.accuracy_report(p_a, _users(label, [0, 1], divergent), target_mask)
  assert report["heldout_accuracy"] == pytest.approx(3.75 / 7)
  assert report["num_targets"] == 7
  assert report["group_accuracy"] == pytest.approx({"0": 2.25 / 4, "1": 1.5 / 3})
  assert report["worst_group_accuracy"] == pytest.approx(0.5)
  assert report["divergent_accuracy"] == pytest.approx(2.25 / 4)
  assert report["divergent_group_accuracy"] == pytest.approx({"0": 1.25 / 2, "1": 1 / 2})
  assert report["num_divergent_targets"] == 4


def test_worst_group_skips_groups_without_targets():
  """Python's min over [nan, 0.5] is nan, over [0.5, nan] is 0.5: order decided the result."""
  p_a = np.array([[0.9, 0.9], [0.9, 0.1], [0.9, 0.9]])
  label = [[1, 1], [1, 1], [0, 0]]  # group 0 has no targets below; 1: 0.5; 2: 0.0
  target_mask = np.array([[0, 0], [1, 1], [1, 1]], bool)
  report = evaluate.accuracy_report(p_a, _users(label, [0, 1, 2]), target_mask)
  assert np.isnan(report["group_accuracy"]["0"])
  assert report["worst_group_accuracy"] == 0.0
  assert evaluate.worst([float("nan"), 0.5]) == 0.5 == evaluate.worst([0.5, float("nan")])
  assert np.isnan(evaluate.worst([float("nan")]))


def test_unseen_items_accuracy_counts_only_unseen_targets():
  p_a = np.array([[0.9, 0.9, 0.1]])
  unseen = np.array([[0, 1, 1]], bool)
  report = evaluate.accuracy_report(p_a, _users([[1, 0, 0]], [0]), np.ones((1, 3), bool),
                                    unseen)
  assert report["heldout_accuracy"] == pytest.approx(2 / 3)
  assert report["unseen_items_accuracy"] == pytest.approx(0.5)
  assert report["num_unseen_targets"] == 2


def test_accuracy_report_without_divergent_and_with_perfect_predictions():
  label = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
  report = evaluate.accuracy_report(label, _users(label, [3, 3]), np.ones((2, 3), bool))
  assert report["heldout_accuracy"] == 1.0
  assert report["group_accuracy"] == {"3": 1.0}
  assert "divergent_accuracy" not in report
  flipped = evaluate.accuracy_report(1 - label, _users(label, [3, 3]), np.ones((2, 3), bool))
  assert flipped["heldout_accuracy"] == 0.0


def test_latent_report_by_hand():
  mu = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 0.05]])
  log_var = np.zeros_like(mu)
  report = evaluate.latent_report(mu, log_var, np.zeros(2), np.zeros(2))
  # Var over users: dimension 0 is 0.5 (> 0.01, active); dimension 1 is 0.00046875.
  assert report["active_units"] == 1
  assert report["latent_dim"] == 2
  assert report["latent_variance"] == pytest.approx([0.5, 0.00046875])
  # Unit variances against N(0, I): KL = |mu|^2 / 2 per user.
  assert report["mean_kl"] == pytest.approx(0.5 * (1 + 1 + 0.0025) / 4)
  # All collapsed onto one point: no active units.
  assert evaluate.latent_report(np.ones((5, 3)), np.zeros((5, 3)), np.zeros(3),
                                np.zeros(3))["active_units"] == 0


def test_oracle_and_ceiling_on_a_noiseless_task():
  task = synthetic.didactic(num_users=30, pairs_per_user=16, temperature=0.0, seed=0)
  data = task.data
  _, target_mask = split_context_target(data, 4, seed=0)
  oracle, ceiling = evaluate.oracle_and_ceiling(data, target_mask)
  assert oracle["heldout_accuracy"] == 1.0
  assert oracle["worst_group_accuracy"] == 1.0
  # The best single reward agrees with the oracle except where the groups disagree.
  agree = ~data.divergent & target_mask
  assert evaluate.accuracy_report(data.pooled_pref, data, agree)["heldout_accuracy"] == 1.0
  assert 0.5 < ceiling["heldout_accuracy"] < 1.0
  assert ceiling["divergent_accuracy"] < 0.75
  with pytest.raises(ValueError, match="no generating rewards"):
    evaluate.oracle_and_ceiling(_users([[1.0]], [0]), np.ones((1, 1), bool))


def test_bayes_oracle_by_hand():
  # One user, two equally likely groups, three pairs; pair 0 is the context, labelled a.
  group_pref = np.array([[[0.9, 0.2], [0.3, 0.6], [1.0, 0.0]]], np.float32)
  data = _users([[1.0, 0.0, 1.0]], [0], group_pref=group_pref)
  p_a = evaluate.bayes_oracle(data, np.array([[0]]), (0.5, 0.5))
  post = np.array([0.9, 0.2]) / 1.1  # P(group | a preferred on pair 0)
  np.testing.assert_allclose(p_a, [group_pref[0] @ post], rtol=1e-5)
  # Unequal shares enter as the prior.
  p_a = evaluate.bayes_oracle(data, np.array([[0]]), (0.2, 0.8))
  post = np.array([0.9 * 0.2, 0.2 * 0.8]) / (0.9 * 0.2 + 0.2 * 0.8)
  np.testing.assert_allclose(p_a, [group_pref[0] @ post], rtol=1e-5)


def test_bayes_oracle_told_the_framing_by_hand():
  """With framing (q, first), P(label | group, condition) = (1 - q) pref + q (first if a was
  shown first, else 1 - first): a noiseless group survives an answer the framing explains."""
  group_pref = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]], np.float32)
  data = _users([[1.0, 1.0, 1.0]], [0], group_pref=group_pref,
                condition=np.array([[0, 1, 0]]))
  # Context: pair 0 (a first, a chosen) and pair 1 (b first, a chosen).
  p_a = evaluate.bayes_oracle(data, np.array([[0, 1]]), (0.5, 0.5), framing=(0.2, 0.9))
  lik = lambda pref, first: 0.8 * pref + 0.2 * first
  post = np.array([lik(1.0, 0.9) * lik(0.0, 0.1), lik(0.0, 0.9) * lik(1.0, 0.1)])
  post /= post.sum()
  np.testing.assert_allclose(p_a, [group_pref[0] @ post], rtol=1e-5)
  with pytest.raises(ValueError, match="needs each answer's condition"):
    evaluate.bayes_oracle(_users([[1.0, 1.0, 1.0]], [0], group_pref=group_pref),
                          np.array([[0, 1]]), (0.5, 0.5), framing=(0.2, 0.9))


def test_gather_context():
  label = np.arange(12, dtype=np.float32).reshape(2, 6) / 12
  data = _users(label, [0, 0])
  ctx = evaluate.gather_context(data, np.array([[5, 0], [2, 3]]))
  np.testing.assert_array_equal(ctx["label"], label[[[0, 0], [1, 1]], [[5, 0], [2, 3]]])
  assert ctx["a"].shape == (2, 2, 2)


def test_predict_users_in_chunks_matches_one_call(tiny_config):
  task = synthetic.didactic(num_users=7, pairs_per_user=10, seed=0)
  context_idx, _ = split_context_target(task.data, 4, seed=0)
  method = methods.make_method("vpl", tiny_config)
  model = method.make_model(2, nnx.Rngs(0))
  p_a, aux = evaluate.predict_users(method, model, task.data, context_idx)
  p_3, aux_3 = evaluate.predict_users(method, model, task.data, context_idx, users_per_call=3)
  assert p_a.shape == (7, 10) and aux["mu"].shape == (7, tiny_config.model.latent_dim)
  np.testing.assert_allclose(p_3, p_a, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(aux_3["mu"], aux["mu"], rtol=1e-6, atol=1e-7)
  # The same as the model called on the gathered context directly.
  context = evaluate.gather_context(task.data, context_idx)
  logits, _ = method.predict(model, context, dict(a=task.data.a, b=task.data.b))
  np.testing.assert_allclose(p_a, jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6)
  # Each user's prediction depends on their own context: change user 0's only.
  context_idx2 = context_idx.copy()
  context_idx2[0] = np.setdiff1d(np.arange(10), context_idx[0])[:4]
  p_2, _ = evaluate.predict_users(method, model, task.data, context_idx2)
  assert np.abs(p_2[0] - p_a[0]).max() > 1e-6
  np.testing.assert_allclose(p_2[1:], p_a[1:], rtol=1e-6, atol=1e-7)


def test_predict_users_compiles_once_per_block_shape(tiny_config):
  task = synthetic.didactic(num_users=17, pairs_per_user=10, seed=0)
  context_idx, _ = split_context_target(task.data, 4, seed=0)
  method = methods.make_method("vpl", tiny_config)
  model = method.make_model(2, nnx.Rngs(0))
  before = evaluate._predict_block._cache_size()
  first, _ = evaluate.predict_users(method, model, task.data, context_idx, users_per_call=7)
  after_first = evaluate._predict_block._cache_size()
  again, _ = evaluate.predict_users(method, model, task.data, context_idx, users_per_call=7)
  assert after_first - before == 1  # 17 users = blocks of 7, 7 and a padded 3: one shape
  assert evaluate._predict_block._cache_size() == after_first  # no recompile on a new call
  np.testing.assert_array_equal(first, again)
  whole, _ = evaluate.predict_users(method, model, task.data, context_idx)
  np.testing.assert_allclose(first, whole, rtol=1e-6, atol=1e-7)
