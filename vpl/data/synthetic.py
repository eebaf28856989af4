"""Synthetic tasks whose generating rewards are known.

Each user belongs to a group; each group has its own reward over 2-D states in [-1, 1]^2.
Labels are drawn from Bradley-Terry on the group's reward: P(a > b) = sigma((r(a) - r(b)) / T)
(T = 0 gives noiseless labels). Because the generator knows every group's reward, it also
records what the oracle and the best single reward can reach (ALGORITHMS.md sections 1, 8).

- `didactic`: group k's reward is a Gaussian bump at its own mode (arXiv:2408.10075, App. A.1).
- `navigation`: K goals; a user's reward is minus the distance to their group's goal.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from vpl.data.comparisons import UserComparisons

RewardFn = Callable[[np.ndarray, int], np.ndarray]  # (states [..., 2], group) -> [...]


@dataclasses.dataclass(frozen=True)
class Task:
  """A generated data set and the generator's knowledge about it."""
  name: str
  data: UserComparisons
  true_reward: RewardFn
  shares: tuple[float, ...]
  state_low: float = -1.0
  state_high: float = 1.0
  # What the generator removed and why (counts), e.g. pairs every user type agrees on.
  filter_report: dict = dataclasses.field(default_factory=dict)

  @property
  def num_groups(self) -> int:
    return len(self.shares)


def _circle(num: int, radius: float, phase: float) -> np.ndarray:
  angle = phase + 2 * np.pi * np.arange(num) / num
  return radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _assign_groups(num_users: int, shares: Sequence[float], rng) -> np.ndarray:
  shares = np.asarray(shares, np.float64)
  if shares.ndim != 1 or (shares <= 0).any() or abs(shares.sum() - 1) > 1e-6:
    raise ValueError(f"shares = {tuple(shares.tolist())}: give one positive share per group, "
                     f"summing to 1 (e.g. (0.51, 0.49)).")
  counts = np.floor(shares * num_users).astype(int)
  counts[np.argsort(-(shares * num_users - counts))[:num_users - counts.sum()]] += 1
  if (counts == 0).any():
    raise ValueError(f"num_users = {num_users} leaves a group of shares {tuple(shares.tolist())} "
                     f"empty; raise num_users.")
  return rng.permutation(np.repeat(np.arange(len(shares)), counts)).astype(np.int32)


def _sigmoid(x):
  return 0.5 * (1 + np.tanh(0.5 * x))


def _generate(name: str, reward: RewardFn, shares, *, num_users: int, pairs_per_user: int,
              temperature: float, seed: int) -> Task:
  if temperature < 0:
    raise ValueError(f"temperature = {temperature}; use >= 0 (0 = noiseless labels).")
  rng = np.random.default_rng(seed)
  group = _assign_groups(num_users, shares, rng)
  shape = (num_users, pairs_per_user, 2)
  a = rng.uniform(-1, 1, shape).astype(np.float32)
  b = rng.uniform(-1, 1, shape).astype(np.float32)
  # diff[k, u, i]: group k's reward difference r_k(a) - r_k(b) on user u's pair i.
  diff = np.stack([reward(a, k) - reward(b, k) for k in range(len(shares))])
  if temperature > 0:
    pref = _sigmoid(diff / temperature)
  else:
    pref = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
  true_pref = np.take_along_axis(pref, group[None, :, None], axis=0)[0]
  pooled_pref = np.tensordot(np.asarray(shares), pref, axes=1)
  sign = np.sign(diff)
  divergent = (sign.max(axis=0) > 0) & (sign.min(axis=0) < 0)
  label = (rng.random(true_pref.shape) < true_pref).astype(np.float32)
  data = UserComparisons(
      a=a, b=b, label=label, mask=np.ones(label.shape, bool),
      user_id=np.arange(num_users), group=group,
      true_pref=true_pref.astype(np.float32), pooled_pref=pooled_pref.astype(np.float32),
      divergent=divergent, group_pref=np.moveaxis(pref, 0, -1).astype(np.float32))
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


def _all_tasks() -> dict[str, Callable[..., Task]]:
  # Imported here: the embedding tasks build on this module's Task and helpers.
  from vpl.data import embedding_tasks
  return {"didactic": didactic, "navigation": navigation, "pets": embedding_tasks.pets,
          "ufp": embedding_tasks.ufp, "unimodal": embedding_tasks.unimodal}


def make_task(name: str, **kwargs) -> Task:
  """Builds the task called `name` with the generator's keyword arguments."""
  tasks = _all_tasks()
  if name not in tasks:
    raise ValueError(f"data.task = {name!r} is not a known task; choose one of "
                     f"{sorted(tasks)}.")
  return tasks[name](**kwargs)
