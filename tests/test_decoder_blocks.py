"""vpl/models/decoder_blocks.py: VPL's training loss with each decoder block's backward pass
right after its forward pass is the same function, with the same gradients, as one piece."""

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.configs import default
from vpl import config_checks, configs, methods
from vpl.models import decoder_blocks

D, B, N, T = 3, 8, 4, 5


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.normal(size=s).astype(np.float32)
  context = dict(a=f(B, N, D), b=f(B, N, D), label=rng.integers(0, 2, (B, N)).astype(np.float32),
                 reliability=rng.random(B).astype(np.float32))
  targets = dict(a=f(B, T, D), b=f(B, T, D), label=rng.random((B, T)).astype(np.float32),
                 mask=rng.random((B, T)) < 0.8, condition=rng.integers(0, 2, (B, T)))
  return dict(context=context, targets=targets)


def _loss_and_grads(decoder, blocks, batch):
  config = configs.with_overrides(default.get_config(), {
      "model.decoder": decoder, "model.decoder_blocks": blocks, "model.condition_bias": True,
      "model.hidden": (8, 8), "model.embed_dim": 8, "model.latent_dim": 2,
      "loss.nonlinear_l2": 0.0 if decoder == "concat" else 1.0})
  method = methods.make_method("vpl", config)
  model = method.make_model(D, nnx.Rngs(0))
  loss = lambda model: method.loss(model, batch, jax.random.key(3), 10)
  (value, metrics), grads = nnx.value_and_grad(loss, has_aux=True)(model)
  return value, metrics, grads


@pytest.mark.parametrize("decoder", ["concat", "product_linear"])
def test_blocked_loss_and_gradients_equal_one_piece(decoder):
  batch = _batch()
  value_1, metrics_1, grads_1 = _loss_and_grads(decoder, 1, batch)
  for blocks in (2, 4):
    value, metrics, grads = _loss_and_grads(decoder, blocks, batch)
    np.testing.assert_allclose(value, value_1, rtol=1e-5)
    np.testing.assert_allclose(metrics["nll"], metrics_1["nll"], rtol=1e-5)
    leaves, leaves_1 = (jax.tree.leaves(nnx.state(g, nnx.Param)) for g in (grads, grads_1))
    assert len(leaves) == len(leaves_1)
    for g, g1 in zip(leaves, leaves_1):
      np.testing.assert_allclose(g, g1, rtol=1e-4, atol=1e-6)
    # The encoder, the decoder and the tower all receive their gradient.
    assert np.abs(np.asarray(grads.condition_bias.theta[...])).max() > 0
    assert max(np.abs(np.asarray(x)).max() for x in jax.tree.leaves(
        nnx.state(grads.encoder, nnx.Param))) > 0
    # The decoder's last bias cancels in r(a) - r(b): exactly zero in any summation order.
    tower = getattr(grads.decoder, "mlp" if decoder == "concat" else "item")
    np.testing.assert_array_equal(np.asarray(tower.layers[max(tower.layers.keys())].bias[...]),
                                  0.0)


def test_blocks_split_strided_and_merge_back():
  x = np.arange(12).reshape(6, 2)
  split = np.asarray(decoder_blocks._split(x, 3))
  np.testing.assert_array_equal(split[1], x[[1, 4]])  # block j: sets j, j + K, ...
  np.testing.assert_array_equal(np.asarray(decoder_blocks._merge(split)), x)


def test_blocks_must_divide_the_batch():
  config = configs.with_overrides(default.get_config(), {"model.decoder_blocks": 3})
  with pytest.raises(ValueError, match=r"model.decoder_blocks = 3 does not divide "
                     r"train.batch_sets = 64.*--config.model.decoder_blocks"):
    config_checks.check(config)
  model = methods.make_method("vpl", default.get_config()).make_model(D, nnx.Rngs(0))
  batch = _batch()
  with pytest.raises(ValueError, match="must divide the 8 sets"):
    decoder_blocks.weighted_nll_sum(model, np.zeros((B, model.latent_dim), np.float32),
                                    batch["targets"], None, 3)
