"""What every synthetic generator shares: the `Task` record, user groups, and pair labels.

A generator decides the items and each group's reward difference on every user's pairs;
`label_pairs` turns those differences into labels drawn from Bradley-Terry on the user's own
group, P(a > b) = sigma((r(a) - r(b)) / T) (T = 0 gives noiseless labels), and records what
the generator knows: each pair's probability under the user's group, under the pooled
population, under every group, and whether the groups disagree on it ("divergent").
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

from vpl.data.comparisons import UserComparisons

RewardFn = Callable[[np.ndarray, int], np.ndarray]  # (states [..., D], group) -> [...]


@dataclasses.dataclass(frozen=True)
class Task:
  """A generated data set and the generator's knowledge about it."""
  name: str
  data: UserComparisons
  true_reward: Optional[RewardFn]
  shares: tuple[float, ...]
  state_low: float = -1.0
  state_high: float = 1.0
  # What the generator removed and why (counts), e.g. pairs every user type agrees on.
  filter_report: dict = dataclasses.field(default_factory=dict)
  # `[U, K]` time order of each user's answers, when the generator has one (drift tasks).
  timestamp: Optional[np.ndarray] = None
  # What the generator knows about each user beyond their group (e.g. drift switch times).
  truth: dict = dataclasses.field(default_factory=dict)

  @property
  def num_groups(self) -> int:
    return len(self.shares)


def assign_groups(num_users: int, shares: Sequence[float], rng) -> np.ndarray:
  """`[U]` group of each user, as close to `shares` as whole users allow, in random order."""
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


def sigmoid(x):
  return 0.5 * (1 + np.tanh(0.5 * x))


def check_temperature(temperature: float) -> None:
  if temperature < 0:
    raise ValueError(f"temperature = {temperature}; use >= 0 (0 = noiseless labels).")


def label_pairs(a: np.ndarray, b: np.ndarray, diff_GxUxK: np.ndarray, group_U: np.ndarray,
                shares: Sequence[float], temperature: float, rng) -> UserComparisons:
  """Labels every user's pairs from their group's reward and records the generator's truth.

  Args:
    a, b: `[U, K, D]` the items of each user's pairs.
    diff_GxUxK: group g's reward difference r_g(a) - r_g(b) on user u's pair k.
    group_U: each user's group.
    shares: the population's share of each group (weights of the pooled preference).
    temperature: Bradley-Terry temperature (0 = noiseless).
    rng: numpy generator the labels are drawn with.
  """
  if temperature > 0:
    pref = sigmoid(diff_GxUxK / temperature)
  else:
    pref = (diff_GxUxK > 0).astype(np.float64) + 0.5 * (diff_GxUxK == 0)
  true_pref = np.take_along_axis(pref, group_U[None, :, None], axis=0)[0]
  pooled_pref = np.tensordot(np.asarray(shares), pref, axes=1)
  sign = np.sign(diff_GxUxK)
  divergent = (sign.max(axis=0) > 0) & (sign.min(axis=0) < 0)
  label = (rng.random(true_pref.shape) < true_pref).astype(np.float32)
  return UserComparisons(
      a=a, b=b, label=label, mask=np.ones(label.shape, bool),
      user_id=np.arange(len(group_U)), group=group_U,
      true_pref=true_pref.astype(np.float32), pooled_pref=pooled_pref.astype(np.float32),
      divergent=divergent, group_pref=np.moveaxis(pref, 0, -1).astype(np.float32))
