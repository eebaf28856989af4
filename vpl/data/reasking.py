"""Re-asked questions with genuine, non-attitude and constructed answers (flat rows).

`reask(task, rng, ...)` turns a synthetic task's users into rows in which a share of the
questions is asked again under other conditions, and in which some answers carry no stable
preference (after the survey-research distinction):
- genuine: the answer follows the user's own reward (the generator's label), whatever the
  condition;
- non-attitude: the user has no opinion; each answer is a fair coin, drawn anew at every
  asking (users: `non_attitude_users`; single questions of other users:
  `non_attitude_questions`);
- constructed: the answer is made on the spot from how the question was put: the option
  shown first is chosen with probability `first_bias` (users: `constructed_users`;
  questions: `constructed_questions`).
Condition 0 shows a first and condition 1 shows b first. Every question gets a random
first condition; a re-asked one (`reask_share` of each user's questions) is asked
`asks` times in all, the conditions alternating. The truth is returned beside the rows.
"""

from __future__ import annotations

import numpy as np

from vpl.data.labelling import Task
from vpl.data.rows import Rows

GENUINE, NON_ATTITUDE, CONSTRUCTED = 0, 1, 2
KINDS = ("genuine", "non_attitude", "constructed")


def reask(task: Task, rng: np.random.Generator, *, non_attitude_users: float = 0.3,
          constructed_users: float = 0.0, non_attitude_questions: float = 0.0,
          constructed_questions: float = 0.2, first_bias: float = 1.0,
          reask_share: float = 0.5, asks: int = 3) -> tuple[Rows, dict]:
  """Rows with `condition` and `pair_id`, and the truth.

  Returns:
    `(rows, truth)`: truth holds `user_id [U]`, `user_kind [U]` (0 genuine, 1 non-attitude,
    2 constructed), `answer_kind [N]` (the kind of each row's answer) and `question_kind`
    (`{(user_id, pair_id): kind}`).
  """
  for name, share in (("non_attitude_users", non_attitude_users),
                      ("constructed_users", constructed_users),
                      ("non_attitude_questions", non_attitude_questions),
                      ("constructed_questions", constructed_questions),
                      ("reask_share", reask_share), ("first_bias", first_bias)):
    if not 0 <= share <= 1:
      raise ValueError(f"{name} = {share}; it is a share in [0, 1].")
  if non_attitude_users + constructed_users > 1:
    raise ValueError(f"non_attitude_users + constructed_users = "
                     f"{non_attitude_users + constructed_users} > 1; lower one of them.")
  if asks < 2:
    raise ValueError(f"asks = {asks}; a re-asked question is asked at least twice.")
  data = task.data
  num_users = data.num_users
  # Exact shares of users: the first round(share * U) of a random order.
  order = rng.permutation(num_users)
  n_na, n_con = round(non_attitude_users * num_users), round(constructed_users * num_users)
  user_kind = np.full(num_users, GENUINE)
  user_kind[order[:n_na]] = NON_ATTITUDE
  user_kind[order[n_na:n_na + n_con]] = CONSTRUCTED
  cols = {k: [] for k in ("user_id", "a", "b", "label", "group", "condition", "pair_id")}
  answer_kind = []
  next_id = 0
  for u in range(num_users):
    slots = np.flatnonzero(data.mask[u])
    k = len(slots)
    kind_q = np.full(k, user_kind[u])
    if user_kind[u] == GENUINE:  # exact shares of this user's questions
      q = rng.permutation(k)
      n_qna, n_qcon = round(non_attitude_questions * k), round(constructed_questions * k)
      kind_q[q[:n_qna]] = NON_ATTITUDE
      kind_q[q[n_qna:n_qna + n_qcon]] = CONSTRUCTED
    times = np.ones(k, int)
    times[rng.permutation(k)[:round(reask_share * k)]] = asks
    first = rng.integers(0, 2, size=k)
    for j, slot in enumerate(slots):
      for t in range(times[j]):
        condition = (first[j] + t) % 2
        if kind_q[j] == GENUINE:
          label = data.label[u, slot]
        elif kind_q[j] == NON_ATTITUDE:
          label = float(rng.random() < 0.5)
        else:  # chooses the option shown first with probability first_bias
          picks_first = rng.random() < first_bias
          label = float(picks_first == (condition == 0))
        cols["user_id"].append(data.user_id[u])
        cols["a"].append(data.a[u, slot])
        cols["b"].append(data.b[u, slot])
        cols["label"].append(label)
        cols["group"].append(data.group[u])
        cols["condition"].append(condition)
        cols["pair_id"].append(next_id + j)
        answer_kind.append(kind_q[j])
    next_id += k
  arrays = dict(user_id=np.asarray(cols["user_id"], np.int64),
                a=np.asarray(cols["a"], np.float32), b=np.asarray(cols["b"], np.float32),
                label=np.asarray(cols["label"], np.float32),
                group=np.asarray(cols["group"], np.int32),
                condition=np.asarray(cols["condition"], np.int64),
                pair_id=np.asarray(cols["pair_id"], np.int64))
  names = tuple(str(d) for d in range(data.feature_dim))
  truth = dict(user_id=data.user_id.copy(), user_kind=user_kind,
               answer_kind=np.asarray(answer_kind))
  truth["question_kind"] = question_kinds(arrays, truth["answer_kind"])
  return Rows(f"{task.name}+reasked", arrays, names), truth


def question_kinds(arrays: dict, answer_kind: np.ndarray) -> dict:
  """`{(user_id, pair_id): kind}` of every question (all its answers share one kind)."""
  return {(int(u), int(p)): int(k) for u, p, k in
          zip(arrays["user_id"], arrays["pair_id"], answer_kind)}
