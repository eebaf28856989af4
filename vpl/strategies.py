"""Which question to ask a new user next: one pure function per strategy, and the registry.

(docs/methods.md, 'Asking a new user'.) A strategy is
`choose(state, candidates, asked_mask, key, k) -> indices [B, k]`: given each user's posterior
after the answers so far (`vpl.posteriors.UserState`), their candidate pairs (`a`, `b`
`[B, C, D]`, `mask` `[B, C]`; no labels), which candidates were already asked `[B, C]` and a
PRNG key, it returns the k candidates to ask next, never one already asked nor a padded one.
k > 1 (batch mode, `adapt.batch_size`) takes the k best scores of one round: the questions a
user answers in one sitting, without re-scoring between them.

Which strategies apply to which method (`APPLIES`; `random` applies to every method):
- `random`: uniformly among the candidates not asked yet;
- `info_gain` (vpl): the mutual information between the answer y and z, I(y; z) =
  H(E_q p(y | z)) - E_q H(p(y | z)), estimated with `adapt.num_samples` samples of q(z |
  answers so far);
- `variance` (vpl): the largest expected reduction of the posterior variance, s(q) -
  sum_y p(y) s(q(z | answers, (c, y))), with s the mean variance of z per dimension and the
  encoder re-run on the answers plus each candidate and each answer;
- `dopt` (pref): PReF's uncertainty / D-optimal rule (`vpl.models.pref.question_scores`) at
  the MAP lambda refit on the answers so far; the first question is random (no answer yet
  gives the rule any information);
- `entropy` (maxmin): the largest expected reduction of the entropy of the cluster
  posterior, H(p(k)) - sum_y p(y) H(p(k | y)), exact over the K clusters.
A new strategy is one function added to REGISTRY, with the methods it applies to in APPLIES.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import numpy as np

from vpl.posteriors import UserState

Strategy = Callable[[UserState, dict, np.ndarray, jax.Array, int], np.ndarray]
P_CLIP = 1e-7


def binary_entropy(p: np.ndarray) -> np.ndarray:
  """H(p) in nats, elementwise."""
  p = np.clip(p, P_CLIP, 1 - P_CLIP)
  return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def mutual_information(w_BxS: np.ndarray, p_BxSxC: np.ndarray) -> np.ndarray:
  """I(y; h) `[B, C]` of each candidate's answer y and the hypothesis h ~ w, where hypothesis
  s answers a with probability p[s]: H(sum_s w_s p_s) - sum_s w_s H(p_s)."""
  p_bar_BxC = np.einsum("bs,bsc->bc", w_BxS, p_BxSxC)
  return binary_entropy(p_bar_BxC) - np.einsum("bs,bsc->bc", w_BxS, binary_entropy(p_BxSxC))


def entropy(w_BxK: np.ndarray) -> np.ndarray:
  """H(w) `[B]` in nats of each row of weights."""
  w = np.clip(w_BxK, 0.0, None)
  return -np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0).sum(-1)


def expected_entropy_reduction(w_BxK: np.ndarray, p_BxKxC: np.ndarray) -> np.ndarray:
  """H(p(k)) - sum_y p(y) H(p(k | y)) `[B, C]`, with p(k | y) ∝ w_k p(y | k) by Bayes' rule."""
  out = entropy(w_BxK)[:, None]
  for like_BxKxC in (p_BxKxC, 1 - p_BxKxC):  # y = 1, y = 0
    joint = w_BxK[:, :, None] * like_BxKxC
    p_y = joint.sum(1)
    post = joint / np.maximum(p_y[:, None], 1e-300)
    out = out - p_y * entropy(np.moveaxis(post, 1, 2).reshape(-1, post.shape[1])).reshape(
        p_y.shape)
  return out


def top_k(score_BxC: np.ndarray, available_BxC: np.ndarray, key: jax.Array,
          k: int) -> np.ndarray:
  """The k highest-scoring available candidates per user (ties broken at random by `key`)."""
  score_BxC = np.asarray(score_BxC, np.float64)
  if np.isnan(score_BxC[available_BxC]).any():
    raise FloatingPointError("a strategy scored an available candidate NaN; its posterior "
                             "has non-finite values (check the model's parameters).")
  short = available_BxC.sum(1) < k
  if short.any():
    raise ValueError(f"user row {int(np.argmax(short))} has {int(available_BxC.sum(1).min())} "
                     f"candidates left, fewer than the {k} to ask; raise adapt.pool_size or "
                     f"lower adapt.budgets.")
  tie = np.asarray(jax.random.uniform(key, score_BxC.shape))
  order = np.lexsort((tie, -np.where(available_BxC, score_BxC, -np.inf)), axis=-1)
  return order[:, :k]


def _available(candidates: dict, asked_mask: np.ndarray) -> np.ndarray:
  return np.asarray(candidates["mask"], bool) & ~np.asarray(asked_mask, bool)


def _pairs(candidates: dict) -> dict:
  return {k: candidates[k] for k in ("a", "b")}  # never a label, whatever the dict holds


def random(state: UserState, candidates: dict, asked_mask: np.ndarray, key: jax.Array,
           k: int) -> np.ndarray:
  """Uniformly among the candidates not asked yet."""
  del state
  k_score, k_tie = jax.random.split(key)
  score = np.asarray(jax.random.uniform(k_score, np.shape(asked_mask)))
  return top_k(score, _available(candidates, asked_mask), k_tie, k)


def info_gain(state: UserState, candidates: dict, asked_mask: np.ndarray, key: jax.Array,
              k: int) -> np.ndarray:
  """The largest mutual information between the answer and the user's representation."""
  k_samples, k_tie = jax.random.split(key)
  w, p = state.hypotheses(_pairs(candidates), k_samples)
  return top_k(mutual_information(w, p), _available(candidates, asked_mask), k_tie, k)


def variance(state: UserState, candidates: dict, asked_mask: np.ndarray, key: jax.Array,
             k: int) -> np.ndarray:
  """The largest expected reduction of the posterior's spread (VPL: variance of z)."""
  k_predict, k_tie = jax.random.split(key)
  pairs = _pairs(candidates)
  p1_BxC = state.predict(pairs, k_predict)
  after_BxCx2 = state.spread_after(pairs)
  expected = (1 - p1_BxC) * after_BxCx2[..., 0] + p1_BxC * after_BxCx2[..., 1]
  return top_k(state.spread()[:, None] - expected, _available(candidates, asked_mask), k_tie,
               k)


def dopt(state: UserState, candidates: dict, asked_mask: np.ndarray, key: jax.Array,
         k: int) -> np.ndarray:
  """PReF's D-optimal rule at the MAP lambda; random for the first question."""
  if state.num_asked == 0:
    return random(state, candidates, asked_mask, key, k)
  score = state.question_scores(_pairs(candidates))
  return top_k(score, _available(candidates, asked_mask), key, k)


def entropy_reduction(state: UserState, candidates: dict, asked_mask: np.ndarray,
                      key: jax.Array, k: int) -> np.ndarray:
  """The largest expected reduction of the entropy of the cluster posterior."""
  k_hyp, k_tie = jax.random.split(key)
  w, p = state.hypotheses(_pairs(candidates), k_hyp)
  return top_k(expected_entropy_reduction(w, p), _available(candidates, asked_mask), k_tie, k)


REGISTRY: dict[str, Strategy] = {"random": random, "info_gain": info_gain,
                                 "variance": variance, "dopt": dopt,
                                 "entropy": entropy_reduction}
# The methods each strategy applies to; None: every method.
APPLIES: dict[str, Optional[tuple[str, ...]]] = {
    "random": None, "info_gain": ("vpl",), "variance": ("vpl",), "dopt": ("pref",),
    "entropy": ("maxmin",)}


def check(names: Sequence[str], field: str = "adapt.strategies") -> None:
  unknown = [n for n in names if n not in REGISTRY]
  if unknown:
    raise ValueError(f"{field} has {unknown}, which are not strategies; choose from "
                     f"{sorted(REGISTRY)}.")


def for_method(method_name: str, names: Sequence[str]) -> list[str]:
  """`random`, then each of `names` that applies to the method, in order."""
  check(names)
  applies = lambda s: APPLIES[s] is None or method_name in APPLIES[s]
  return ["random"] + [s for s in dict.fromkeys(names) if s != "random" and applies(s)]
