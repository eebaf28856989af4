"""A user's reliability from re-asked questions, and VPL's posterior tempered by it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs import default
from vpl import losses, methods, reliability
from vpl.data import reasked, tasks
from vpl.data.comparisons import UserComparisons
from vpl.methods.sampling import sample_sets
from vpl.models import condition_bias
from vpl.models.vpl import VPLModel, temper

SETTINGS = dict(non_attitude_users=0.3, constructed_users=0.0, non_attitude_questions=0.0,
                constructed_questions=0.2, first_bias=1.0, reask_share=0.5, asks=3)


def _toy():
  """One user: question 7 same (a, a, a), 8 positional, 9 other, 10 asked once."""
  pid = np.array([[7, 7, 7, 8, 8, 9, 9, 9, 10]])
  cond = np.array([[0, 1, 0, 0, 1, 1, 0, 1, 0]])
  label = np.array([[1, 1, 1, 1, 0, 1, 0, 0, 1]], np.float32)  # 1 = a chosen
  k = pid.shape[1]
  return UserComparisons(np.zeros((1, k, 2), np.float32), np.ones((1, k, 2), np.float32),
                         label, np.ones((1, k), bool), np.array([0]), np.array([0]),
                         condition=cond, pair_id=pid)


def test_patterns_and_coin_likelihood_by_hand():
  counts, log_coin = reliability.question_counts(_toy())
  # 7: a every time -> same. 8: a (a first), b (b first) -> positional. 9: a when b was
  # first, then b when a was first -> other. 10: asked once -> not counted.
  np.testing.assert_array_equal(counts, [[1, 1, 1]])
  # A coin: same 2^(1-m), positional 2^-m, other the rest (m = 3, 2, 3).
  expected = np.log(1 / 4) + np.log(1 / 4) + np.log(1 - 1 / 4 - 1 / 8)
  np.testing.assert_allclose(log_coin, [expected])


def test_only_the_given_slots_count():
  where = np.zeros((1, 9), bool)
  where[0, :3] = True
  counts, _ = reliability.question_counts(_toy(), where)
  np.testing.assert_array_equal(counts, [[1, 0, 0]])


def test_weight_is_the_mixture_posterior_by_hand():
  mix = reliability.Mixture(pi=0.7, q=(0.8, 0.15, 0.05), users=1)
  counts = np.array([[3.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
  log_coin = np.array([np.log(0.25) * 3 + np.log(0.125) + np.log(0.625), 0.0])
  stable = 0.7 * 0.8 ** 3 * 0.15 * 0.05
  coin = 0.3 * 0.25 ** 3 * 0.125 * 0.625
  np.testing.assert_allclose(mix.weight(counts, log_coin), [stable / (stable + coin), 1.0])


def test_fit_recovers_the_shares_and_separates_the_kinds():
  preset = tasks.preset("didactic")
  task = tasks.generate(preset.generator, preset.kwargs, 0)
  data, truth = reasked.build(task, SETTINGS, np.random.default_rng(0))
  kind, _ = reasked.kinds_of(truth, data)
  mix = reliability.fit(*reliability.question_counts(data))
  assert abs(mix.pi - 0.7) < 0.03
  assert abs(mix.q[1] - 0.2) < 0.03  # questions answered by the framing
  w = mix.weight(*reliability.question_counts(data))
  assert w[kind == 0].mean() > 0.95 and w[kind == 1].mean() < 0.05


def test_attach_reads_only_the_askings_of_context_questions():
  data = _toy()
  context_idx = np.array([[0, 3]])  # questions 7 and 8; 9 and 10 are targets
  _, evaluated, weight, info = reliability.attach(data, data, context_idx)
  # Question 8's askings follow the order shown first: its context answer weighs 0.
  np.testing.assert_array_equal(weight, [[1.0, 0.0]])
  assert info["context_answers_by_position"] == 1
  flipped = UserComparisons(**{**data.__dict__, "label": data.label.copy()})
  flipped.label[0, 6] = 1 - flipped.label[0, 6]  # an asking of target question 9
  _, again, _, _ = reliability.attach(data, flipped, context_idx)
  np.testing.assert_array_equal(again.reliability, evaluated.reliability)
  flipped.label[0, 1] = 0  # an asking of context question 7: now "other"
  _, changed, _, _ = reliability.attach(data, flipped, context_idx)
  assert changed.reliability[0] != evaluated.reliability[0]
  assert info["fitted_on_users"] == 1


def test_needs_pair_id():
  data = _toy()
  bare = UserComparisons(data.a, data.b, data.label, data.mask, data.user_id, data.group)
  with pytest.raises(ValueError, match="model.reliability = 'reask' needs"):
    reliability.question_counts(bare)


def test_temper_by_hand():
  mu, log_var = jnp.array([[2.0], [2.0]]), jnp.log(jnp.array([[0.25], [0.25]]))
  w = jnp.array([1.0, 0.5])
  t_mu, t_log_var = temper(mu, log_var, jnp.zeros(1), jnp.zeros(1), w)
  # w = 1: unchanged. w = 1/2: precision 1/2 * 1 + 1/2 * 4 = 2.5, mean 1/2 * 4 * 2 / 2.5.
  np.testing.assert_allclose(t_mu[:, 0], [2.0, 1.6], rtol=1e-6)
  np.testing.assert_allclose(jnp.exp(t_log_var[:, 0]), [0.25, 0.4], rtol=1e-6)
  p_mu, p_log_var = temper(mu, log_var, jnp.ones(1), jnp.zeros(1), jnp.zeros(2))
  np.testing.assert_allclose(p_mu, 1.0)  # w = 0: the prior
  np.testing.assert_allclose(p_log_var, 0.0, atol=1e-7)


def test_vpl_reads_reliability_from_the_context():
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=3, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  ctx = dict(a=rng.normal(size=(2, 4, 2)), b=rng.normal(size=(2, 4, 2)),
             label=rng.integers(0, 2, (2, 4)).astype(np.float32))
  tgt = dict(a=ctx["a"], b=ctx["b"])
  _, aux = model(ctx, tgt)
  _, aux_w = model(dict(ctx, reliability=jnp.array([1.0, 0.0])), tgt)
  np.testing.assert_allclose(aux_w["mu"][0], aux["mu"][0], rtol=1e-5)
  np.testing.assert_allclose(aux_w["mu"][1], 0.0, atol=1e-6)
  np.testing.assert_allclose(aux_w["log_var"][1], 0.0, atol=1e-6)


def test_predicted_answers_mix_in_an_unreliable_users_coin():
  logit = jnp.array([[2.0, -1.0], [0.3, 4.0], [-3.0, 1.0]])
  w = jnp.array([1.0, 0.25, 0.0])
  p = jax.nn.sigmoid(condition_bias.with_coin(logit, w[:, None]))
  # w sigmoid(l) + (1 - w) / 2, by hand for the middle user
  np.testing.assert_allclose(p[1], [0.25 / (1 + np.exp(-0.3)) + 0.375,
                                    0.25 / (1 + np.exp(-4.0)) + 0.375], rtol=1e-6)
  np.testing.assert_allclose(p[0], jax.nn.sigmoid(logit[0]), rtol=1e-6)
  np.testing.assert_allclose(p[2], 0.5)
  # VPL's and MaxMin's predict: the answers (targets with conditions) get the coin; the
  # user's own preference (no conditions on the targets) does not
  config = default.get_config()
  rng = np.random.default_rng(0)
  ctx = dict(a=rng.normal(size=(2, 4, 2)), b=rng.normal(size=(2, 4, 2)),
             label=rng.integers(0, 2, (2, 4)).astype(np.float32),
             reliability=np.array([1.0, 0.0]))
  tgt = dict(a=rng.normal(size=(2, 3, 2)), b=rng.normal(size=(2, 3, 2)))
  for name in ("vpl", "maxmin"):
    method = methods.make_method(name, config)
    model = method.make_model(2, nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)  # off the initial zeros of the last layers
    nnx.update(model, jax.tree.map(lambda x: x + 0.3 * jnp.sin(
        jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) + 1.0), params))
    own, _ = method.predict(model, ctx, tgt)
    said, _ = method.predict(model, ctx, dict(tgt, condition=np.zeros((2, 3), np.int32)))
    np.testing.assert_allclose(said[0], own[0], rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(said[1], 0.0, atol=1e-6, err_msg=name)
    assert np.abs(own[1]).max() > 1e-3, name


def test_elbo_set_weight_leaves_an_unreliable_set_out_of_the_likelihood():
  logits = jnp.array([[3.0, -1.0], [0.5, 2.0]])
  label = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  zeros = jnp.zeros((2, 1))
  args = (zeros, zeros, jnp.zeros(1), jnp.zeros(1))
  _, only_first = losses.elbo_loss(logits[:1], label[:1], *(a[:1] for a in args[:2]),
                                   *args[2:], beta=0.0)
  _, weighted = losses.elbo_loss(logits, label, *args, beta=0.0,
                                 set_weight_B=jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(weighted["nll"], only_first["nll"], rtol=1e-6)


def test_the_sampler_gives_each_set_its_users_reliability():
  a = jnp.zeros((3, 4, 2)) + jnp.arange(3.0)[:, None, None]  # a's features name the user
  pool = dict(a=a, b=jnp.ones((3, 4, 2)), label=jnp.ones((3, 4)), mask=jnp.ones((3, 4), bool),
              reliability=jnp.array([0.1, 0.5, 0.9]))
  batch = sample_sets(jax.random.key(0), pool, num_sets=6, num_context=2, num_targets=2,
                      target_mode="disjoint")
  users = np.asarray(batch["context"]["a"][:, 0, 0]).astype(int)
  np.testing.assert_allclose(batch["context"]["reliability"],
                             np.array([0.1, 0.5, 0.9])[users])


def test_positional_slots_mark_every_asking_of_a_question_answered_by_position():
  np.testing.assert_array_equal(reliability.positional_slots(_toy())[0],
                                [0, 0, 0, 1, 1, 0, 0, 0, 0])
