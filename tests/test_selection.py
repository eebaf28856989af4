"""vpl/selection.py: max-min, soft-min and mean selection by hand, and the true-reward report."""

import numpy as np
import pytest

from vpl import selection
from vpl.data import synthetic

# Two groups (rows) x three candidates (columns).
R = np.array([[1.0, 0.5, 0.0],
              [0.2, 0.45, 0.7]])


def test_rules_by_hand():
  np.testing.assert_allclose(selection.score(R, "maxmin"), [0.2, 0.45, 0.0])
  np.testing.assert_allclose(selection.score(R, "mean"), [0.6, 0.475, 0.35])
  assert selection.select(R, "maxmin") == 1
  assert selection.select(R, "mean") == 0


def test_soft_min_by_hand_and_its_limits():
  r = np.array([[0.0], [1.0]])
  np.testing.assert_allclose(selection.soft_min(r, 1.0),
                             [-np.log((np.exp(0) + np.exp(-1)) / 2)])
  np.testing.assert_allclose(selection.soft_min(R, 1e-4), R.min(0), atol=1e-3)
  np.testing.assert_allclose(selection.soft_min(R, 1e4), R.mean(0), atol=1e-3)
  assert selection.select(R, "softmin", tau=0.01) == 1  # the max-min choice
  assert selection.select(R, "softmin", tau=100.0) == 0  # the utilitarian choice
  # Stable where exp(-r / tau) would overflow.
  assert np.isfinite(selection.soft_min(R * 1e3, 1e-3)).all()


def test_batched_over_prompts():
  batch = np.stack([R, R[:, ::-1]])  # [N=2, K, C]
  np.testing.assert_array_equal(selection.select(batch, "maxmin"), [1, 1])
  np.testing.assert_array_equal(selection.select(batch, "mean"), [0, 2])


def test_bad_rule_and_tau():
  with pytest.raises(ValueError, match="'median'"):
    selection.select(R, "median")
  with pytest.raises(ValueError, match="tau = 0"):
    selection.soft_min(R, 0)


def test_report_with_the_true_rewards_as_the_models():
  """With the true rewards as 'learned' rewards, max-min is the oracle, BTL serves group 0."""
  task = synthetic.didactic(shares=(0.8, 0.2), num_users=10, pairs_per_user=2)
  true = lambda s: np.stack([task.true_reward(s, g) for g in range(2)], -1)
  report = selection.selection_report(
      task, lambda s: task.true_reward(s, 0), true, np.random.default_rng(0),
      num_prompts=200, num_candidates=8, num_reference=300)
  rules = report["rules"]
  assert set(rules) == {"btl", "maxmin", "softmin", "mean", "random", "oracle_maxmin"}
  assert rules["maxmin"] == rules["oracle_maxmin"]
  # BTL here maximises group 0's reward: no rule gives group 0 more, and its worst group
  # (group 1) is worse off than under max-min.
  assert all(rules["btl"]["group_reward"]["0"] >= r["group_reward"]["0"] for r in rules.values())
  assert rules["btl"]["worst_group_reward"] < rules["maxmin"]["worst_group_reward"]
  assert rules["maxmin"]["mean_worst_reward"] >= max(
      r["mean_worst_reward"] for r in rules.values())
  for r in rules.values():
    assert r["worst_group_reward"] == min(r["group_reward"].values())
    assert all(0 <= v <= 1 for v in r["group_reward"].values())  # SPO scale


def test_selection_table_over_seeds():
  def run(seed, btl_worst):
    rule = lambda worst: dict(group_reward={"0": worst + 0.1, "1": worst},
                              worst_group_reward=worst, mean_reward=worst + 0.05,
                              mean_worst_reward=worst - 0.1,
                              group_raw_reward={"0": 0.5, "1": worst})
    return dict(seed=seed, selection=dict(
        scaling="spo", num_reference=10, num_prompts=5, num_candidates=3,
        rules=dict(btl=rule(btl_worst), maxmin=rule(0.5))))
  table = selection.selection_table([run(0, 0.2), run(1, 0.4)])
  assert "| btl | 0.300 ± 0.100 | 0.200 ± 0.100 | 0.500 ± 0.000 | 0.300 ± 0.100 |" in table
  assert "| maxmin | 0.500 ± 0.000 |" in table and "seeds [0, 1]" in table
