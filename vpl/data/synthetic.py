"""Synthetic tasks over 2-D states whose generating rewards are known.

Each user belongs to a group; each group has its own reward over states in [-1, 1]^2, and
every user labels their own random pairs (`vpl.data.labelling.label_pairs`). Because the
generator knows every group's reward, it also records what the oracle and the best single
reward can reach (docs/methods.md, 'BTL' and 'Evaluation').

- `didactic`: group k's reward is a Gaussian bump at its own mode (arXiv:2408.10075, App. A.1).
- `navigation`: K goals; a user's reward is minus the distance to their group's goal.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vpl.data.labelling import RewardFn, Task, assign_groups, check_temperature, label_pairs


def _circle(num: int, radius: float, phase: float) -> np.ndarray:
  angle = phase + 2 * np.pi * np.arange(num) / num
  return radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _generate(name: str, reward: RewardFn, shares, *, num_users: int, pairs_per_user: int,
              temperature: float, seed: int) -> Task:
  check_temperature(temperature)
  rng = np.random.default_rng(seed)
  group = assign_groups(num_users, shares, rng)
  shape = (num_users, pairs_per_user, 2)
  a = rng.uniform(-1, 1, shape).astype(np.float32)
  b = rng.uniform(-1, 1, shape).astype(np.float32)
  diff = np.stack([reward(a, k) - reward(b, k) for k in range(len(shares))])
  data = label_pairs(a, b, diff, group, shares, temperature, rng)
  return Task(name, data, reward, tuple(float(s) for s in shares))


def didactic(*, shares: Sequence[float] = (0.51, 0.49), num_users: int = 400,
             pairs_per_user: int = 64, width: float = 0.4, radius: float = 0.6,
             temperature: float = 0.05, seed: int = 0) -> Task:
  """One Gaussian bump of reward per group, modes evenly spaced on a circle.

  Args:
    shares: fraction of users in each group; the number of groups is len(shares).
    num_users, pairs_per_user: size of the data set.
    width: standard deviation of each bump.
    radius: distance of the modes from the origin.
    temperature: Bradley-Terry temperature of the labels (0 = noiseless).
    seed: generator seed.
  """
  modes = _circle(len(shares), radius, np.pi / 4)

  def reward(s, k):
    return np.exp(-((s - modes[k]) ** 2).sum(-1) / (2 * width**2))

  return _generate("didactic", reward, shares, num_users=num_users,
                   pairs_per_user=pairs_per_user, temperature=temperature, seed=seed)


def navigation(*, num_goals: int = 2, shares: Sequence[float] | None = None,
               num_users: int = 400, pairs_per_user: int = 64, radius: float = 0.7,
               temperature: float = 0.05, seed: int = 0) -> Task:
  """Each group walks to its own goal; reward = minus the distance to it.

  Args:
    num_goals: number of goals (= groups), evenly spaced on a circle.
    shares: fraction of users per goal; equal shares when None.
    num_users, pairs_per_user, temperature, seed: as in `didactic`.
    radius: distance of the goals from the origin.
  """
  shares = tuple(shares) if shares is not None else (1.0 / num_goals,) * num_goals
  if len(shares) != num_goals:
    raise ValueError(f"shares has {len(shares)} entries but num_goals = {num_goals}; "
                     f"give one share per goal.")
  goals = _circle(num_goals, radius, 0.0)

  def reward(s, k):
    return -np.sqrt(((s - goals[k]) ** 2).sum(-1))

  return _generate("navigation", reward, shares, num_users=num_users,
                   pairs_per_user=pairs_per_user, temperature=temperature, seed=seed)
