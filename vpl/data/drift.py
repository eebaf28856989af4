"""Per-user drift: each user's genuine preference switches groups at a time of their own.

`drift(task, rng, ...)` turns any synthetic task that records every group's preference on
every pair (`group_pref`) into one whose users change their mind: a user's pairs are taken
as answered in slot order (slot k is the user's k-th answer, `timestamp = k`), and a
drifting user answers with their first group's reward before a switch slot and with another
group's after it. The switch slot of each drifting user is drawn uniformly (whole slots)
between `switch_low` and `switch_high` times their number of pairs; the new group is drawn
uniformly among the others. The user's `group` becomes the new one (what their latest answers
follow), and `true_pref` follows the group in force at each answer. The truth (switch slot,
group before and after) is recorded in `task.truth`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vpl.data.labelling import Task


def check_shares(drifting_users: float, switch_low: float, switch_high: float) -> None:
  if not 0 <= drifting_users <= 1:
    raise ValueError(f"drifting_users = {drifting_users}; it is a share of users in [0, 1].")
  if not 0 < switch_low <= switch_high < 1:
    raise ValueError(f"switch_low = {switch_low}, switch_high = {switch_high}; they are shares "
                     f"of a user's answers with 0 < switch_low <= switch_high < 1.")


def drift(task: Task, rng: np.random.Generator, *, drifting_users: float = 1.0,
          switch_low: float = 0.25, switch_high: float = 0.6) -> Task:
  """`task` with drifting users (see the module docstring).

  Args:
    task: a synthetic task with `group_pref` `[U, K, G]` and at least two groups.
    rng: draws the drifting users, their switch slots, new groups and new labels.
    drifting_users: share of users who switch (exactly round(share x U) of them).
    switch_low, switch_high: range of the switch slot, as shares of each user's answers.

  Returns:
    The task with `timestamp` `[U, K]` (the slot), relabelled answers after each switch, and
    `truth`: `switch_time [U]` (first slot answered with the new group; the user's number of
    pairs when they do not drift), `group_before [U]`, `group_after [U]`, `drifts [U]`.
  """
  check_shares(drifting_users, switch_low, switch_high)
  data = task.data
  if data.group_pref is None or task.num_groups < 2:
    raise ValueError(f"drift needs a task with two or more groups and every group's "
                     f"preference per pair (group_pref); {task.name} has "
                     f"{task.num_groups} group(s)"
                     f"{'' if data.group_pref is not None else ' and no group_pref'}.")
  num_users, width = data.mask.shape
  counts = data.pairs_per_user
  drifts = np.zeros(num_users, bool)
  drifts[rng.permutation(num_users)[:round(drifting_users * num_users)]] = True
  lo = np.round(switch_low * counts).astype(int)
  hi = np.round(switch_high * counts).astype(int)
  switch = np.where(drifts, lo + np.floor(rng.random(num_users) * (hi - lo + 1)).astype(int),
                    counts)
  before = data.group.astype(np.int32)
  # Another group, uniformly: a shift of 1..G-1 modulo G.
  shift = 1 + np.floor(rng.random(num_users) * (task.num_groups - 1)).astype(np.int32)
  after = np.where(drifts, (before + shift) % task.num_groups, before).astype(np.int32)
  slot_UxK = np.broadcast_to(np.arange(width)[None], (num_users, width))
  late_UxK = (slot_UxK >= switch[:, None]) & data.mask
  group_UxK = np.where(late_UxK, after[:, None], before[:, None])
  true_pref = np.take_along_axis(data.group_pref, group_UxK[..., None], axis=2)[..., 0]
  draw_UxK = rng.random((num_users, width))
  label = np.where(late_UxK, (draw_UxK < true_pref).astype(np.float32), data.label)
  new = dataclasses.replace(data, label=label.astype(np.float32), group=after,
                            true_pref=true_pref.astype(np.float32))
  truth = dict(switch_time=switch, group_before=before, group_after=after, drifts=drifts)
  return dataclasses.replace(task, name=f"drift_{task.name}", data=new,
                             timestamp=slot_UxK.astype(np.float64), truth=truth)
