"""DPL: a reward distribution per item, mean-variance or categorical.

See docs/methods.md, 'DPL'.

DPL ignores the user's context: like BTL it fits one model to the pooled pairs, and it exposes
hidden context only through the spread of each item's reward (aux `std_a`, `std_b`), without
separating the modes. It is trained on the same batches as BTL.
"""

from __future__ import annotations

import functools

import ml_collections

from vpl import losses
from vpl.method import Method
from vpl.methods import btl
from vpl.methods.sampling import sample_pairs
from vpl.models import condition_bias
from vpl.models.dpl import CategoricalReward, MeanVarianceReward, preference_log_likelihood


def _make(config: ml_collections.ConfigDict, kind: str) -> Method:
  hidden, d = tuple(config.model.hidden), config.dpl
  if d.entropy_coef < 0:
    raise ValueError(f"dpl.entropy_coef = {d.entropy_coef}; use >= 0 (0.1 in the official "
                     f"code; 0 turns the bonus off).")

  conditions = btl.num_conditions(config)

  def make_model(feature_dim, rngs):
    if kind == "mean_variance":
      return MeanVarianceReward(feature_dim, hidden, num_conditions=conditions, rngs=rngs)
    return CategoricalReward(feature_dim, hidden, d.num_atoms, num_conditions=conditions,
                             rngs=rngs)

  def loss(model, batch, key, step):
    del key, step
    log_win, log_lose, aux = model.compare(batch["a"], batch["b"])
    if model.condition_bias is not None and "condition" in batch:
      # log_win and log_lose are complementary, so log_win - log_lose is the logit of
      # P(a > b), and the tower's mixture is taken on it (vpl/models/condition_bias.py).
      logit = condition_bias.apply(model, log_win - log_lose, batch)
      nll = losses.bt_loss(logit, batch["label"])
    else:
      nll = -preference_log_likelihood(log_win, log_lose, batch["label"]).mean()
    metrics = dict(nll=nll, mean_std=0.5 * (aux["std_a"] + aux["std_b"]).mean())
    value = nll
    if kind == "categorical":
      # The official code's entropy bonus: keeps the atoms' distribution from collapsing
      # onto one atom, which would make the spread meaningless.
      entropy = 0.5 * (aux["entropy_a"] + aux["entropy_b"]).mean()
      value = nll - d.entropy_coef * entropy
      metrics["entropy"] = entropy
    return value, dict(loss=value, **metrics)

  def predict(model, context, targets):
    del context
    log_win, log_lose, aux = model.compare(targets["a"], targets["b"])
    return condition_bias.apply(model, log_win - log_lose, targets), aux

  # As many comparisons per step as BTL (and as VPL has target pairs).
  num_pairs = config.train.batch_sets * config.train.num_targets
  name = "dpl_mv" if kind == "mean_variance" else "dpl_cat"
  return Method(name, make_model, functools.partial(sample_pairs, num_pairs=num_pairs), loss,
                predict, batch_axis_size=num_pairs,
                batch_axis_source="train.batch_sets x train.num_targets")


def make_mean_variance(config: ml_collections.ConfigDict) -> Method:
  return _make(config, "mean_variance")


def make_categorical(config: ml_collections.ConfigDict) -> Method:
  return _make(config, "categorical")
