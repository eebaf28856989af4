"""A plain multilayer perceptron, the building block of every reward and encoder."""

from typing import Sequence

import jax
from flax import nnx


# The nonlinearity between layers (`model.activation`): GELU (tanh form) is this project's;
# LeakyReLU with slope 0.2 is the official VPL code's.
ACTIVATIONS = {"gelu": nnx.gelu, "leaky_relu": lambda x: nnx.leaky_relu(x, 0.2)}


def activation_fn(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"model.activation = {name!r}; choose one of {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


class MLP(nnx.Module):
  """Dense layers with a nonlinearity (GELU by default) between them, a linear output layer."""

  def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, *,
               activation: str = "gelu", rngs: nnx.Rngs):
    sizes = [in_features, *hidden, out_features]
    self.activation = activation_fn(activation)
    self.layers = nnx.List(
        [nnx.Linear(i, o, rngs=rngs) for i, o in zip(sizes[:-1], sizes[1:])])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in self.layers[:-1]:
      x = self.activation(layer(x))
    return self.layers[-1](x)


def with_linear(mlp: MLP, linear, x: jax.Array) -> jax.Array:
  """`mlp(x)`, plus `linear(x)` when a linear path is given (None: the MLP alone)."""
  out = mlp(x)
  return out if linear is None else out + linear(x)


def output_l2(mlp: MLP) -> jax.Array:
  """Squared norm of the MLP's output kernel: the size of what its non-linear part adds."""
  kernel = mlp.layers[-1].kernel[...]
  return (kernel * kernel).sum()
