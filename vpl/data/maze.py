"""Goal navigation in a walled 2-D maze: its layout, its dynamics, and its preference task.

A point agent lives in the box [-1, 1]^2 and moves by at most `STEP_SIZE` per step in each
coordinate. The K goals are the `navigation` task's (evenly spaced on a circle of radius
0.7); radial walls between neighbouring goals split the box into K rooms, one goal in each,
joined by an open centre where episodes start: an agent that heads for the wrong room stays
there, and one that runs into a wall stops.
A step whose straight path would cross a wall is refused: the agent stays where it was.

The dynamics are written once, for any array module with numpy's API (`xp`): numpy here, for
the preference generator, and `jax.numpy` in the jittable environment (`vpl.envs.maze`), so
the two can never disagree. This module imports no JAX (configs import the data layer).

`maze` is the task registry's generator: each group's reward is minus the distance to its own
goal (as in `navigation`), and the pairs users label are states visited by the noisy
exploratory policy whose trajectories also train the policy (`vpl.envs.maze.explore`), so the
reward models learn on the states the policy's data holds. A compared "segment" is one
visited state; its true return is the group's reward of that state.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vpl.data.labelling import Task, assign_groups, check_temperature, label_pairs

STEP_SIZE = 0.1  # the most an action moves the agent per coordinate
GOAL_RADIUS = 0.7  # distance of the goals from the centre (as in the navigation task)
WALL_INNER, WALL_OUTER = 0.3, 1.5  # radial extent of the walls between rooms
MOMENTUM, NOISE = 0.8, 0.6  # the exploratory policy: a_t = clip(m a_{t-1} + noise eps)


def goals(num_goals: int) -> np.ndarray:
  """`[K, 2]` goal positions, evenly spaced on a circle (the first at angle 0)."""
  if num_goals < 1:
    raise ValueError(f"num_goals = {num_goals}; a maze needs at least one goal.")
  angle = 2 * np.pi * np.arange(num_goals) / num_goals
  return (GOAL_RADIUS * np.stack([np.cos(angle), np.sin(angle)], -1)).astype(np.float32)


def walls(num_goals: int) -> np.ndarray:
  """`[K, 4]` wall segments (x1, y1, x2, y2): K rooms, one goal each, joined at the centre.

  Wall k runs radially, halfway between goals k and k + 1, from `WALL_INNER` out past the
  box's edge; the open centre is where episodes start, and the agent picks a room.
  """
  angle = 2 * np.pi * (np.arange(num_goals) + 0.5) / num_goals
  direction = np.stack([np.cos(angle), np.sin(angle)], -1)
  return np.concatenate([WALL_INNER * direction, WALL_OUTER * direction], -1).astype(
      np.float32)


def _cross(ox, oy, ax, ay, bx, by):
  """z-component of (a - o) x (b - o)."""
  return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def crosses_wall(p_x2, q_x2, walls_Wx4, xp=np):
  """`[...]` bool: whether the segment p -> q touches any wall (endpoints included)."""
  px, py = p_x2[..., None, 0], p_x2[..., None, 1]
  qx, qy = q_x2[..., None, 0], q_x2[..., None, 1]
  ax, ay, bx, by = (walls_Wx4[:, i] for i in range(4))
  d1, d2 = _cross(ax, ay, bx, by, px, py), _cross(ax, ay, bx, by, qx, qy)
  d3, d4 = _cross(px, py, qx, qy, ax, ay), _cross(px, py, qx, qy, bx, by)
  # Proper or touching intersection; collinear overlaps count as touching when the boxes meet.
  straddle = (d1 * d2 <= 0) & (d3 * d4 <= 0)
  boxes = ((xp.minimum(px, qx) <= xp.maximum(ax, bx)) & (xp.minimum(ax, bx) <= xp.maximum(px, qx))
           & (xp.minimum(py, qy) <= xp.maximum(ay, by))
           & (xp.minimum(ay, by) <= xp.maximum(py, qy)))
  return (straddle & boxes).any(-1)


def move(s_x2, a_x2, walls_Wx4, xp=np):
  """The next state: s + STEP_SIZE * clip(a), kept in the box; unchanged if it hits a wall."""
  proposed = xp.clip(s_x2 + STEP_SIZE * xp.clip(a_x2, -1.0, 1.0), -1.0, 1.0)
  return xp.where(crosses_wall(s_x2, proposed, walls_Wx4, xp)[..., None], s_x2, proposed)


def explore_numpy(num_trajectories: int, horizon: int, walls_Wx4: np.ndarray,
                  rng) -> np.ndarray:
  """`[N, horizon + 1, 2]` states of the exploratory policy, from uniform starts (numpy)."""
  s = rng.uniform(-1, 1, (num_trajectories, 2)).astype(np.float32)
  a = np.zeros_like(s)
  out = [s]
  for _ in range(horizon):
    a = np.clip(MOMENTUM * a + NOISE * rng.standard_normal(s.shape), -1, 1).astype(np.float32)
    s = move(s, a, walls_Wx4)
    out.append(s)
  return np.stack(out, 1)


def maze(*, num_goals: int = 2, shares: Sequence[float] | None = None, num_users: int = 1000,
         pairs_per_user: int = 64, num_trajectories: int = 500, horizon: int = 50,
         temperature: float = 0.0, seed: int = 0) -> Task:
  """Users compare states visited by the exploratory policy; reward = -distance to the goal.

  Args:
    num_goals: number of goals (= groups).
    shares: fraction of users per goal; equal shares when None.
    num_users, pairs_per_user: size of the data set.
    num_trajectories, horizon: the exploratory rollouts whose states are compared.
    temperature: Bradley-Terry temperature of the labels (0 = noiseless).
    seed: generator seed.
  """
  check_temperature(temperature)
  shares = tuple(shares) if shares is not None else (1.0 / num_goals,) * num_goals
  if len(shares) != num_goals:
    raise ValueError(f"shares has {len(shares)} entries but num_goals = {num_goals}; "
                     f"give one share per goal.")
  rng = np.random.default_rng(seed)
  goal_Kx2 = goals(num_goals)
  states = explore_numpy(num_trajectories, horizon, walls(num_goals), rng).reshape(-1, 2)
  group = assign_groups(num_users, shares, rng)
  pick = lambda: states[rng.integers(0, len(states), (num_users, pairs_per_user))]
  a, b = pick(), pick()

  def reward(s, k):
    return -np.sqrt(((np.asarray(s) - goal_Kx2[k]) ** 2).sum(-1))

  diff = np.stack([reward(a, k) - reward(b, k) for k in range(num_goals)])
  data = label_pairs(a, b, diff, group, shares, temperature, rng)
  return Task("maze", data, reward, tuple(float(s) for s in shares))
