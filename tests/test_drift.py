"""vpl/data/drift.py, vpl/data/recency.py: switch times and truth exact, weights by hand, split."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vpl import config_checks, configs
from vpl.data import recency
from vpl.data import drift, sources, tasks
from vpl.models.vpl import VPLModel


def _base(seed=3):
  return tasks.GENERATORS["didactic"](shares=(0.5, 0.5), num_users=40, pairs_per_user=20,
                                      temperature=0.0, seed=seed)


def test_switch_times_and_truth_exact():
  base = _base()
  task = drift.drift(base, np.random.default_rng(0), drifting_users=0.5, switch_low=0.25,
                     switch_high=0.6)
  t, d, old = task.truth, task.data, base.data
  assert task.name == "drift_didactic"
  assert t["drifts"].sum() == 20  # exactly half of 40 users
  moved = t["drifts"]
  # Switch slots in [round(0.25 x 20), round(0.6 x 20)] = [5, 12]; K = 20 for the others.
  assert (t["switch_time"][moved] >= 5).all() and (t["switch_time"][moved] <= 12).all()
  assert (t["switch_time"][~moved] == 20).all()
  np.testing.assert_array_equal(t["group_before"], old.group)
  assert (t["group_after"][moved] != t["group_before"][moved]).all()
  np.testing.assert_array_equal(t["group_after"][~moved], old.group[~moved])
  np.testing.assert_array_equal(d.group, t["group_after"])
  np.testing.assert_array_equal(task.timestamp, np.broadcast_to(np.arange(20.0), (40, 20)))
  for u in range(40):
    s = t["switch_time"][u]
    # Before the switch: the old answers, untouched; after: the new group's (noiseless) vote.
    np.testing.assert_array_equal(d.label[u, :s], old.label[u, :s])
    after = d.group_pref[u, s:, t["group_after"][u]]
    np.testing.assert_array_equal(d.label[u, s:], (after > 0.5).astype(np.float32))
    np.testing.assert_array_equal(d.true_pref[u, :s],
                                  old.group_pref[u, :s, t["group_before"][u]])
    np.testing.assert_array_equal(d.true_pref[u, s:], after)


def test_drift_generator_refuses_bad_shares_and_one_group():
  with pytest.raises(ValueError, match="switch_low = 0.7, switch_high = 0.5"):
    drift.drift(_base(), np.random.default_rng(0), switch_low=0.7, switch_high=0.5)
  one = tasks.GENERATORS["unimodal"](num_users=10, pairs_per_user=8, pool_pairs=200)
  with pytest.raises(ValueError, match="two or more groups"):
    drift.drift(one, np.random.default_rng(0))
  with pytest.raises(ValueError, match="task = 'maze'"):
    tasks.generate("drift", dict(task="maze"), 0)


def test_registered_preset_is_reproducible():
  kwargs = dict(task="ufp", num_types=4, num_users=30, pairs_per_user=16, pool_pairs=400)
  a, b = tasks.generate("drift", kwargs, 5), tasks.generate("drift", kwargs, 5)
  np.testing.assert_array_equal(a.data.label, b.data.label)
  assert a.truth["drifts"].all() and a.num_groups == 4
  assert tasks.preset("drift_didactic").generator == "drift"


def test_recency_weights_by_hand():
  np.testing.assert_array_equal(recency.weights("all", 3), [1, 1, 1])
  np.testing.assert_array_equal(recency.weights("latest:2", 4), [0, 0, 1, 1])
  np.testing.assert_allclose(recency.weights("exp:2", 3), [0.5, 0.5**0.5, 1.0])
  for bad in ("exp:0", "latest:0", "latest:1.5", "recent", "exp:x"):
    with pytest.raises(ValueError, match="model.context_recency"):
      recency.parse(bad)


def test_weighted_pooling_by_hand():
  """VPL's mean pooling with weights w is the w-weighted mean of the pair embeddings."""
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=2, decoder="product",
                   rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.standard_normal((1, 3, 2)), jnp.float32) for _ in range(2))
  y = jnp.asarray([[1.0, 0.0, 1.0]])
  w = jnp.asarray(recency.weights("exp:1", 3)[None], jnp.float32)  # 0.25, 0.5, 1
  mu, log_var = model.encoder(a, b, y, w)
  pref = y[..., None] * a + (1 - y[..., None]) * b
  other = y[..., None] * b + (1 - y[..., None]) * a
  h = model.encoder.pair(jnp.concatenate([pref, other, jnp.ones_like(y)[..., None]], -1))
  pooled = (0.25 * h[:, 0] + 0.5 * h[:, 1] + 1.0 * h[:, 2]) / 1.75
  want_mu, want_log_var = jnp.split(model.encoder.head(pooled), 2, axis=-1)
  np.testing.assert_allclose(mu, want_mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_var, want_log_var, rtol=1e-5, atol=1e-6)
  # latest:2 is the context of the two latest pairs alone.
  mu2, _ = model.encoder(a, b, y, jnp.asarray([[0.0, 1.0, 1.0]]))
  np.testing.assert_allclose(mu2, model.encoder(a[:, 1:], b[:, 1:], y[:, 1:])[0], rtol=1e-5,
                             atol=1e-6)


def _drift_config(tiny_config, **overrides):
  return configs.with_overrides(tiny_config, {
      "data.source": "drift", "eval.split": "temporal", "data.heldout_fraction": 0.25,
      "data.kwargs": dict(task="didactic", shares=(0.5, 0.5), num_users=30, pairs_per_user=16,
                          temperature=0.0), "eval.num_context": 12, **overrides})


def test_temporal_split_scores_each_users_latest_answers(tiny_config):
  exp = sources.build(_drift_config(tiny_config, **{"model.context_recency": "latest:4"}))
  assert exp.evaluated.num_users == exp.train.num_users == 30
  # The latest 4 of 16 answers are targets; the 12 before them train and are the context.
  np.testing.assert_array_equal(exp.target_mask, np.broadcast_to(np.arange(16) >= 12, (30, 16)))
  np.testing.assert_array_equal(exp.train.mask, np.broadcast_to(np.arange(16) < 12, (30, 16)))
  np.testing.assert_array_equal(exp.context_idx, np.broadcast_to(np.arange(12), (30, 12)))
  np.testing.assert_array_equal(exp.context_weight[0], [0] * 8 + [1] * 4)
  with pytest.raises(ValueError, match="only data.source = 'drift'"):
    sources.build(configs.with_overrides(tiny_config, {"eval.split": "temporal"}))


def test_config_rules_name_field_value_and_fix(tiny_config):
  with pytest.raises(ValueError, match=r"model.context_recency = 'exp:4'.*eval.split=temporal"):
    config_checks.check(configs.with_overrides(tiny_config,
                                               {"model.context_recency": "exp:4"}))
  with pytest.raises(ValueError, match=r"'latest:20'.*eval.num_context = 12"):
    config_checks.check(_drift_config(tiny_config, **{"model.context_recency": "latest:20"}))
  with pytest.raises(ValueError, match="model.context_recency = 'soon'"):
    config_checks.check(_drift_config(tiny_config, **{"model.context_recency": "soon"}))
  config_checks.check(_drift_config(tiny_config, **{"model.context_recency": "exp:3"}))


def test_drift_section_end_to_end(tiny_config, tmp_path):
  from vpl import experiment
  config = _drift_config(tiny_config, **{"model.context_recency": "latest:4",
                                         "train.num_steps": 50, "train.checkpoint_every": 50,
                                         "eval.reward_maps": False})
  results = experiment.train_and_evaluate(config, str(tmp_path))
  drift_ = results["drift"]
  assert drift_["context_recency"] == "latest:4" and drift_["num_targets"] == 30 * 4
  assert drift_["methods"]["btl"]["gain"] == 0.0  # BTL reads no context
  assert drift_["methods"]["vpl"]["weighted"] == results["methods"]["vpl"]["heldout_accuracy"]
  assert 0 <= drift_["share_switched_before_targets"] <= 1


def test_time_windows_are_consecutive_answers_then_the_next_ones():
  import jax
  from vpl.methods import windows
  # Feature 0 of a is the slot (time), the label is the user; user 0 has 6 real pairs, user 1
  # has 4 (then padding).
  a = np.zeros((2, 7, 1), np.float32)
  a[..., 0] = np.arange(7)
  pool = dict(a=jnp.asarray(a), b=jnp.zeros((2, 7, 1)),
              label=jnp.asarray(np.repeat([[0.0], [1.0]], 7, 1)),
              mask=jnp.asarray(np.arange(7)[None] < np.array([[6], [4]])))
  for seed in range(5):
    batch = windows.sample_windows(jax.random.key(seed), pool, num_sets=8, num_context=2,
                                   num_targets=2)
    ctx, tgt = np.asarray(batch["context"]["a"][..., 0]), np.asarray(batch["targets"]["a"][..., 0])
    user = np.asarray(batch["context"]["label"][:, 0]).astype(int)
    start = ctx[:, 0]
    np.testing.assert_array_equal(ctx, start[:, None] + [0, 1])
    np.testing.assert_array_equal(tgt, start[:, None] + [2, 3])
    assert (tgt[:, -1] < np.array([6, 4])[user]).all()  # never past a user's real answers
    np.testing.assert_array_equal(np.asarray(batch["targets"]["label"][:, 0]), user)


def test_time_order_needs_the_temporal_split(tiny_config):
  with pytest.raises(ValueError, match=r"train.context_order = 'time'.*eval.split=temporal"):
    config_checks.check(configs.with_overrides(tiny_config, {"train.context_order": "time"}))
  config_checks.check(_drift_config(tiny_config, **{"train.context_order": "time"}))


def test_drift_config_has_the_atom_prior_only_with_windows_in_time_order():
  # With windows in time order the atoms come from users' latest windows; with unordered sets
  # they would come from whole histories, which mix the preferences before and after a switch.
  from experiments.configs import drift as drift_config
  assert drift_config.get_config().model.atom_prior
  assert not drift_config.get_config("order=random").model.atom_prior
