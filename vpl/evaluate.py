"""Evaluation on held-out users, with each user's context disjoint from the scored targets.

Accuracy is the expected agreement with the observed labels: a prediction P(a) > 0.5 scores
`label`, otherwise `1 - label` (so soft labels count fractionally). Beside it, the
calibration of the probabilities (`vpl.calibration`: NLL, Brier score, 15-bin ECE). The oracle
scores with the user's generating reward; the BTL ceiling is the best any single reward can
do, predicting each pair by the population's pooled preference (docs/methods.md, 'BTL').
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import numpy as np
from flax import nnx

from vpl import calibration, losses
from vpl.data.comparisons import UserComparisons
from vpl.method import Method

ACTIVE_UNIT_THRESHOLD = 0.01


def accuracy_report(p_a: np.ndarray, data: UserComparisons, target_mask: np.ndarray,
                    unseen_mask: Optional[np.ndarray] = None) -> dict:
  """Accuracy overall, on unseen items, on divergent pairs, per group and for the worst group,
  and the calibration of the probabilities on the targets (`nll`, `brier`, `ece`).

  Args:
    p_a: `[U, K]` predicted P(a preferred).
    data: the users scored (labels, groups, and `divergent` when known).
    target_mask: `[U, K]` the pairs to score.
    unseen_mask: `[U, K]` the targets whose pair no training user labelled, when known.

  A group with no targets has accuracy NaN and is left out of the worst group, which is NaN
  only when no group has targets.
  """
  label = data.label
  pred = (np.asarray(p_a) > 0.5).astype(np.float64)
  correct = pred * label + (1 - pred) * (1 - label)
  group = np.broadcast_to(data.group[:, None], label.shape)

  def mean(where):
    n = where.sum()
    return float(correct[where].sum() / n) if n else float("nan")

  report = dict(heldout_accuracy=mean(target_mask), num_targets=int(target_mask.sum()))
  report.update(calibration.report(p_a, label, target_mask))
  groups = [int(g) for g in np.unique(data.group)]
  report["group_accuracy"] = {str(g): mean(target_mask & (group == g)) for g in groups}
  report["worst_group_accuracy"] = worst(report["group_accuracy"].values())
  if unseen_mask is not None:
    report["unseen_items_accuracy"] = mean(unseen_mask & target_mask)
    report["num_unseen_targets"] = int((unseen_mask & target_mask).sum())
  if data.divergent is not None:
    div = target_mask & data.divergent
    report["divergent_accuracy"] = mean(div)
    report["divergent_group_accuracy"] = {str(g): mean(div & (group == g)) for g in groups}
    report["num_divergent_targets"] = int(div.sum())
  return report


def worst(values) -> float:
  """The smallest of `values`, ignoring NaN (groups without targets); NaN if all are."""
  finite = [v for v in values if not np.isnan(v)]
  return min(finite) if finite else float("nan")


def gather_context(data: UserComparisons, context_idx: np.ndarray,
                   context_weight: Optional[np.ndarray] = None) -> dict:
  """Each user's context pairs; with `context_weight` `[U, N]`, also `mask` (the weights)."""
  take = lambda x: np.take_along_axis(x, context_idx[..., None] if x.ndim == 3 else
                                      context_idx, axis=1)
  context = dict(a=take(data.a), b=take(data.b), label=take(data.label))
  if context_weight is not None:
    context["mask"] = np.asarray(context_weight, np.float32)
  if data.condition is not None:
    context["condition"] = np.maximum(take(data.condition), 0)
  if data.reliability is not None:  # per user (vpl/reliability.py)
    context["reliability"] = data.reliability
  return context


@functools.partial(jax.jit, static_argnums=(0, 1))
def _predict_block(method: Method, graphdef: nnx.GraphDef, params, context: dict,
                   targets: dict) -> tuple[jax.Array, dict]:
  logits, aux = method.predict(nnx.merge(graphdef, params), context, targets)
  return jax.nn.sigmoid(logits), aux


def predict_users(method: Method, model: nnx.Module, data: UserComparisons,
                  context_idx: np.ndarray, *, users_per_call: int = 256,
                  context_weight: Optional[np.ndarray] = None,
                  frame_targets: bool = True) -> tuple[np.ndarray, dict]:
  """P(a preferred) `[U, K]` on every pair of each user, given their context pairs.

  `context_weight` `[U, N]` weighs the context pairs (vpl/data/recency.py); None counts each
  fully. `frame_targets=False` leaves the targets' conditions out, so a model with the
  position-bias tower predicts the user's own preference (the context keeps its conditions,
  which the inference of the user may read).
  Users go through one jitted function in blocks of `users_per_call` (the last block padded
  by repeating its last user), so a model compiles once per block shape, not once per call.
  Returns the probabilities and the method's aux outputs, concatenated over users.
  """
  graphdef, params = nnx.split(model)
  context = gather_context(data, context_idx, context_weight)
  targets = dict(a=data.a, b=data.b)
  if data.condition is not None and frame_targets:  # read by model.condition_bias
    targets["condition"] = np.maximum(data.condition, 0)
  num_users = data.num_users
  block = min(users_per_call, num_users)
  outputs = []
  for start in range(0, num_users, block):
    rows = np.minimum(np.arange(start, start + block), num_users - 1)
    p_a, aux = jax.device_get(_predict_block(
        method, graphdef, params, {k: v[rows] for k, v in context.items()},
        {k: v[rows] for k, v in targets.items()}))
    real = min(block, num_users - start)
    outputs.append((p_a[:real], {k: v[:real] for k, v in aux.items()}))
  p_a = np.concatenate([p for p, _ in outputs])
  aux = {k: np.concatenate([a[k] for _, a in outputs]) for k in outputs[0][1]}
  return p_a, aux


def latent_report(mu: np.ndarray, log_var: np.ndarray, prior_mu: np.ndarray,
                  prior_log_var: np.ndarray) -> dict:
  """Mean KL(q || p) per user and the number of active latent units.

  Dimension d is active when the variance over users of E_q[z_d] exceeds 0.01.
  """
  kl = np.asarray(losses.gaussian_kl(mu, log_var, prior_mu, prior_log_var)).sum(-1)
  variance = np.var(mu, axis=0)
  return dict(mean_kl=float(kl.mean()),
              active_units=int((variance > ACTIVE_UNIT_THRESHOLD).sum()),
              latent_dim=int(mu.shape[-1]),
              latent_variance=[float(v) for v in variance])


def oracle_and_ceiling(data: UserComparisons, target_mask: np.ndarray,
                       unseen_mask: Optional[np.ndarray] = None) -> tuple[dict, dict]:
  """Reports of the generating rewards (oracle) and of the best single reward (ceiling)."""
  if data.true_pref is None or data.pooled_pref is None:
    raise ValueError("This data has no generating rewards (true_pref / pooled_pref), so "
                     "there is no oracle or BTL ceiling to report.")
  # Ties (P = 0.5 exactly) are broken towards b in both, as in every method's prediction.
  return (accuracy_report(data.true_pref, data, target_mask, unseen_mask),
          accuracy_report(data.pooled_pref, data, target_mask, unseen_mask))


def bayes_oracle(data: UserComparisons, context_idx: np.ndarray, shares,
                 framing: Optional[tuple[float, float]] = None) -> np.ndarray:
  """P(a preferred) `[U, K]` of the Bayes-optimal predictor given only the context pairs.

  It knows every group's generating reward and the group shares, but not the user's group:
  it weighs the groups by their posterior given the user's context labels. This is the best
  any method can do from the same context, the fair reference for a latent method (the
  oracle, which knows the group, is an upper bound no method can reach from a few pairs).
  `framing`: see `group_posterior`; the prediction is the user's preference (unframed).
  """
  post_UxG = group_posterior(data, context_idx, shares, framing)
  return np.einsum("ukg,ug->uk", data.group_pref, post_UxG)


def group_posterior(data: UserComparisons, context_idx: np.ndarray, shares,
                    framing: Optional[tuple[float, float]] = None) -> np.ndarray:
  """`[U, G]` the Bayes oracle's posterior over each user's group given their context labels.

  `framing = (q, first)`: the oracle also knows that an answer is made from the framing with
  probability q, choosing the option shown first with probability `first` (vpl/data/
  reasking.py), so P(a | group, condition) = (1 - q) pref + q (first if a was shown first,
  else 1 - first). Needs the answers' `condition`.
  """
  if data.group_pref is None:
    raise ValueError("This data has no per-group generating preferences (group_pref), so "
                     "there is no Bayes oracle to report.")
  eps = 1e-6  # Keeps a noiseless group that contradicts one label possible, barely.
  pref_UxNxG = np.take_along_axis(data.group_pref, context_idx[..., None], axis=1)
  if framing is not None:
    if data.condition is None:
      raise ValueError("bayes_oracle(framing=...) needs each answer's condition; this data "
                       "has none. Pass framing=None.")
    q, first = framing
    a_first_UxN = np.take_along_axis(data.condition, context_idx, axis=1) == 0
    framed_UxNx1 = np.where(a_first_UxN, first, 1 - first)[..., None]
    pref_UxNxG = (1 - q) * pref_UxNxG + q * framed_UxNx1
  pref_UxNxG = np.clip(pref_UxNxG, eps, 1 - eps)
  y_UxNx1 = gather_context(data, context_idx)["label"][..., None]
  log_lik_UxG = (y_UxNx1 * np.log(pref_UxNxG) + (1 - y_UxNx1) * np.log1p(-pref_UxNxG)).sum(1)
  log_post_UxG = log_lik_UxG + np.log(np.asarray(shares))[None]
  post_UxG = np.exp(log_post_UxG - log_post_UxG.max(1, keepdims=True))
  return post_UxG / post_UxG.sum(1, keepdims=True)
