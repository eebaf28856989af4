"""The walled multi-goal maze as a pure-JAX environment: jittable, vmap-able reset and step.

Layout and dynamics are `vpl.data.maze`'s (one implementation, run here with `jax.numpy`):
a point in [-1, 1]^2 moved by at most `STEP_SIZE` per coordinate, a step into a wall
refused. The user's group picks the goal; the reward is minus the distance to it, and an
episode succeeds when the agent comes within `success_radius` of its own goal before the
horizon. Shape suffixes: N trajectories or users, T steps, W walls, K goals, C condition.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vpl.data import maze


@dataclasses.dataclass(frozen=True)
class MazeSpec:
  """A maze: walls `[W, 4]`, goals `[K, 2]`, the horizon, where episodes start, success."""
  walls: np.ndarray
  goals: np.ndarray
  horizon: int = 50
  start_half_width: float = 0.15  # evaluation episodes start uniformly in this centre square
  success_radius: float = 0.1

  @classmethod
  def make(cls, num_goals: int, **kwargs) -> "MazeSpec":
    return cls(maze.walls(num_goals), maze.goals(num_goals), **kwargs)

  def __post_init__(self):
    for name, shape in (("walls", 4), ("goals", 2)):
      x = np.asarray(getattr(self, name))
      if x.ndim != 2 or x.shape[1] != shape:
        raise ValueError(f"MazeSpec.{name} has shape {x.shape}; expected [n, {shape}].")
    if self.horizon < 1 or self.success_radius <= 0:
      raise ValueError(f"MazeSpec horizon = {self.horizon}, success_radius = "
                       f"{self.success_radius}; both must be positive.")


class State(NamedTuple):
  pos: jax.Array  # [2]
  t: jax.Array  # [] steps taken


def reset(key: jax.Array, spec: MazeSpec) -> State:
  """A fresh episode: the agent uniformly in the start square."""
  w = spec.start_half_width
  return State(jax.random.uniform(key, (2,), minval=-w, maxval=w), jnp.zeros((), jnp.int32))


def step(state: State, action_2: jax.Array, spec: MazeSpec) -> State:
  """One move; a move that would cross a wall leaves the agent where it was."""
  pos = maze.move(state.pos, action_2, jnp.asarray(spec.walls), xp=jnp)
  return State(pos, state.t + 1)


def reward(pos_x2: jax.Array, goal_2: jax.Array) -> jax.Array:
  """Minus the distance to the user's goal."""
  return -jnp.sqrt(((pos_x2 - goal_2) ** 2).sum(-1))


def success(pos_Tx2: jax.Array, goal_2: jax.Array, radius: float) -> jax.Array:
  """Whether any visited position of a trajectory lies within `radius` of the goal."""
  return (-reward(pos_Tx2, goal_2) < radius).any(-1)


def explore(key: jax.Array, spec: MazeSpec, num_trajectories: int, horizon: int) -> dict:
  """Transitions of the noisy exploratory policy, on device.

  Starts are uniform over the box; actions follow a_t = clip(m a_{t-1} + noise eps) (a
  momentum random walk, so trajectories travel instead of jittering in place).

  Returns:
    `states`, `actions`, `next_states` `[N, T, 2]`.
  """
  k_start, k_noise = jax.random.split(key)
  start_Nx2 = jax.random.uniform(k_start, (num_trajectories, 2), minval=-1.0, maxval=1.0)
  eps_TxNx2 = jax.random.normal(k_noise, (horizon, num_trajectories, 2))
  walls = jnp.asarray(spec.walls)

  def one(carry, eps_Nx2):
    s, a = carry
    a = jnp.clip(maze.MOMENTUM * a + maze.NOISE * eps_Nx2, -1.0, 1.0)
    s_next = maze.move(s, a, walls, xp=jnp)
    return (s_next, a), (s, a, s_next)

  _, (s, a, s_next) = jax.lax.scan(one, (start_Nx2, jnp.zeros_like(start_Nx2)), eps_TxNx2)
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return dict(states=swap(s), actions=swap(a), next_states=swap(s_next))


def rollout(policy: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
            cond_NxC: jax.Array, spec: MazeSpec) -> jax.Array:
  """`[N, T + 1, 2]` positions of one episode per condition row, under `policy(s, c) -> a`."""
  start = jax.vmap(lambda k: reset(k, spec))(jax.random.split(key, cond_NxC.shape[0]))

  def one(state, _):
    nxt = jax.vmap(lambda st, c: step(st, policy(st.pos, c), spec))(state, cond_NxC)
    return nxt, nxt.pos

  _, pos_TxNx2 = jax.lax.scan(one, start, None, length=spec.horizon)
  return jnp.concatenate([start.pos[:, None], jnp.swapaxes(pos_TxNx2, 0, 1)], 1)
