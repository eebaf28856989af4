"""Bradley-Terry reward model: one reward for everyone (docs/methods.md, 'BTL')."""

from typing import Sequence

import jax
from flax import nnx

from vpl.models import condition_bias
from vpl.models.mlp import MLP


class BTLReward(nnx.Module):
  """r(s) = MLP(s): a single reward shared by every user (and, with `num_conditions`, the
  shared position-bias tower of vpl/models/condition_bias.py)."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], *, num_conditions: int = 0,
               activation: str = "gelu", rngs: nnx.Rngs):
    self.net = MLP(feature_dim, hidden, 1, activation=activation, rngs=rngs)
    self.condition_bias = condition_bias.make(num_conditions)

  def __call__(self, s_xD: jax.Array) -> jax.Array:
    """Rewards `[...]` of states `[..., D]`."""
    return self.net(s_xD)[..., 0]
