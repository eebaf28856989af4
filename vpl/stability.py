"""Is there a stable preference to personalise to? Consistency of re-asked questions.

From rows with `pair_id` (the same question asked again) and `condition` (how it was put:
0 = option a shown first, 1 = b shown first), per user:
- `consistency`: how often two answers to the same question agree (both prefer a, or both
  b), over every pair of answers to a re-asked question;
- `cross_agreement` / `within_agreement`: the same, over answer pairs given under different
  conditions / under the same one;
- `first_rate`: how often the answer is the option shown first.
A genuine preference agrees with itself whatever the framing (consistency near 1); a
non-attitude is a coin at every asking (near 1/2) with no pull to either position; a
constructed preference follows the framing (it picks the first-shown option, so it flips
when the order flips: first_rate near 1). `classify` turns these into one label per user
with two thresholds; docs/methods.md ("Stable preferences") explains the choice.
`drop_unstable` removes what they flag from training users (`data.drop_unstable`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vpl.data.comparisons import UserComparisons
from vpl.data.pairs import compact
from vpl.data.rows import Rows, from_comparisons

KINDS = ("genuine", "non_attitude", "constructed")


def user_statistics(rows: Rows) -> dict[str, np.ndarray]:
  """Per user (sorted ids): answers, re-asked questions and the agreement statistics.

  A user with no re-asked question gets NaN agreements (nothing to compare).
  """
  x = rows.arrays
  for field in ("pair_id", "condition"):
    if field not in x:
      raise ValueError(f"{rows.name}: no {field!r} field; the stability analysis needs "
                       f"pair_id (the same id each time a question is asked) and condition "
                       f"(0: a shown first, 1: b shown first).")
  prefers_a = x["label"] > 0.5
  first = np.where(x["condition"] == 0, prefers_a, ~prefers_a)
  users, user_row = np.unique(x["user_id"], return_inverse=True)
  questions = dict(user=[], pair_id=[], follows_position=[])
  stats = {k: np.zeros(len(users)) for k in ("answers", "reasked", "agree", "pairs",
                                             "cross_agree", "cross_pairs", "within_agree",
                                             "within_pairs", "first")}
  np.add.at(stats["answers"], user_row, 1)
  np.add.at(stats["first"], user_row, first)
  order = np.lexsort((x["pair_id"], user_row))
  key = np.stack([user_row[order], x["pair_id"][order]], 1)
  starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(1)])
  for lo, hi in zip(starts, np.r_[starts[1:], len(order)]):
    if hi - lo < 2:
      continue
    rows_q = order[lo:hi]
    u = user_row[rows_q[0]]
    i, j = np.triu_indices(len(rows_q), 1)
    agree = prefers_a[rows_q][i] == prefers_a[rows_q][j]
    cross = x["condition"][rows_q][i] != x["condition"][rows_q][j]
    conditions = x["condition"][rows_q]
    questions["user"].append(u)
    questions["pair_id"].append(x["pair_id"][rows_q[0]])
    # Asked in both orders and always answered by position: the answer flips with the order.
    questions["follows_position"].append(bool((conditions != conditions[0]).any()
                                              and first[rows_q].all()))
    stats["reasked"][u] += 1
    stats["agree"][u] += agree.sum()
    stats["pairs"][u] += len(agree)
    stats["cross_agree"][u] += agree[cross].sum()
    stats["cross_pairs"][u] += cross.sum()
    stats["within_agree"][u] += agree[~cross].sum()
    stats["within_pairs"][u] += (~cross).sum()
  with np.errstate(invalid="ignore", divide="ignore"):
    return dict(user_id=users, answers=stats["answers"], reasked=stats["reasked"],
                questions={k: np.asarray(v) for k, v in questions.items()},
                consistency=stats["agree"] / stats["pairs"],
                cross_agreement=stats["cross_agree"] / stats["cross_pairs"],
                within_agreement=stats["within_agree"] / stats["within_pairs"],
                first_rate=stats["first"] / stats["answers"])


def classify(stats: dict[str, np.ndarray], *, min_consistency: float = 0.7,
             max_first_rate: float = 0.8) -> np.ndarray:
  """One kind per user (an index into `KINDS`).

  constructed: first_rate >= max_first_rate (answers follow the framing); else
  non_attitude: consistency < min_consistency (answers disagree with themselves); else
  genuine. A user without re-asked questions is called genuine (nothing says otherwise).
  """
  kind = np.zeros(len(stats["user_id"]), int)
  kind[np.nan_to_num(stats["consistency"], nan=1.0) < min_consistency] = 1
  kind[stats["first_rate"] >= max_first_rate] = 2
  return kind


def constructed_questions(stats: dict, user_kind: np.ndarray) -> np.ndarray:
  """`[Q]` re-asked questions whose answer follows the framing (asked in both orders, always
  answered by position), among users not called non-attitude (a coin can do that by chance)."""
  q = stats["questions"]
  return q["follows_position"] & (user_kind[q["user"]] != 1)


def precision_recall(found: np.ndarray, true: np.ndarray) -> dict:
  """Precision and recall of boolean `found` against boolean `true` (None when undefined)."""
  hit = int((found & true).sum())
  return dict(precision=hit / found.sum() if found.any() else None,
              recall=hit / true.sum() if true.any() else None,
              num_true=int(true.sum()), num_found=int(found.sum()))


def detector_report(predicted: np.ndarray, true: np.ndarray) -> dict:
  """Precision and recall of each non-genuine kind of user against the truth (KINDS)."""
  return {name: precision_recall(predicted == k, true == k)
          for k, name in enumerate(KINDS[1:], start=1)}


def drop_unstable(data: UserComparisons) -> tuple[UserComparisons, dict]:
  """`data` without the users classified non-attitude or constructed, and without every
  asking of a question flagged as answered by position (`constructed_questions`).

  For training users only (their answers are training data); held-out users are scored as
  they are. Needs `pair_id` and `condition`.
  """
  for field in ("pair_id", "condition"):
    if getattr(data, field) is None:
      raise ValueError(f"data.drop_unstable = True needs the {field!r} field (re-asked "
                       f"questions); this data has none. Add pair_id and condition columns, "
                       f"or set --config.data.drop_unstable=False.")
  stats = user_statistics(Rows("training users", from_comparisons(data),
                               tuple(map(str, range(data.feature_dim)))))
  kind = classify(stats)
  row_of = np.searchsorted(stats["user_id"], data.user_id)
  keep_user = kind[row_of] == 0
  q = stats["questions"]
  flagged = constructed_questions(stats, kind)
  drop = np.zeros(data.mask.shape, bool)
  for u, p in zip(q["user"][flagged], q["pair_id"][flagged]):
    r = np.flatnonzero(row_of == u)[0]
    drop[r] |= data.pair_id[r] == p
  drop &= data.mask
  report = dict(users_dropped={name: int(((kind[row_of] == k)).sum())
                               for k, name in enumerate(KINDS) if k},
                answers_dropped=int(drop[keep_user].sum()))
  kept = dataclasses.replace(data, mask=data.mask & ~drop,
                             label=np.where(drop, 0.5, data.label).astype(data.label.dtype))
  return compact(kept.select_users(np.flatnonzero(keep_user))), report
