"""How far a user's answers can be trusted, from their re-asked questions (docs/stability.md).

Each re-asked question's askings fall into one of three patterns: `same` (one answer every
time), `positional` (every answer is the option shown first, under conditions that differ:
an answer constructed from the framing) or `other` (anything else). A user with no opinion
answers each asking by a coin, so for m askings the patterns have the known probabilities
2^(1 - m), 2^(-m) and the rest; a user with a stable preference gives `same`, or
`positional` for the questions they answer by the framing, and almost never `other`, at
unknown rates q. A two-part mixture of the two, fitted by EM on the training users (the
share pi of stable users and q), gives each user's posterior probability of being stable:

  w = pi L_stable / (pi L_stable + (1 - pi) L_coin),

the user's `reliability`. With `model.reliability = "reask"`, VPL tempers each set's
posterior by it, q_w(z) proportional to p(z)^(1 - w) q(z | C)^w (w = 0: the prior; w = 1:
the encoder's posterior), and weighs the set's likelihood by w in training
(vpl/models/vpl.py, vpl/methods/vpl.py). A training user's w comes from all their answers;
an evaluated user's from every asking of their context questions (none of which is a target,
vpl/data/comparisons.py `split_context_target`). A user without a re-asked question gets
w = 1: nothing says the answers are unstable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vpl.data.comparisons import UserComparisons, shares_question


PATTERNS = ("same", "positional", "other")


def _check(data: UserComparisons) -> None:
  if data.pair_id is None or data.condition is None:
    raise ValueError("model.reliability = 'reask' needs each answer's pair_id (the same id each "
                     "time a question is asked) and condition (0: a shown first); this data "
                     "lacks them. Add the columns or set --config.model.reliability=none.")


def _questions(data: UserComparisons, where_UxK: np.ndarray | None):
  """The slots `(u, k)` among `where`, each slot's question, and per question its user,
  askings m, whether both orders were shown and its pattern (index into PATTERNS; -1 for a
  question asked once)."""
  _check(data)
  where = data.mask if where_UxK is None else where_UxK & data.mask
  u, k = np.nonzero(where)
  pid = data.pair_id[u, k].astype(np.int64)
  width = int(pid.max(initial=0)) + 1
  questions, inverse = np.unique(u.astype(np.int64) * width + pid, return_inverse=True)
  per_q = lambda x: np.bincount(inverse, weights=x, minlength=questions.size)
  m = per_q(np.ones(u.size))
  prefers_a = data.label[u, k] > 0.5
  a_first = data.condition[u, k] == 0
  chose_a, chose_first, shown_a_first = per_q(prefers_a), per_q(prefers_a == a_first), \
      per_q(a_first)
  varied = (shown_a_first > 0) & (shown_a_first < m)  # both orders were shown
  pattern = np.where((chose_a == 0) | (chose_a == m), 0,
                     np.where(varied & (chose_first == m), 1, 2))
  pattern = np.where(m >= 2, pattern, -1)
  return (u, k), inverse, questions // width, m, varied, pattern


def question_counts(data: UserComparisons, where_UxK: np.ndarray | None = None):
  """Per user, over the re-asked questions among the slots `where` (default: every real slot):

  Returns `(counts [U, 3], log_coin [U])`: how many re-asked questions show each of PATTERNS,
  and the log-likelihood of those patterns for a user answering every asking by a coin.
  """
  return _counts(data.num_users, _questions(data, where_UxK))


def _counts(num_users: int, questions) -> tuple[np.ndarray, np.ndarray]:
  """`question_counts` from `_questions`' result."""
  _, _, user_q, m, varied, pattern = questions
  counts = np.zeros((num_users, len(PATTERNS)))
  log_coin = np.zeros(num_users)
  re = pattern >= 0
  user_q, m, varied, pattern = user_q[re], m[re], varied[re], pattern[re]
  p_same, p_pos = 2.0 ** (1 - m), np.where(varied, 2.0 ** -m, 0.0)
  coin = np.choose(pattern, [p_same, p_pos, 1 - p_same - p_pos])
  np.add.at(counts, (user_q, pattern), 1)
  np.add.at(log_coin, user_q, np.log(coin))
  return counts, log_coin


def positional_slots(data: UserComparisons, where_UxK: np.ndarray | None = None) -> np.ndarray:
  """`[U, K]` True at every asking (among `where`) of a re-asked question whose answers
  followed the option shown first under both orders: made from the framing, not the user's
  preference."""
  return _positional(data.mask.shape, _questions(data, where_UxK))


def _positional(shape, questions) -> np.ndarray:
  """`positional_slots` from `_questions`' result."""
  (u, k), inverse, _, _, _, pattern = questions
  out = np.zeros(shape, bool)
  out[u, k] = pattern[inverse] == 1
  return out


@dataclasses.dataclass(frozen=True)
class Mixture:
  """pi: the share of stable users; q: their rates of PATTERNS; users: how many were fitted."""
  pi: float
  q: tuple
  users: int

  def weight(self, counts_Ux3, log_coin_U) -> np.ndarray:
    """Each user's posterior probability of being stable (1 without a re-asked question)."""
    log_stable = counts_Ux3 @ np.log(np.asarray(self.q))
    log_odds = np.log(self.pi) - np.log1p(-self.pi) + log_stable - log_coin_U
    w = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -50.0, 50.0)))
    return np.where(counts_Ux3.sum(1) > 0, w, 1.0)


def fit(counts_Ux3, log_coin_U, *, steps: int = 200, floor: float = 1e-3) -> Mixture:
  """EM for (pi, q) over the users with a re-asked question; each rate of q >= `floor`."""
  has = counts_Ux3.sum(1) > 0
  if not has.any():
    raise ValueError("model.reliability = 'reask': no training user has a question asked "
                     "twice (same pair_id), so nothing tells a stable answer from a coin. "
                     "Re-ask some questions, or set --config.model.reliability=none.")
  c, lc = counts_Ux3[has], log_coin_U[has]
  mix = Mixture(pi=0.5, q=(0.8, 0.1, 0.1), users=int(has.sum()))
  for _ in range(steps):
    r = mix.weight(c, lc)
    q = np.maximum((r[:, None] * c).sum(0) / max((r[:, None] * c).sum(), 1e-12), floor)
    mix = Mixture(pi=float(np.clip(r.mean(), 1e-4, 1 - 1e-4)), q=tuple(q / q.sum()),
                  users=mix.users)
  return mix


def attach(train: UserComparisons, evaluated: UserComparisons, context_idx_UxN: np.ndarray):
  """`(train, evaluated, context_weight [U, N], info)`: each user's `reliability` set (see the
  module doc), and the evaluated users' context weights, 0 for an answer to a question they
  answered by position under both orders (`positional_slots`), else 1."""
  train_counts = question_counts(train)
  mix = fit(*train_counts)
  w_train = mix.weight(*train_counts)
  # An evaluated user's known answers: every asking of a context question.
  _check(evaluated)
  questions = _questions(evaluated, shares_question(evaluated.pair_id, context_idx_UxN))
  counts = _counts(evaluated.num_users, questions)
  w_eval = mix.weight(*counts)
  # A context answer to a question answered by position under both orders says nothing of
  # the user's preference: it gets weight 0 in the context.
  positional_NxC = np.take_along_axis(_positional(evaluated.mask.shape, questions),
                                      context_idx_UxN, 1)
  info = dict(stable_share=mix.pi, stable_patterns=dict(zip(PATTERNS, mix.q)),
              fitted_on_users=mix.users,
              train_mean=float(w_train.mean()), evaluated_mean=float(w_eval.mean()),
              evaluated_without_reask=int((counts[0].sum(1) == 0).sum()),
              context_answers_by_position=int(positional_NxC.sum()),
              context_answers=int(positional_NxC.size))
  return (dataclasses.replace(train, reliability=w_train.astype(np.float32)),
          dataclasses.replace(evaluated, reliability=w_eval.astype(np.float32)),
          (~positional_NxC).astype(np.float32), info)
