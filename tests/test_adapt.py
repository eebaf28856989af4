"""vpl/adapt.py, vpl/strategies.py, vpl/posteriors.py: the rules by hand on toys, the protocol's
split, and a tiny run of every personalising method asked 0-8 questions."""

import json
import math
import os
import types

import jax
import numpy as np
import pytest

from conftest import edited
from experiments.configs import adapt as adapt_config, default
from vpl import adapt, analysis, experiment, posteriors, strategies
from vpl.data import synthetic

KEY = jax.random.key(0)


def _state(**views):
  """A stand-in for `posteriors.UserState` whose views return fixed arrays."""
  return types.SimpleNamespace(num_asked=views.pop("num_asked", 1),
                               **{k: (lambda *a, v=v: v) for k, v in views.items()})


def _cands(num_users, num_cands):
  zeros = np.zeros((num_users, num_cands, 2), np.float32)
  return dict(a=zeros, b=zeros, mask=np.ones((num_users, num_cands), bool))


def test_information_gain_by_hand_on_two_groups():
  """Two groups, equally likely. Question 0: group 0 says a with 0.9, group 1 with 0.1
  (informative); question 1: both say a with 0.9 (uninformative)."""
  w = np.array([[0.5, 0.5]])
  p = np.array([[[0.9, 0.9], [0.1, 0.9]]])  # [users, hypotheses, candidates]
  h = lambda x: -(x * math.log(x) + (1 - x) * math.log(1 - x))
  # I(y; g) = H(mean answer) - mean H(answer | g) = H(0.5) - H(0.9) and H(0.9) - H(0.9).
  mi = strategies.mutual_information(w, p)
  np.testing.assert_allclose(mi, [[math.log(2) - h(0.9), 0.0]], atol=1e-9)
  assert mi[0, 0] == pytest.approx(0.368064, abs=1e-6)
  # The expected reduction of the entropy of the group posterior is the same number.
  np.testing.assert_allclose(strategies.expected_entropy_reduction(w, p), mi, atol=1e-9)
  state = _state(hypotheses=(w, p))
  asked = np.zeros((1, 2), bool)
  for rule in (strategies.info_gain, strategies.entropy_reduction):
    assert rule(state, _cands(1, 2), asked, KEY, 1).tolist() == [[0]]
    # Once asked, it is never asked again: the other one is next.
    assert rule(state, _cands(1, 2), np.array([[True, False]]), KEY, 1).tolist() == [[1]]


def test_variance_rule_by_hand():
  """Spread now 1.0; candidate 0 leaves 0.2 whatever the answer, candidate 1 leaves 0.1 on
  y = 1 (p = 0.5) and 0.9 on y = 0: expected 0.2 against 0.5."""
  state = _state(spread=np.array([1.0]), predict=np.array([[0.3, 0.5]]),
                 spread_after=np.array([[[0.2, 0.2], [0.9, 0.1]]]))
  assert strategies.variance(state, _cands(1, 2), np.zeros((1, 2), bool), KEY,
                             1).tolist() == [[0]]


def test_dopt_asks_at_random_first_then_by_the_rule():
  scores = np.array([[0.1, 5.0, 0.2, 0.3]])
  after = _state(question_scores=scores, num_asked=2)
  assert strategies.dopt(after, _cands(1, 4), np.zeros((1, 4), bool), KEY, 2).tolist() == [
      [1, 3]]
  first = _state(question_scores=None, num_asked=0)  # never read before an answer
  picks = {int(strategies.dopt(first, _cands(1, 4), np.zeros((1, 4), bool),
                               jax.random.key(s), 1)[0, 0]) for s in range(20)}
  assert len(picks) > 1


def test_top_k_never_repeats_or_takes_padding():
  score = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
  available = np.array([[False, True, True, True], [True, True, True, False]])
  idx = strategies.top_k(score, available, KEY, 2)
  assert idx.tolist() == [[1, 2], [2, 1]]
  for seed in range(5):
    picks = strategies.random(None, dict(_cands(2, 4), mask=available), np.zeros((2, 4), bool),
                              jax.random.key(seed), 3)
    assert all(len(set(r)) == 3 and available[u, r].all() for u, r in enumerate(picks))
  with pytest.raises(ValueError, match="fewer than the 4 to ask"):
    strategies.top_k(score, available, KEY, 4)


def test_strategies_that_apply():
  names = default.get_config().adapt.strategies
  assert strategies.for_method("vpl", names) == ["random", "info_gain", "variance"]
  assert strategies.for_method("pref", names) == ["random", "dopt"]
  assert strategies.for_method("maxmin", names) == ["random", "entropy"]
  assert strategies.for_method("btl", names) == ["random"]
  with pytest.raises(ValueError, match=r"adapt.strategies has \['bald'\]"):
    strategies.for_method("vpl", ["bald"])


def test_protocol_split_pool_and_fixed_targets():
  data = synthetic.didactic(num_users=30, pairs_per_user=20, seed=0).data
  mask = data.mask.copy()
  mask[0, 14:] = False  # user 0 has 14 pairs: pool 14 - 8 = 6 < budget 8, left out
  mask[1, 17:] = False  # user 1 has 17 pairs: pool 9
  data = data.__class__(**{**data.arrays(), "mask": mask})
  settings = adapt.Settings(pool_size=10, min_targets=8, budgets=(0, 2, 8))
  proto = adapt.make_protocol(data, settings, 8, np.random.default_rng(0))
  assert proto.num_skipped == 1 and proto.rows[:2].tolist() == [1, 2]
  assert proto.pool_mask.sum(1).tolist()[:2] == [9, 10]
  for u in range(proto.data.num_users):
    pool = set(proto.pool_idx[u, proto.pool_mask[u]].tolist())
    targets = set(np.flatnonzero(proto.target_mask[u]).tolist())
    assert not pool & targets  # disjoint
    assert pool | targets == set(np.flatnonzero(proto.data.mask[u]).tolist())
    assert len(targets) >= settings.min_targets
  again = adapt.make_protocol(data, settings, 8, np.random.default_rng(0))
  np.testing.assert_array_equal(again.target_mask, proto.target_mask)
  with pytest.raises(ValueError, match="lower adapt.min_targets or adapt.budgets"):
    adapt.make_protocol(data, adapt.Settings(min_targets=20), 16, np.random.default_rng(0))


def test_settings_checks_and_defaults(tiny_config):
  assert adapt.Settings.from_config(tiny_config) == adapt.Settings()  # default.py's adapt
  for fields, match in [({"adapt.budgets": (0, 4, 2)}, "adapt.budgets"),
                        ({"adapt.pool_size": 8}, "pool_size = 8 is below the largest budget"),
                        ({"adapt.strategies": ("random", "bald")}, "not strategies"),
                        ({"adapt.predictive": "mode"}, "adapt.predictive = 'mode'"),
                        ({"adapt.batch_size": 0}, "adapt.batch_size = 0")]:
    with pytest.raises(ValueError, match=match):
      adapt.Settings.from_config(edited(tiny_config, **fields))
  c = adapt_config.get_config("task=ufp4,temperature=0.1")
  assert c.adapt.enabled and c.data.kwargs.pairs_per_user == 96
  assert c.data.kwargs.temperature == 0.1 and c.maxmin.num_clusters == 4
  with pytest.raises(ValueError, match="temperature=-1.0"):
    adapt_config.get_config("task=didactic,temperature=-1")


BUDGETS = (0, 1, 2, 4, 8)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
  """The tiny config with btl, vpl, pref and maxmin, asked 0-8 of 8 candidates (~30 s)."""
  from experiments.configs import tiny
  config = edited(tiny.get_config(), **{
      "methods": ("btl", "vpl", "pref", "maxmin"), "maxmin.steps_per_round": 50,
      "train.num_steps": 100,
      "maxmin.restarts": 1, "maxmin.max_rounds": 2, "eval.reward_maps": False,
      "adapt.enabled": True, "adapt.pool_size": 8, "adapt.min_targets": 8,
      "adapt.budgets": BUDGETS, "adapt.num_samples": 16})
  workdir = str(tmp_path_factory.mktemp("adapt_run"))
  results = experiment.train_and_evaluate(config, workdir)
  return dict(workdir=workdir, results=results, run=analysis.load_run(workdir))


def test_results_layout(adapted):
  results, workdir = adapted["results"], adapted["workdir"]
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["adaptation"] == json.loads(json.dumps(results["adaptation"]))
  section, info = results["adaptation"], results["adaptation_info"]
  assert list(section) == ["btl", "vpl", "pref", "maxmin"]
  assert {m: list(s) for m, s in section.items()} == info["strategies"] == {
      "btl": ["random"], "vpl": ["random", "info_gain", "variance"],
      "pref": ["random", "dopt"], "maxmin": ["random", "entropy"]}
  targets = {e["num_targets"] for s in section.values() for c in s.values() for e in c.values()}
  assert targets == {info["num_targets"]}  # the same fixed targets everywhere
  for method, by_strategy in section.items():
    for strategy, curve in by_strategy.items():
      assert list(curve) == [str(b) for b in BUDGETS]
      for entry in curve.values():
        assert {"accuracy", "nll", "ece", "brier", "posterior_spread",
                "bayes_oracle_accuracy"} <= set(entry)
        assert 0 <= entry["accuracy"] <= 1 and entry["nll"] > 0 and 0 <= entry["ece"] <= 1
  # One reward for everyone: the same prediction at every budget.
  assert len({e["accuracy"] for e in section["btl"]["random"].values()}) == 1
  assert section["btl"]["random"]["0"]["posterior_spread"] is None
  # Budget 0 is the prior: the same for every strategy; VPL's prior N(0, I) has variance 1.
  for method in ("vpl", "pref", "maxmin"):
    assert len({c["0"]["accuracy"] for c in section[method].values()}) == 1
  assert section["vpl"]["random"]["0"]["posterior_spread"] == pytest.approx(1.0)
  assert section["vpl"]["random"]["8"]["posterior_spread"] < 1.0
  assert section["vpl"]["random"]["8"]["accuracy"] > section["vpl"]["random"]["0"]["accuracy"]
  # The Bayes oracle is given the same asked pairs: all 8 of 8 at the largest budget.
  bayes = {c["8"]["bayes_oracle_accuracy"] for s in section.values() for c in s.values()}
  assert len(bayes) == 1
  assert info["oracle"]["heldout_accuracy"] == 1.0
  for name in ("adaptation.png", "reliability.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 5000
  with open(os.path.join(workdir, "results.md")) as f:
    text = f.read()
  assert "Questions needed" in text and "| vpl | info_gain |" in text
  for m in results["methods"].values():
    assert {"nll", "brier", "ece"} <= set(m)


def test_strategies_ask_each_pair_once_and_read_only_answers(adapted):
  run = adapted["run"]
  rng = np.random.default_rng(1)
  pool = dict(a=rng.uniform(-1, 1, (3, 10, 2)).astype(np.float32),
              b=rng.uniform(-1, 1, (3, 10, 2)).astype(np.float32), mask=np.ones((3, 10), bool))
  pool["mask"][2, 7:] = False  # padding is never asked
  label = rng.integers(0, 2, (3, 10)).astype(np.float32)
  for name, strategy_names in run.results["adaptation_info"]["strategies"].items():
    fitted = posteriors.Fitted(posteriors.for_method(run.methods[name], run.config,
                                                     num_samples=8), run.models[name])
    for strategy in strategy_names:
      for batch_size in (1, 3):
        log = []

        def answer(idx):
          log.append(idx.copy())
          return label[np.arange(3)[:, None], idx]

        out = adapt.ask(fitted, pool, answer, (0, 2, 7), strategies.REGISTRY[strategy],
                        jax.random.key(2), batch_size=batch_size,
                        targets=dict(a=pool["a"], b=pool["b"]), predict_key=KEY)
        asked = out[7]["asked"]
        np.testing.assert_array_equal(np.concatenate(log, 1), asked)  # only these were read
        assert all(len(set(r)) == 7 for r in asked.tolist()), (name, strategy)
        assert pool["mask"][np.arange(3)[:, None], asked].all()
        np.testing.assert_array_equal(out[2]["asked"], asked[:, :2])
        assert all(np.isfinite(out[b]["p_a"]).all() for b in (0, 2, 7))


def test_run_adaptation_reproduces_results_on_the_same_targets(adapted):
  run, section = adapted["run"], adapted["results"]["adaptation"]
  assert run.adaptation("vpl", "info_gain") == {int(b): e for b, e in
                                                section["vpl"]["info_gain"].items()}
  # Fewer budgets: the same targets and the same questions, so the same scores.
  fewer = run.adaptation("maxmin", "entropy", budgets=[0, 4])
  assert fewer == {0: section["maxmin"]["entropy"]["0"], 4: section["maxmin"]["entropy"]["4"]}
  with pytest.raises(ValueError, match="'dopt' does not apply to 'vpl'"):
    run.adaptation("vpl", "dopt")


def test_interview_a_simulated_user(adapted):
  run = adapted["run"]
  task = run.task
  rng = np.random.default_rng(0)
  a, b = rng.uniform(-1, 1, (2, 12, 2)).astype(np.float32)
  asked = []

  def answer(x, y):
    asked.append((x.copy(), y.copy()))
    return float(task.true_reward(x, 1) > task.true_reward(y, 1))

  rep, reward_fn = adapt.interview(run, "vpl", a, b, answer, 4, strategy="info_gain")
  assert len(asked) == 4 and len(set(rep["asked"].tolist())) == 4
  np.testing.assert_array_equal(asked[2][0], a[rep["asked"][2]])
  assert rep["mu"].shape == (run.config.model.latent_dim,) and rep["answers"].shape == (4,)
  items = rng.uniform(-1, 1, (5, 3, 2)).astype(np.float32)
  np.testing.assert_allclose(reward_fn(items), run.rewards("vpl", items, z=rep["mu"]),
                             rtol=1e-5, atol=1e-5)
  prior, _ = adapt.interview(run, "vpl", a, b, answer, 0)  # no question: the prior
  np.testing.assert_array_equal(prior["mu"], np.zeros(run.config.model.latent_dim))
  rep, reward_fn = adapt.interview(run, "maxmin", a, b, answer, 3, strategy="entropy",
                                   batch_size=3)
  assert rep["cluster_posterior"].sum() == pytest.approx(1.0, abs=1e-5)
  assert reward_fn(items).shape == (5, 3)
  with pytest.raises(ValueError, match="'info_gain' does not apply to 'pref'"):
    adapt.interview(run, "pref", a, b, answer, 2)
  with pytest.raises(ValueError, match="num_questions = 13"):
    adapt.interview(run, "vpl", a, b, answer, 13)


def test_without_generating_rewards_the_answers_are_the_recorded_labels(adapted):
  """Real or imported data: no oracle and no Bayes oracle, the rest as on synthetic data."""
  import dataclasses
  run = adapted["run"]
  bare = dataclasses.replace(run.heldout, true_pref=None, pooled_pref=None, divergent=None,
                             group_pref=None)
  exp = dataclasses.replace(run.data, evaluated=bare, task=None)
  section, info = adapt.evaluate_all(run.config, exp, {"vpl": (run.methods["vpl"],
                                                              run.models["vpl"])})
  assert "oracle" not in info and list(section["vpl"]) == ["random", "info_gain", "variance"]
  ours = adapted["results"]["adaptation"]["vpl"]
  for strategy, curve in section["vpl"].items():
    for budget, entry in curve.items():
      assert "bayes_oracle_accuracy" not in entry
      assert entry["accuracy"] == ours[strategy][budget]["accuracy"]
  from vpl import adapt_report
  assert "Questions needed" not in adapt_report.text([dict(
      seed=0, adaptation=section, adaptation_info=info)])


def test_seed_tables_questions_needed_and_band_figure(adapted, tmp_path):
  import copy
  from vpl import adapt_plots, adapt_report
  first = adapted["results"]
  second = copy.deepcopy(first)
  second["seed"] = 1
  for by_strategy in second["adaptation"].values():
    for curve in by_strategy.values():
      for entry in curve.values():
        entry["accuracy"] = max(0.0, entry["accuracy"] - 0.02)
  runs = [first, second]
  # Questions needed, by hand from the mean curve and 95% of the mean Bayes oracle at 8.
  curve = lambda r: r["adaptation"]["vpl"]["info_gain"]
  target = 0.95 * np.mean([curve(r)["8"]["bayes_oracle_accuracy"] for r in runs])
  mean = {b: np.mean([curve(r)[str(b)]["accuracy"] for r in runs]) for b in BUDGETS}
  expected = next((b for b in BUDGETS if mean[b] >= target), None)
  needed = adapt_report.questions_needed(runs)["vpl"]["info_gain"]
  assert needed == dict(target=pytest.approx(target), needed=expected)
  text = adapt_report.text(runs)
  assert "seeds [0, 1]" in text and " ± " in text and "Questions needed" in text
  path = adapt_plots.adaptation_curves(runs, str(tmp_path / "band.png"))
  assert os.path.getsize(path) > 5000
