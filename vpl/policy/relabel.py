"""Each method's user representation and its reward of the offline transitions.

A method's personal reward of a user is a function r(s, c) of a state and the user's
representation c (docs/policy.md):
- `vpl`: c = the posterior mean of z from the user's context pairs, r(s, c) = r(s, z); with
  the trained users' latents as the prior (`model.atom_prior`), c = the posterior-mean user
  vector sum_m w_m psi(z_m) and r(s, c) = <phi(s), c>, the posterior-mean reward that
  prediction and best-of-N use;
- `maxmin`: c = one-hot of the user's cluster (the E-step on their context), r = r_k(s);
- `btl`: c = a constant, r = the single reward (everyone gets the same policy);
- `oracle`: c = one-hot of the user's true group, r = minus the distance to its goal.
The policy is conditioned on the same c it was rewarded with. Rewards are z-scored per user
against reference states (`vpl.scaling`): a Bradley-Terry reward's offset and scale are
arbitrary and differ between users, and the policy's value scale should not.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vpl import evaluate, scaling
from vpl.data.comparisons import UserComparisons
from vpl.envs import maze as maze_env
from vpl.method import Method

RewardFn = Callable[[jax.Array, jax.Array], jax.Array]  # (states [M, D], c [C]) -> [M]
METHODS = ("oracle", "vpl", "maxmin", "btl")


def relabel(reward_fn: RewardFn, cond_UxC: jax.Array, states_MxD: jax.Array,
            reference_RxD: jax.Array) -> jax.Array:
  """`[U, M]` z-scored rewards of every state for every user's representation c_u.

  Each user's rewards are z-scored with the mean and std of their own rewards on the
  reference states. Users are mapped one at a time (memory: one user's M rewards).
  """
  # States enter as arguments, not closed-over constants XLA would try to fold.
  @jax.jit
  def run(cond_UxC, states_MxD, reference_RxD):
    def one(c_C):
      return scaling.zscore(reward_fn(states_MxD, c_C), reward_fn(reference_RxD, c_C))
    return jax.lax.map(one, cond_UxC)

  return run(jnp.asarray(cond_UxC), jnp.asarray(states_MxD), jnp.asarray(reference_RxD))


def reward_fn(name: str, model: nnx.Module | None, spec: maze_env.MazeSpec) -> RewardFn:
  """r(s, c) of method `name` (model: the trained reward model; None for the oracle)."""
  if name == "oracle":
    goals = jnp.asarray(spec.goals)
    return lambda s, c: maze_env.reward(s[:, None, :], goals[None]) @ c
  if name == "vpl" and getattr(model, "atoms", None) is not None:
    return lambda s, c: model.decoder.embed(s) @ c
  if name == "vpl":
    return lambda s, z: model.reward(s, z[None])
  if name == "maxmin":
    return lambda s, c: model.rewards(s) @ c
  if name == "btl":
    return lambda s, c: model(s) + 0.0 * c.sum()
  raise ValueError(f"policy method {name!r} has no relabelling; choose one of {METHODS}.")


def representations(name: str, method: Method | None, model: nnx.Module | None,
                    data: UserComparisons, context_idx: np.ndarray,
                    num_groups: int) -> np.ndarray:
  """`[U, C]` each user's representation, from their context pairs (true group: oracle)."""
  if name == "oracle":
    return np.eye(num_groups, dtype=np.float32)[data.group]
  if name == "btl":
    return np.zeros((data.num_users, 1), np.float32)
  _, aux = evaluate.predict_users(method, model, data, context_idx)
  if name == "vpl":  # the atoms' posterior-mean user vector, else the encoder's mean
    return np.asarray(aux["user"] if "user" in aux else aux["mu"], np.float32)
  if name == "maxmin":
    return np.eye(model.num_clusters, dtype=np.float32)[aux["cluster"]]
  raise ValueError(f"policy method {name!r} has no user representation; choose one of "
                   f"{METHODS}.")
