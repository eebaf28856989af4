"""vpl/methods.py: losses invariant to swapping a and b with the label flipped, samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import edited, swap_pairs
from vpl import methods, train
from vpl.data.comparisons import from_flat

D = 2


def _part(rng, shape, soft):
  label = rng.random(shape) if soft else rng.integers(0, 2, shape)
  return dict(a=rng.uniform(-1, 1, shape + (D,)).astype(np.float32),
              b=rng.uniform(-1, 1, shape + (D,)).astype(np.float32),
              label=label.astype(np.float32))


@pytest.mark.parametrize("pooling", ["mean", "attention"])
@pytest.mark.parametrize("soft", [False, True])
def test_vpl_loss_swap_a_b_with_flipped_label(tiny_config, pooling, soft):
  config = edited(tiny_config, **{"model.pooling": pooling, "loss.beta_schedule": "constant"})
  method = methods.make_method("vpl", config)
  model = method.make_model(D, nnx.Rngs(0))
  rng = np.random.default_rng(0)
  batch = dict(context=_part(rng, (5, 4), soft), targets=_part(rng, (5, 3), soft))
  key, step = jax.random.key(3), jnp.int32(7)
  loss, metrics = method.loss(model, batch, key, step)
  for where in ("context", "targets", "both"):
    swapped = {}
    for part in ("context", "targets"):
      flip = rng.random(batch[part]["label"].shape) < 0.5
      swapped[part] = swap_pairs(batch[part], flip) if where in (part, "both") else batch[part]
    loss_s, metrics_s = method.loss(model, swapped, key, step)
    assert float(loss_s) == pytest.approx(float(loss), rel=1e-5)
    assert float(metrics_s["kl"]) == pytest.approx(float(metrics["kl"]), rel=1e-5)
  # Guard: swapping a and b WITHOUT flipping the label changes the loss.
  flip = np.ones((5, 3), bool)
  unflipped = dict(batch, targets=dict(swap_pairs(batch["targets"], flip),
                                       label=batch["targets"]["label"]))
  assert abs(float(method.loss(model, unflipped, key, step)[0]) - float(loss)) > 1e-4


def test_btl_loss_swap_a_b_with_flipped_label(tiny_config):
  method = methods.make_method("btl", tiny_config)
  model = method.make_model(D, nnx.Rngs(0))
  rng = np.random.default_rng(1)
  batch = _part(rng, (32,), soft=True)
  loss, _ = method.loss(model, batch, None, None)
  swapped = swap_pairs(batch, rng.random(32) < 0.5)
  assert float(method.loss(model, swapped, None, None)[0]) == pytest.approx(float(loss),
                                                                              rel=1e-6)


def _pool(pairs_per_user=(5, 9, 7), seed=0):
  rng = np.random.default_rng(seed)
  user = np.repeat(np.arange(len(pairs_per_user)) * 10, pairs_per_user)
  n = len(user)
  # Feature 0 encodes the user and feature 1 the pair's position, so samples are traceable.
  slot = np.concatenate([np.arange(k) for k in pairs_per_user])
  a = np.stack([user, slot], -1).astype(np.float32)
  data = from_flat(a, -a, rng.integers(0, 2, n), user)
  return data, jax.device_put(train.make_pool(data))


def test_sample_sets_draws_one_user_and_disjoint_real_pairs():
  data, pool = _pool()
  batch = methods.sample_sets(jax.random.key(0), pool, num_sets=64, num_context=3,
                              num_targets=2, target_mode="disjoint")
  ctx, tgt = (np.asarray(batch[p]["a"]) for p in ("context", "targets"))
  assert ctx.shape == (64, 3, D) and tgt.shape == (64, 2, D)
  for c, t in zip(ctx, tgt):
    assert len(set(c[:, 0]) | set(t[:, 0])) == 1  # one user per set
    slots = list(c[:, 1]) + list(t[:, 1])
    assert len(set(slots)) == 5  # context and targets never share a pair
    user = int(c[0, 0]) // 10
    assert max(slots) < data.pairs_per_user[user]  # only real pairs, never padding
  both = methods.sample_sets(jax.random.key(0), pool, num_sets=8, num_context=3,
                             num_targets=2, target_mode="both")
  np.testing.assert_array_equal(both["targets"]["a"][:, :3], both["context"]["a"])
  same = methods.sample_sets(jax.random.key(0), pool, num_sets=8, num_context=3,
                             num_targets=2, target_mode="context")
  np.testing.assert_array_equal(same["targets"]["a"], same["context"]["a"])


def test_choose_users_distinct_uniform_and_unchanged_below_the_threshold():
  from vpl.methods import sampling
  key = jax.random.key(0)
  # At or below FLOYD_ABOVE users the draws are jax.random.choice's (documented runs' streams).
  np.testing.assert_array_equal(sampling.choose_users(key, 1000, 64),
                                jax.random.choice(key, 1000, (64,), replace=False))
  np.testing.assert_array_equal(sampling.choose_users(key, 10, 64),
                                jax.random.choice(key, 10, (64,), replace=True))
  # Above it: Floyd's algorithm. Always distinct, in range; every user and every position
  # equally likely (5,000 draws of 4 from 2^16 + 8 users, tallied on the last 8 users, where
  # Floyd's "else j" branch lands, and on the first).
  n = sampling.FLOYD_ABOVE + 8
  draw = jax.jit(jax.vmap(lambda k: sampling.choose_users(k, n, 4)))
  users = np.asarray(draw(jax.random.split(key, 5000)))
  assert ((users >= 0) & (users < n)).all()
  assert all(len(set(row)) == 4 for row in users)
  # P(a given user is chosen) = 4 / n; the top 8 users together: 5000 * 32 / n = 2.44 expected.
  top = (users >= n - 8).sum()
  assert top <= 12, top  # Poisson(2.44): P(>12) < 1e-5; a biased "else j" would give ~thousands
  # Order: the first slot is no more often the largest of the four than the others.
  first_largest = (users.argmax(1) == 0).mean()
  assert abs(first_largest - 0.25) < 0.03, first_largest


def test_floyd_draws_every_subset_and_order_equally_often(monkeypatch):
  from vpl.methods import sampling
  monkeypatch.setattr(sampling, "FLOYD_ABOVE", 2)  # Floyd's algorithm on 6 users, 3 draws
  draw = jax.jit(jax.vmap(lambda k: sampling.choose_users(k, 6, 3)))
  users = np.asarray(draw(jax.random.split(jax.random.key(1), 24_000)))
  _, counts = np.unique(users, axis=0, return_counts=True)
  assert len(counts) == 120  # every ordered triple of distinct users: 6 x 5 x 4
  assert abs(counts - 200).max() < 70, counts  # 200 expected each; sd 14


def test_sample_pairs_draws_only_real_pairs():
  data, pool = _pool()
  batch = methods.sample_pairs(jax.random.key(0), pool, 500)
  a = np.asarray(batch["a"])
  users, slots = a[:, 0].astype(int) // 10, a[:, 1].astype(int)
  assert (slots < data.pairs_per_user[users]).all()
  assert set(users) == {0, 1, 2}
  np.testing.assert_array_equal(batch["b"], -a)


def test_make_method_rejects_unknown_names(tiny_config):
  with pytest.raises(ValueError, match=r"'dpl'.*choose from \['btl', .*'vpl'\]"):
    methods.make_method("dpl", tiny_config)
  with pytest.raises(ValueError, match=r"loss.target_mode = 'all'"):
    methods.make_method("vpl", edited(tiny_config, **{"loss.target_mode": "all"}))
  with pytest.raises(ValueError, match=r"loss.beta_schedule = 'linear'"):
    methods.make_method("vpl", edited(tiny_config, **{"loss.beta_schedule": "linear"}))


def test_batch_axis_sizes(tiny_config):
  t = tiny_config.train
  assert methods.make_method("vpl", tiny_config).batch_axis_size == t.batch_sets
  assert (methods.make_method("btl", tiny_config).batch_axis_size
          == t.batch_sets * t.num_targets)


def test_vpl_nonlinear_l2_adds_the_item_mlps_squared_output_kernel(tiny_config):
  """loss.nonlinear_l2 = lam adds lam * ||item MLP's output kernel||^2 to VPL's loss, and is
  refused with the concat decoder, which has no item MLP."""
  rng = np.random.default_rng(0)
  batch = dict(context=_part(rng, (5, 4), False), targets=_part(rng, (5, 3), False))
  key, step = jax.random.key(3), jnp.int32(7)
  values = {}
  for lam in (0.0, 0.5):
    config = edited(tiny_config, **{"model.decoder": "product_linear", "loss.nonlinear_l2": lam})
    method = methods.make_method("vpl", config)
    model = method.make_model(D, nnx.Rngs(0))
    values[lam], metrics = method.loss(model, batch, key, step)
  kernel = np.asarray(model.decoder.item.layers[-1].kernel[...])
  assert float(metrics["nonlinear_l2"]) == pytest.approx(float((kernel ** 2).sum()), rel=1e-5)
  assert float(values[0.5] - values[0.0]) == pytest.approx(0.5 * (kernel ** 2).sum(), rel=1e-4)
  with pytest.raises(ValueError, match="loss.nonlinear_l2 = 0.5"):
    methods.make_method("vpl", edited(tiny_config, **{"model.decoder": "concat",
                                                      "loss.nonlinear_l2": 0.5}))
