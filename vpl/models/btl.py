"""Bradley-Terry reward model: one reward for everyone (docs/methods.md, 'BTL')."""

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vpl.models.mlp import MLP


class BTLReward(nnx.Module):
  """r(s) = MLP(s): a single reward shared by every user."""

  def __init__(self, feature_dim: int, hidden: Sequence[int], *, rngs: nnx.Rngs):
    self.net = MLP(feature_dim, hidden, 1, rngs=rngs)

  def __call__(self, s_xD: jax.Array) -> jax.Array:
    """Rewards `[...]` of states `[..., D]`."""
    return self.net(s_xD)[..., 0]

  def pair(self, a_xD: jax.Array, b_xD: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rewards of a and b `[...]`, through the network as one batch (one matmul per layer)."""
    reward_ab = self(jnp.concatenate([a_xD, b_xD], 0))
    return reward_ab[:a_xD.shape[0]], reward_ab[a_xD.shape[0]:]
