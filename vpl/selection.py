"""Choosing one candidate per prompt from several groups' rewards (docs/methods.md, 'MaxMin-RLHF').

MaxMin-RLHF's egalitarian rule without RL: among a prompt's C candidates, pick the one whose
worst-served group is best off, argmax_c min_k r~_k(c), where r~_k are the groups' rewards on
one scale (`vpl.scaling`). The soft-min -tau log mean_k exp(-r~_k / tau) interpolates between
the max-min rule (tau -> 0) and the utilitarian mean (tau -> inf). (It is the docs/methods.md
soft-min -tau log sum_k exp(-r~_k / tau) plus the constant tau log K, which changes no choice
but makes the value itself tend to the mean.)

`selection_report` measures what each rule delivers to every group under the task's TRUE
rewards.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from vpl import scaling
from vpl.data.synthetic import Task

RULES = ("maxmin", "softmin", "mean")


def soft_min(r_xKxC: np.ndarray, tau: float) -> np.ndarray:
  """-tau log mean_k exp(-r_k / tau) over the group axis (-2): `[..., C]`, computed stably."""
  if tau <= 0:
    raise ValueError(f"selection tau = {tau}; the soft-min needs tau > 0 (use the 'maxmin' "
                     f"rule for tau -> 0).")
  x = -np.asarray(r_xKxC, np.float64) / tau
  top = x.max(-2, keepdims=True)
  return -tau * (top[..., 0, :] + np.log(np.exp(x - top).mean(-2)))


def score(r_xKxC: np.ndarray, rule: str, tau: float = 0.1) -> np.ndarray:
  """Each candidate's value `[..., C]` under `rule` ('maxmin', 'softmin' or 'mean')."""
  r = np.asarray(r_xKxC, np.float64)
  if rule == "maxmin":
    return r.min(-2)
  if rule == "softmin":
    return soft_min(r, tau)
  if rule == "mean":
    return r.mean(-2)
  raise ValueError(f"selection rule = {rule!r}; choose one of {RULES}.")


def select(r_xKxC: np.ndarray, rule: str, tau: float = 0.1) -> np.ndarray:
  """Index `[...]` of the chosen candidate: argmax_c of `score` (first one on ties)."""
  return score(r_xKxC, rule, tau).argmax(-1)


def _group_summary(true_NxGxC: np.ndarray, raw_NxGxC: np.ndarray,
                   chosen_N: np.ndarray) -> dict:
  pick = lambda r: np.take_along_axis(r, chosen_N[:, None, None], -1)[..., 0]
  chosen_NxG = pick(true_NxGxC)
  per_group, raw = chosen_NxG.mean(0), pick(raw_NxGxC).mean(0)
  return dict(group_reward={str(g): float(v) for g, v in enumerate(per_group)},
              worst_group_reward=float(per_group.min()),
              mean_reward=float(per_group.mean()),
              mean_worst_reward=float(chosen_NxG.min(1).mean()),
              group_raw_reward={str(g): float(v) for g, v in enumerate(raw)})


def selection_report(task: Task, btl_reward: Callable[[jax.Array], jax.Array],
                     cluster_rewards: Callable[[jax.Array], jax.Array],
                     rng: np.random.Generator, *, num_prompts: int = 500,
                     num_candidates: int = 16, num_reference: int = 1000,
                     scaling_kind: str = "spo", tau: float = 0.1) -> dict:
  """Per-group TRUE reward of the candidates chosen by each selection rule.

  Each prompt is a set of `num_candidates` states drawn uniformly from the task's state box.
  One candidate per prompt is chosen by: 'btl' (argmax of the single reward), 'maxmin',
  'softmin' and 'mean' over the learned cluster rewards (scaled with `scaling_kind` against
  `num_reference` uniform states, so clusters are comparable), 'random', and
  'oracle_maxmin' (max-min over the true group rewards: the best worst group possible).
  Every group's true reward is scaled the same way against the same reference states, so
  groups are compared on one scale; `group_raw_reward` gives the unscaled means too.

  Args:
    task: a task with `true_reward(states, group)`.
    btl_reward: states `[N, D]` -> `[N]`.
    cluster_rewards: states `[N, D]` -> `[N, K]`.
    rng: draws the prompts and reference states (and the random rule's choices).

  Returns:
    A JSON-ready dict: the settings and, per rule, `group_reward` (mean scaled true reward of
    the chosen candidates, per group), `worst_group_reward` (its minimum over groups),
    `mean_reward` (its mean), `mean_worst_reward` (mean over prompts of the worst group's
    scaled true reward of that prompt's choice) and `group_raw_reward` (unscaled means).
  """
  if num_prompts < 1 or num_candidates < 1 or num_reference < 2:
    raise ValueError(f"eval.selection: num_prompts = {num_prompts}, num_candidates = "
                     f"{num_candidates}, num_reference = {num_reference}; use at least 1, 1 "
                     f"and 2.")
  dim = task.data.feature_dim
  box = lambda *shape: rng.uniform(task.state_low, task.state_high,
                                   shape + (dim,)).astype(np.float32)
  candidates_NxCxD, reference_MxD = box(num_prompts, num_candidates), box(num_reference)
  flat = candidates_NxCxD.reshape(-1, dim)
  to_NxExC = lambda r: np.moveaxis(np.asarray(r).reshape(num_prompts, num_candidates, -1), 1, 2)

  true = lambda s: np.stack([task.true_reward(s, g) for g in range(task.num_groups)], -1)
  true_raw = to_NxExC(true(flat))
  true_scaled = to_NxExC(scaling.scale(scaling_kind, true, flat, reference_MxD))
  clusters = to_NxExC(scaling.scale(scaling_kind, cluster_rewards, flat, reference_MxD))
  btl = to_NxExC(btl_reward(flat))[:, 0]

  chosen = dict(btl=btl.argmax(-1))
  for rule in RULES:
    chosen[rule] = select(clusters, rule, tau)
  chosen["random"] = rng.integers(num_candidates, size=num_prompts)
  chosen["oracle_maxmin"] = select(true_scaled, "maxmin")
  return dict(scaling=scaling_kind, tau=tau, num_prompts=num_prompts,
              num_candidates=num_candidates, num_reference=num_reference,
              num_clusters=int(clusters.shape[1]),
              rules={name: _group_summary(true_scaled, true_raw, c)
                     for name, c in chosen.items()})


def selection_table(runs: list[dict]) -> str:
  """Mean ± std over runs (seeds) of each rule's `results['selection']` figures, markdown."""
  rules = runs[0]["selection"]["rules"]
  groups = sorted(rules["btl"]["group_reward"], key=int)
  stat = lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}"
  head = (["rule", "worst group", "mean over prompts of the worst group"]
          + [f"group {g} (unscaled)" for g in groups])
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for rule in rules:
    cell = lambda key: stat([r["selection"]["rules"][rule][key] for r in runs])
    raw = lambda g: stat([r["selection"]["rules"][rule]["group_raw_reward"][g] for r in runs])
    lines.append("| " + " | ".join([rule, cell("worst_group_reward"),
                                    cell("mean_worst_reward")] + [raw(g) for g in groups])
                 + " |")
  sel = runs[0]["selection"]
  lines.append(f"\nTrue rewards {sel['scaling']}-scaled per group on {sel['num_reference']} "
               f"uniform states; {sel['num_prompts']} prompts of {sel['num_candidates']} "
               f"candidates; seeds {[r['seed'] for r in runs]}.")
  return "\n".join(lines)
