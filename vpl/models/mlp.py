"""A plain multilayer perceptron, the building block of every reward and encoder."""

from typing import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
  """Dense layers with GELU between them and a linear output layer."""

  def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, *,
               rngs: nnx.Rngs):
    sizes = [in_features, *hidden, out_features]
    self.layers = nnx.List(
        [nnx.Linear(i, o, rngs=rngs) for i, o in zip(sizes[:-1], sizes[1:])])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in self.layers[:-1]:
      x = nnx.gelu(layer(x))
    return self.layers[-1](x)
