"""A synthetic task's users re-asked (vpl/data/reasking.py), grouped for training and scoring.

`build(task, reask, rng)` runs the simulator on the task and groups its rows by user: the
comparisons carry `condition` and `pair_id` `[U, K]`, and the generator's facts of each
original pair (`true_pref`, `pooled_pref`, `divergent`, `group_pref`) follow every asking of
it, so the oracle and the accuracy against each user's genuine preference still exist. The
truth (which users and answers are genuine, non-attitude or constructed) comes back beside
it, by user id, for `vpl.stability_report`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vpl.data import reasking
from vpl.data.comparisons import UserComparisons
from vpl.data.labelling import Task
from vpl.data.rows import place, to_comparisons

# The simulator's settings a config's `data.reask` group may set (besides `enabled`).
FIELDS = ("non_attitude_users", "constructed_users", "non_attitude_questions",
          "constructed_questions", "first_bias", "reask_share", "asks")


def build(task: Task, reask: dict, rng: np.random.Generator, *, clean: bool = False
          ) -> tuple[UserComparisons, dict]:
  """`(data, truth)`: the re-asked users, and the truth.

  Args:
    task: a synthetic task (its generator's facts are carried over to each asking).
    reask: keyword arguments of `reasking.reask` (FIELDS); others are refused.
    rng: the simulator's stream.
    clean: the clean twin: the same draw of who is which kind, but the task's own data
      (each question asked once, every answer genuine), so a method's accuracy on the
      genuine users can be compared with and without the noise.
  Returns:
    truth: `user_id [U]` and `user_kind [U]` (in `data`'s user order), `answer_kind [U, K]`
    (-1 on padding), `rows` (the flat re-asked rows, for the stability analysis) and the
    settings.
  """
  unknown = sorted(set(reask) - set(FIELDS))
  if unknown:
    raise ValueError(f"data.reask has {unknown}, which the simulator does not take; it takes "
                     f"enabled and {list(FIELDS)}.")
  rows, sim = reasking.reask(task, rng, **reask)
  if clean:
    data = task.data.select_users(np.argsort(task.data.user_id))
    kind_of = dict(zip(sim["user_id"].tolist(), sim["user_kind"].tolist()))
    return data, dict(user_id=data.user_id.copy(),
                      user_kind=np.array([kind_of[int(u)] for u in data.user_id]),
                      answer_kind=np.where(data.mask, 0, -1), rows=None, question_kind={},
                      settings=dict(reask), clean=True)
  data, _ = to_comparisons(rows)
  x = rows.arrays
  source = task.data
  # Each row's original slot: a user's questions got consecutive pair ids, slot by slot.
  user_of = {int(u): i for i, u in enumerate(source.user_id)}
  u_row = np.array([user_of[int(u)] for u in x["user_id"]])
  first_id = np.full(source.num_users, np.iinfo(np.int64).max)
  np.minimum.at(first_id, u_row, x["pair_id"])
  rank = x["pair_id"] - first_id[u_row]
  slots = [np.flatnonzero(m) for m in source.mask]
  slot = np.array([slots[u][j] for u, j in zip(u_row, rank)])
  facts = {}
  for name in ("true_pref", "pooled_pref", "divergent", "group_pref"):
    value = getattr(source, name)
    if value is not None:
      per_row = value[u_row, slot]
      pad = False if value.dtype == bool else 0.5
      facts[name] = (np.stack([place(data, x["user_id"], per_row[:, g], pad)
                               for g in range(per_row.shape[1])], -1)
                     if per_row.ndim == 2 else place(data, x["user_id"], per_row, pad))
  data = dataclasses.replace(data, **facts)
  kind_of = dict(zip(sim["user_id"].tolist(), sim["user_kind"].tolist()))
  truth = dict(user_id=data.user_id.copy(),
               user_kind=np.array([kind_of[int(u)] for u in data.user_id]),
               answer_kind=place(data, x["user_id"], sim["answer_kind"].astype(np.int64), -1),
               rows=rows, question_kind=sim["question_kind"], settings=dict(reask),
               clean=False)
  return data, truth


def kinds_of(truth: dict, data: UserComparisons) -> tuple[np.ndarray, np.ndarray]:
  """`(user_kind [U], answer_kind [U, K])` of `data`'s users (a subset of the truth's, with
  their slots in the same order: users are selected, never re-ordered within)."""
  rows = np.searchsorted(truth["user_id"], data.user_id)
  if not (truth["user_id"][rows] == data.user_id).all():
    raise ValueError("kinds_of: these users are not in the re-asked data's truth.")
  answer = truth["answer_kind"][rows][:, :data.mask.shape[1]]
  return truth["user_kind"][rows], answer
