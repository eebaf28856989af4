"""vpl/feedback_loop.py: the drift update, the blend and the stability weight by hand."""

import numpy as np
import pytest

from experiments.configs import feedback_loop as feedback_config
from vpl import config_checks, configs, feedback_loop, shrinkage


def test_drift_step_by_hand():
  c = np.array([[1.0, 0.0], [0.0, 1.0]])
  # User 0 is shown (3, 4) and (0, 2): directions (0.6, 0.8) and (0, 1), mean (0.3, 0.9).
  shown = np.array([[[3.0, 4.0], [0.0, 2.0]], [[1.0, 0.0], [1.0, 0.0]]])
  moved = feedback_loop.drift_step(c, shown, 0.5, np.array([True, False]))
  want = np.array([0.5 + 0.15, 0.45]) / np.hypot(0.65, 0.45)
  np.testing.assert_allclose(moved[0], want)
  np.testing.assert_array_equal(moved[1], c[1])  # a genuine user does not move
  np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1.0)
  # eta = 0: nobody moves.
  np.testing.assert_allclose(feedback_loop.drift_step(c, shown, 0.0, np.array([True, True])), c)


def test_stability_and_answers_by_hand():
  # Two answers per question (one per order): user 0 agrees on 4 of 4, user 1 on 3 of 4,
  # user 2 on 2 of 4 (chance): weights 1, 0.5, 0.
  labels = np.array([[[1, 1], [0, 0], [1, 1], [0, 0]],
                     [[1, 1], [0, 0], [1, 1], [1, 0]],
                     [[1, 0], [0, 1], [1, 1], [0, 0]]], np.float32)
  np.testing.assert_allclose(feedback_loop.stability(labels, "consistency"), [1.0, 0.5, 0.0])
  with pytest.raises(ValueError, match="feedback.stability = 'other'"):
    feedback_loop.stability(labels, "other")
  c = np.array([[1.0, 0.0]])
  diff = np.array([[[2.0, -1.0], [-1.0, 3.0]]])  # margins 2 and -1
  a_first = np.array([[False, True]])
  by_pos = np.array([[False, True]])
  got = feedback_loop.answer(c, diff, a_first, by_pos, 0.0, np.random.default_rng(0))
  np.testing.assert_array_equal(got, [[1.0, 1.0]])  # own preference; then the first shown (a)
  got = feedback_loop.answer(c, diff, ~a_first, by_pos, 0.0, np.random.default_rng(0))
  np.testing.assert_array_equal(got, [[1.0, 0.0]])  # the order flipped: b shown first


def test_stability_mixture_by_hand():
  """shrinkage.stability_from_mixture: users near a coin's 1/2 agreement get ~0, stable users
  whose noise flips an answer or two keep ~1, and the weights are a fixed point of the EM
  (pi = mean w, p = sum w k / sum w n, w = the mixture's posterior with those)."""
  k = np.array([16, 16, 15, 14, 8, 7, 8, 9], np.float64)
  n = np.full(8, 16.0)
  w = shrinkage.stability_from_mixture(k, n)
  assert (w[:4] > 0.95).all() and (w[4:] < 0.05).all()
  pi, p = w.mean(), (w * k).sum() / (w * n).sum()
  stable = pi * p**k * (1 - p)**(n - k)
  np.testing.assert_allclose(w, stable / (stable + (1 - pi) * 0.5**n), rtol=1e-6, atol=1e-9)
  # Everyone stable but noisy: nobody is taken for a coin.
  assert (shrinkage.stability_from_mixture([14, 15, 13, 16], [16] * 4) > 0.9).all()
  with pytest.raises(ValueError, match="agree count"):
    shrinkage.stability_from_mixture([5], [4])
  # On two answers per question (one per order), through the feedback loop's default.
  labels = np.zeros((2, 16, 2), np.float32)
  labels[1, ::2, 1] = 1  # user 1 flips half their answers with the order
  got = feedback_loop.stability(labels)
  assert got[0] > 0.5 and got[1] < 0.5


def test_config_rules_refuse_bad_feedback_fields():
  c = feedback_config.get_config()
  config_checks.check(c)
  for field, value in (("feedback.eta", 1.5), ("feedback.strengths", (0.0, 2.0)),
                       ("feedback.rounds", 0), ("feedback.constructed_share", 1.0),
                       ("feedback.stability", "linear")):
    with pytest.raises(ValueError, match=rf"{field} = "):
      config_checks.check(configs.with_overrides(c, {field: value}))


def test_simulate_with_a_perfect_personal_reward():
  """A stand-in model that knows each user's group: without shrinkage constructed users are
  pushed toward their group (echo); a constructed user's position answers flip with the
  order, so their stability weight is exactly 0 and s = 1 shows them the population's pick."""
  from vpl.data import tasks
  task = tasks.GENERATORS["ufp"](num_types=2, dim=8, num_users=40, pairs_per_user=24,
                                 pool_pairs=400)
  data = task.data
  attr = lambda s: np.stack([task.true_reward(s, k) for k in range(2)], -1)
  own_UxG = np.eye(2)[data.group]
  served = feedback_loop.Served(
      encode=lambda a, b, y: (np.zeros((a.shape[0], 1)), np.zeros((a.shape[0], 1))),
      reward=lambda s, z: np.einsum("umg,ug->um", attr(s), own_UxG),
      population=lambda s: attr(s).mean(-1))
  constructed = np.arange(40) % 2 == 0
  kw = dict(constructed_U=constructed, rounds=4, eta=0.3, lean=0.5, position_share=0.5,
            temperature=0.0, num_questions=8, num_prompts=8, num_candidates=8,
            use_certainty=False, num_groups=2, seed=0, stability_kind="consistency")
  free = feedback_loop.simulate(served, task.true_reward, data, strength=0.0, **kw)
  shrunk = feedback_loop.simulate(served, task.true_reward, data, strength=1.0, **kw)
  assert len(free["drift"]) == 5 and free["drift"][0] == shrunk["drift"][0]
  assert free["own_group_lean"][-1] > free["own_group_lean"][0]  # the echo
  assert free["drift"][-1] > free["drift"][0]
  assert shrunk["drift"][-1] < free["drift"][-1]
  assert shrunk["weight_constructed"] == [0.0] * 5 and shrunk["weight_genuine"] == [1.0] * 5
  # Genuine users have weight 1, so s = 1 leaves their reward, and accuracy, as it was.
  assert shrunk["genuine_accuracy"] == free["genuine_accuracy"] == [1.0] * 5


def test_runner_end_to_end_tiny(tmp_path):
  c = configs.with_overrides(feedback_config.get_config("task=ufp2"), {
      "data.kwargs": dict(num_types=2, dim=8, num_users=60, pairs_per_user=24, pool_pairs=400),
      "model.hidden": (16,), "model.embed_dim": 16, "model.latent_dim": 2,
      "train.num_steps": 20, "train.steps_per_call": 10, "train.checkpoint_every": 10,
      "train.batch_sets": 8, "eval.unseen_fraction": 0.0, "feedback.rounds": 2,
      "feedback.num_questions": 8, "feedback.num_prompts": 4, "feedback.num_candidates": 4,
      "feedback.population_users": 16, "feedback.reference_items": 32})
  out = feedback_loop.run_seed(c, str(tmp_path / "seed_0"))
  assert set(out["strengths"]) == {"0.0", "1.0"}
  assert out["num_constructed"] == round(0.5 * out["num_users"])
  summary = feedback_loop.summary([out])
  assert set(summary["1.0"]["0"]) >= {"drift_ratio", "accuracy_cost", "group_distance"}
  assert len(out["strengths"]["0.0"]["genuine_accuracy"]) == 3  # rounds 0, 1, 2
