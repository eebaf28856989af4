"""VPL's training likelihood with the decoder run in blocks, each block's backward pass at once.

With `model.decoder_blocks = K > 1`, the sets of a training batch go through the decoder in
K blocks inside one `lax.scan`, and each block's gradient is taken right after its forward
pass (`jax.value_and_grad` in the scan's body): the gradient of a sum is the sum of the
blocks' gradients, so the function and its gradient are the same (to float rounding) as
the whole batch in one piece. The point is where the numbers live: a block's activations
(B / K sets x T targets x width floats) are still in the CPU's cache when its backward pass
reads them, whereas reverse-mode differentiation of the whole batch runs every forward
layer first and reads the activations back from memory afterwards. At the control size
(docs/results.md, "Training throughput") the decoder's forward and backward pass went from
55 ms to 38-39 ms (from 62% to 88% of the machine's sgemm).

The function is wrapped in `jax.custom_vjp`: its forward pass computes the value and the
gradients together and keeps the gradients; the backward pass only scales them. Block j
holds the sets j, j + K, j + 2K, ... (a strided split): when the batch is sharded over
devices, every block has rows on every device and the scan runs over an axis that is not
sharded. Shape suffixes: B sets, T targets, D features, L latent, K blocks.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

from vpl.losses import bt_log_likelihood


def _split(x: jax.Array, blocks: int) -> jax.Array:
  """`[B, ...]` -> `[K, B / K, ...]`, block j the rows j, j + K, ...."""
  return jnp.swapaxes(x.reshape((x.shape[0] // blocks, blocks) + x.shape[1:]), 0, 1)


def _merge(x: jax.Array) -> jax.Array:
  """The inverse of `_split`."""
  x = jnp.swapaxes(x, 0, 1)
  return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def weighted_nll_sum(model: nnx.Module, z_BxL: jax.Array, targets: dict,
                     weight_BxT: Optional[jax.Array], blocks: int) -> jax.Array:
  """sum over sets and targets of weight x -log p(label | a, b, z), the logit r(a, z) -
  r(b, z) through the model's position-bias tower when it has one and the targets carry a
  `condition`. `blocks` must divide B. Differentiable in the decoder's and the tower's
  parameters and in z (not in the targets or weights)."""
  num_sets = z_BxL.shape[0]
  if num_sets % blocks:
    raise ValueError(f"model.decoder_blocks = {blocks} must divide the {num_sets} sets of a "
                     "training batch (train.batch_sets); choose a divisor of it.")
  tower = getattr(model, "condition_bias", None)
  framed = tower is not None and "condition" in targets
  modules = (model.decoder, tower) if framed else (model.decoder,)
  graphdef, params = nnx.split(modules)
  data = dict(a=targets["a"], b=targets["b"], label=targets["label"])
  data["weight"] = (jnp.ones(targets["label"].shape, z_BxL.dtype) if weight_BxT is None
                    else weight_BxT.astype(z_BxL.dtype))
  if framed:
    data["condition"] = targets["condition"]

  def block_nll(params, z_bxL, d):
    decoder, *rest = nnx.merge(graphdef, params)
    logit, _, _ = decoder.pair(d["a"], d["b"], z_bxL[:, None, :])
    if rest:
      logit = rest[0](logit, d["condition"])
    return -(d["weight"] * bt_log_likelihood(logit, d["label"])).sum()

  def forward(params, z_BxL, data):
    zeros = jax.tree.map(jnp.zeros_like, params)

    def body(carry, block):
      total, grads = carry
      value, (g_params, g_z) = jax.value_and_grad(block_nll, argnums=(0, 1))(params, *block)
      return (total + value, jax.tree.map(jnp.add, grads, g_params)), g_z

    (total, g_params), g_z = jax.lax.scan(
        body, (jnp.zeros((), z_BxL.dtype), zeros),
        (_split(z_BxL, blocks), jax.tree.map(lambda x: _split(x, blocks), data)))
    return total, (g_params, _merge(g_z))

  @jax.custom_vjp
  def nll_sum(params, z_BxL, data):
    return forward(params, z_BxL, data)[0]

  def backward(saved, g):
    g_params, g_z = saved
    return jax.tree.map(lambda x: g * x, g_params), g * g_z, None

  nll_sum.defvjp(forward, backward)
  return nll_sum(params, z_BxL, data)
