"""vpl/methods/maxmin.py and vpl/models/mixture.py: the E-step by hand, EM's recovery of planted
groups, reseeding, restarts, resume, and an end-to-end run beside BTL."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import edited
from vpl import experiment, methods
from vpl.data import synthetic
from vpl.data.comparisons import UserComparisons
from vpl.methods import maxmin
from vpl.models.mixture import RewardMixture


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def _linear_mixture(slopes, log_pi):
  """Heads r_k(s) = slopes[k] * s on 1-D states (hidden=() makes each MLP one Linear)."""
  model = RewardMixture(1, (), len(slopes), rngs=nnx.Rngs(0))
  for head, slope in zip(model.heads, slopes):
    head.layers[0].kernel[...] = jnp.array([[slope]], jnp.float32)
    head.layers[0].bias[...] = jnp.zeros(1, jnp.float32)
  model.log_pi[...] = jnp.asarray(log_pi, jnp.float32)
  return model


def test_e_step_posterior_and_logits_by_hand():
  model = _linear_mixture([1.0, -2.0], np.log([0.3, 0.7]))
  context = dict(a=jnp.array([[[1.0], [0.5]]]), b=jnp.array([[[0.0], [0.0]]]),
                 label=jnp.array([[1.0, 0.0]]))
  # Pair 1: d = (1, -2), a preferred; pair 2: d = (0.5, -1), b preferred.
  l0 = _log_sigmoid(1.0) + _log_sigmoid(-0.5)
  l1 = _log_sigmoid(-2.0) + _log_sigmoid(1.0)
  np.testing.assert_allclose(
      model.cluster_log_lik(context["a"], context["b"], context["label"]), [[l0, l1]],
      rtol=1e-5)
  post = np.array([0.3 * np.exp(l0), 0.7 * np.exp(l1)])
  post /= post.sum()
  targets = dict(a=jnp.array([[[2.0]]]), b=jnp.array([[[0.0]]]))
  logits, aux = model(context, targets)
  np.testing.assert_allclose(aux["cluster_posterior"], [post], rtol=1e-5)
  assert int(aux["cluster"][0]) == int(post.argmax())
  p_a = post[0] / (1 + np.exp(-2.0)) + post[1] / (1 + np.exp(4.0))
  np.testing.assert_allclose(logits, [[np.log(p_a / (1 - p_a))]], rtol=1e-5)
  np.testing.assert_allclose(aux["reward_a"], [[[2.0, -4.0][post.argmax()]]], rtol=1e-6)
  # A padded context pair counts for nothing.
  masked = dict(context, mask=jnp.array([[True, False]]))
  np.testing.assert_allclose(
      model.cluster_log_lik(masked["a"], masked["b"], masked["label"], masked["mask"]),
      [[_log_sigmoid(1.0), _log_sigmoid(-2.0)]], rtol=1e-5)


def test_e_step_with_the_position_bias_tower_by_hand():
  """With conditions, each answer's likelihood under head k is the tower's mixture
  w_g sigmoid(d_k) + w_a (a) or w_g sigmoid(-d_k) + w_b (b), and the targets' logit goes
  through the tower too."""
  model = RewardMixture(1, (), 2, rngs=nnx.Rngs(0), num_conditions=2)
  for head, slope in zip(model.heads, [1.0, -2.0]):
    head.layers[0].kernel[...] = jnp.array([[slope]], jnp.float32)
    head.layers[0].bias[...] = jnp.zeros(1, jnp.float32)
  model.log_pi[...] = jnp.log(jnp.array([0.3, 0.7]))
  theta = np.array([[0.0, -1.0, -3.0], [0.5, -2.0, -1.0]])
  model.condition_bias.theta[...] = jnp.asarray(theta, jnp.float32)
  w = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
  sig = lambda x: 1 / (1 + np.exp(-x))
  context = dict(a=jnp.array([[[1.0], [0.5]]]), b=jnp.array([[[0.0], [0.0]]]),
                 label=jnp.array([[1.0, 0.0]]), condition=jnp.array([[0, 1]]))
  # Pair 1 (a first, a chosen): d = (1, -2); pair 2 (b first, b chosen): d = (0.5, -1).
  ll = [np.log(w[0, 0] * sig(d1) + w[0, 1]) + np.log(w[1, 0] * sig(-d2) + w[1, 2])
        for d1, d2 in ((1.0, 0.5), (-2.0, -1.0))]
  np.testing.assert_allclose(model.cluster_log_lik(
      context["a"], context["b"], context["label"], None, context["condition"]), [ll],
      rtol=1e-5)
  post = np.array([0.3, 0.7]) * np.exp(ll)
  post /= post.sum()
  targets = dict(a=jnp.array([[[2.0]]]), b=jnp.array([[[0.0]]]), condition=jnp.array([[1]]))
  logits, aux = model(context, targets)
  np.testing.assert_allclose(aux["cluster_posterior"], [post], rtol=1e-5)
  p_a = w[1, 0] * (post[0] * sig(2.0) + post[1] * sig(-4.0)) + w[1, 1]
  np.testing.assert_allclose(logits, [[np.log(p_a / (1 - p_a))]], rtol=1e-5)


def test_reliability_weighs_the_m_step_draw_and_tempers_the_e_step():
  gamma = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  count = np.array([2, 4, 3])
  # Cluster 0: users 0 and 1 with weights 2 x 0.5 and 4 x 0; cluster 1: only user 2 (w = 0)
  # keeps its unweighted draw.
  cdf = maxmin.user_cdf(gamma, count, np.array([0.5, 0.0, 0.0]))
  np.testing.assert_allclose(cdf, [[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(maxmin.user_cdf(gamma, count), [[2 / 6, 1.0, 1.0], [0, 0, 1.0]])
  model = _linear_mixture([1.0, -2.0], np.log([0.3, 0.7]))
  context = dict(a=jnp.array([[[1.0]], [[1.0]]]), b=jnp.zeros((2, 1, 1)),
                 label=jnp.ones((2, 1)), reliability=jnp.array([0.0, 0.5]))
  post = np.exp(np.asarray(model.posterior(context)))
  np.testing.assert_allclose(post[0], [0.3, 0.7], rtol=1e-5)  # w = 0: the prior
  tempered = np.array([0.3, 0.7]) * np.exp(0.5 * np.array([_log_sigmoid(1.0),
                                                           _log_sigmoid(-2.0)]))
  np.testing.assert_allclose(post[1], tempered / tempered.sum(), rtol=1e-5)


def test_kmeans_fitted_on_trusted_rows_places_every_row_at_its_nearest_center():
  """Two tight groups and two wide clouds of untrusted rows: fitted to the trusted rows, the
  groups are found and each untrusted row joins the group it lies nearer to."""
  rng = np.random.default_rng(0)
  groups = np.concatenate([rng.normal([-1, -1], 0.05, (20, 2)), rng.normal([1, 1], 0.05, (20, 2))])
  clouds = np.concatenate([rng.normal([-6, -2], 1.0, (15, 2)), rng.normal([5, 3], 1.0, (15, 2))])
  x = np.concatenate([groups, clouds])
  trusted = np.arange(70) < 40
  labels = maxmin.kmeans(x, 2, np.random.default_rng(1), fit_rows=trusted)
  assert len(set(labels[:20])) == 1 and len(set(labels[20:40])) == 1
  assert labels[0] != labels[20]
  assert (labels[40:55] == labels[0]).all() and (labels[55:] == labels[20]).all()
  # Untrusted users (reliability < 1/2) do not place the initial centers.
  data = UserComparisons(a=x[:, None].astype(np.float32), b=np.zeros((70, 1, 2), np.float32),
                         label=np.ones((70, 1), np.float32), mask=np.ones((70, 1), bool),
                         user_id=np.arange(70), group=np.zeros(70, int),
                         reliability=trusted.astype(np.float32))
  gamma = maxmin.init_responsibilities(data, 2, "kmeans", np.random.default_rng(1))
  np.testing.assert_array_equal(gamma.argmax(1), labels)


def test_logits_stay_finite_when_the_posterior_is_certain():
  model = _linear_mixture([50.0, -50.0], np.log([0.5, 0.5]))
  context = dict(a=jnp.ones((1, 8, 1)), b=jnp.zeros((1, 8, 1)), label=jnp.ones((1, 8)))
  logits, aux = model(context, dict(a=jnp.ones((1, 1, 1)), b=jnp.zeros((1, 1, 1))))
  assert float(aux["cluster_posterior"][0, 0]) == pytest.approx(1.0)
  assert np.isfinite(logits).all() and float(logits[0, 0]) == pytest.approx(50.0, rel=1e-4)


def test_host_e_step_and_objective_by_hand():
  log_lik = np.array([[-1.0, -3.0], [-2.0, -0.5]])
  log_pi = np.log([0.25, 0.75])
  np.testing.assert_array_equal(maxmin.e_step(log_lik, log_pi, "hard"), [[1, 0], [0, 1]])
  soft = maxmin.e_step(log_lik, log_pi, "soft")
  w = np.array([[0.25 * np.exp(-1), 0.75 * np.exp(-3)], [0.25 * np.exp(-2), 0.75 * np.exp(-0.5)]])
  np.testing.assert_allclose(soft, w / w.sum(1, keepdims=True))
  assert maxmin.total_log_lik(log_lik, log_pi, "hard") == pytest.approx(-1.5)
  assert maxmin.total_log_lik(log_lik, log_pi, "soft") == pytest.approx(np.log(w.sum(1)).sum())


def test_reseed_moves_the_worst_explained_users():
  gamma = np.eye(2)[[0, 0, 0, 0, 0, 0, 0, 0]]  # cluster 1 empty
  # Per-pair log-likelihood under cluster 0: users 5 and 2 are worst.
  log_lik = np.array([[-1, 0], [-2, 0], [-9, 0], [-1, 0], [-3, 0], [-10, 0], [-1, 0], [-1, 0]],
                     float)
  new, count = maxmin.reseed_empty(gamma, log_lik, np.full(8, 1))
  assert count == 1
  assert set(np.flatnonzero(new[:, 1])) == {5, 2}  # U / (2K) = 2 users
  unchanged, count = maxmin.reseed_empty(new, log_lik, np.full(8, 1))
  assert count == 0 and np.array_equal(unchanged, new)


def test_sampler_draws_only_real_pairs_of_each_heads_users():
  users, width = 6, 5
  mask = np.arange(width)[None] < np.array([5, 1, 3, 2, 5, 4])[:, None]
  # Feature = 10 * user + slot, so a drawn feature names where it came from.
  a = (10 * np.arange(users)[:, None] + np.arange(width)[None]).astype(np.float32)[..., None]
  data = UserComparisons(a=a, b=a, label=np.ones((users, width), np.float32), mask=mask,
                         user_id=np.arange(users), group=np.zeros(users, np.int32))
  gamma = np.eye(2)[[0, 1, 0, 1, 0, 1]]
  pool = maxmin.em_pool(data)
  pool["user_cdf"] = maxmin.user_cdf(gamma, pool["count"])
  batch = maxmin.sample_cluster_pairs(jax.random.key(0), pool, num_pairs=400)
  feature = np.asarray(batch["a"][..., 0]).astype(int)  # [P, K]
  user, slot = feature // 10, feature % 10
  assert mask[user, slot].all()
  assert set(user[:, 0]) == {0, 2, 4} and set(user[:, 1]) == {1, 3, 5}
  # Users are drawn in proportion to their pairs: user 1 (one pair) rarely, user 5 (four) often.
  assert (user[:, 1] == 5).sum() > 2 * (user[:, 1] == 1).sum()


def test_bad_config_raises(tiny_config):
  with pytest.raises(ValueError, match="maxmin.em = 'medium'"):
    methods.make_method("maxmin", edited(tiny_config, **{"maxmin.em": "medium"}))
  with pytest.raises(ValueError, match="maxmin.init"):
    methods.make_method("maxmin", edited(tiny_config, **{"maxmin.init": "spectral"}))


def _small(config, **fields):
  base = {"maxmin.steps_per_round": 150, "maxmin.pairs_per_step": 128, "maxmin.restarts": 1,
          "maxmin.max_rounds": 6}
  return edited(config, **{**base, **fields})


def _planted(num_users=48):
  task = synthetic.didactic(shares=(0.5, 0.5), num_users=num_users, pairs_per_user=32,
                            temperature=0.0, seed=1)
  return task.data


@pytest.mark.parametrize("init, em", [("random", "hard"), ("kmeans", "soft")])
def test_em_recovers_planted_groups(tiny_config, tmp_path, init, em):
  config = _small(tiny_config, **{"maxmin.init": init, "maxmin.em": em})
  data = _planted()
  method = methods.make_method("maxmin", config)
  model, info = method.fit(method, config, data, ckpt_dir=str(tmp_path / "ckpt"))
  summary = info["restarts"][0]
  assert summary["converged"]
  assert maxmin.cluster_purity(np.array(summary["assignment"]), data.group) == 1.0
  # New users from the same groups: the E-step on 8 context pairs finds their cluster.
  new = _planted(24)  # the modes are the task's; another size draws other users and pairs
  _, aux = method.predict(model, dict(a=new.a[:, :8], b=new.b[:, :8], label=new.label[:, :8]),
                          dict(a=new.a[:, 8:], b=new.b[:, 8:]))
  assert maxmin.cluster_purity(np.asarray(aux["cluster"]), new.group) >= 0.9


def test_reseeding_when_a_cluster_is_empty(tiny_config):
  config = _small(tiny_config, **{"maxmin.max_rounds": 3})
  data = _planted()
  method = methods.make_method("maxmin", config)
  em = maxmin._EM(method, config, data)
  everyone_in_0 = np.eye(2)[np.zeros(data.num_users, int)]
  _, summary = maxmin.run_em(em, config, everyone_in_0, em.init_params(0), jax.random.key(0))
  assert summary["reseeds"] >= 1
  assert min(summary["cluster_sizes"]) >= 1


@pytest.fixture(scope="module")
def three_restarts(tmp_path_factory):
  from experiments.configs import tiny
  config = _small(tiny.get_config(), **{"maxmin.restarts": 3, "maxmin.init": "random",
                                        "maxmin.max_rounds": 2})
  data = _planted()
  method = methods.make_method("maxmin", config)
  workdir = tmp_path_factory.mktemp("maxmin_fit")
  ckpt_dir, metrics_path = str(workdir / "ckpt"), str(workdir / "metrics.jsonl")
  model, info = method.fit(method, config, data, ckpt_dir=ckpt_dir, metrics_path=metrics_path)
  return dict(config=config, data=data, method=method, model=model, info=info,
              ckpt_dir=ckpt_dir, metrics_path=metrics_path)


def test_restarts_keep_the_best_log_likelihood(three_restarts):
  info, data, model = three_restarts["info"], three_restarts["data"], three_restarts["model"]
  log_liks = [s["log_lik"] for s in info["restarts"]]
  assert len(log_liks) == 3 and len(set(log_liks)) == 3  # different starts, different ends
  assert info["best_restart"] == int(np.argmax(log_liks))
  # The returned model is that restart's: its log-likelihood on the data is the best one.
  ll = np.asarray(model.cluster_log_lik(data.a, data.b, data.label, data.mask), np.float64)
  own = maxmin.total_log_lik(ll, np.asarray(model.log_pi[...], np.float64), "hard")
  assert own == pytest.approx(max(log_liks), rel=1e-4)
  assert info["final_step"] == sum(s["steps"] for s in info["restarts"])
  rows = [json.loads(line) for line in open(three_restarts["metrics_path"])]
  assert [r["restart"] for r in rows] == sorted(r["restart"] for r in rows)
  assert {r["restart"] for r in rows} == {0, 1, 2}
  assert {"log_lik", "cluster_sizes", "round", "reseeded"} <= set(rows[0])


def test_resume_loads_the_checkpoint_instead_of_retraining(three_restarts):
  t = three_restarts
  rows_before = open(t["metrics_path"]).read()
  calls = []
  model, info = t["method"].fit(t["method"], t["config"], t["data"], ckpt_dir=t["ckpt_dir"],
                                metrics_path=t["metrics_path"], on_chunk=calls.append)
  assert info["resumed_from"] == t["info"]["final_step"]
  assert calls == [] and open(t["metrics_path"]).read() == rows_before  # nothing trained
  assert info["train_seconds"] == t["info"]["train_seconds"]
  assert info["best_restart"] == t["info"]["best_restart"]
  for x, y in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(t["model"]))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_fit_killed_mid_em_resumes_at_its_last_round(three_restarts, tmp_path):
  """Every EM round is checkpointed: a fit stopped after round N resumes there and ends
  bit-identical to the uninterrupted fit."""
  t = three_restarts
  ckpt, steps, stop_after = str(tmp_path / "ckpt"), [], 3  # inside restart 1 or at its end

  def stop(step):
    steps.append(step)
    if len(steps) == stop_after:  # round N has just been checkpointed
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    t["method"].fit(t["method"], t["config"], t["data"], ckpt_dir=ckpt, on_chunk=stop)
  resumed_rounds = []
  model, info = t["method"].fit(t["method"], t["config"], t["data"], ckpt_dir=ckpt,
                                on_chunk=resumed_rounds.append)
  assert info["resumed_from"] == steps[-1]
  assert resumed_rounds[0] == steps[-1] + t["config"].maxmin.steps_per_round  # the next round
  assert info["restarts"] == t["info"]["restarts"]
  assert info["best_restart"] == t["info"]["best_restart"]
  for x, y in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(t["model"]))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_end_to_end_beside_btl(tiny_config, tmp_path):
  config = _small(tiny_config, methods=("btl", "maxmin"), **{
      "maxmin.restarts": 2, "eval.selection.num_prompts": 50,
      "eval.selection.num_reference": 100, "eval.reward_maps": False})
  results = experiment.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "results.json") as f:
    saved = json.load(f)
  assert {"btl", "maxmin"} <= set(saved["methods"])
  btl, mm = saved["methods"]["btl"], saved["methods"]["maxmin"]
  for m in (btl, mm):
    assert 0 <= m["heldout_accuracy"] <= 1 and m["train_seconds"] > 0
  # Two groups that disagree: one reward per group beats one reward for everyone.
  assert mm["heldout_accuracy"] > btl["heldout_accuracy"] + 0.1
  rules = saved["selection"]["rules"]
  assert {"btl", "maxmin", "softmin", "mean"} <= set(rules)
  assert saved == json.loads(json.dumps(results))
  assert os.path.isdir(tmp_path / "checkpoints" / "maxmin")
  # load_run rebuilds the EM result through the method's restore hook and re-scores it.
  from vpl import analysis
  run = analysis.load_run(str(tmp_path))
  assert "maxmin" in run.models and "maxmin" not in run.skipped
  again = run.evaluate()["maxmin"]
  assert again["heldout_accuracy"] == mm["heldout_accuracy"]
