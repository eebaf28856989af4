"""BTL: one reward for everyone, fit by Bradley-Terry on pooled pairs.

See docs/methods.md, 'BTL'.
"""

from __future__ import annotations

import functools

import ml_collections

from vpl import losses
from vpl.method import Method
from vpl.methods.sampling import sample_pairs
from vpl.models import condition_bias
from vpl.models.btl import BTLReward


def num_conditions(config: ml_collections.ConfigDict) -> int:
  """Conditions of the shared position-bias tower: 0 (off) unless model.condition_bias."""
  m = config.model
  return int(m.get("num_conditions", 2)) if m.get("condition_bias", False) else 0


def make(config: ml_collections.ConfigDict) -> Method:
  def make_model(feature_dim, rngs):
    return BTLReward(feature_dim, tuple(config.model.hidden),
                     num_conditions=num_conditions(config),
                     activation=config.model.get("activation", "gelu"), rngs=rngs)

  def loss(model, batch, key, step):
    del key, step
    # a and b go through the network separately (not as one concatenated batch): then the
    # gradient of a parameter that cancels in r(a) - r(b) (the last layer's bias) is exactly
    # zero, and 1 and N devices end with the same parameters (tests/test_device_equivalence).
    logit = condition_bias.apply(model, model(batch["a"]) - model(batch["b"]), batch)
    value = losses.bt_loss(logit, batch["label"])
    return value, dict(loss=value, nll=value)

  def predict(model, context, targets):
    del context
    reward_a, reward_b = model(targets["a"]), model(targets["b"])
    logit = condition_bias.apply(model, reward_a - reward_b, targets)
    return logit, dict(reward_a=reward_a, reward_b=reward_b)

  # BTL sees as many comparisons per step as VPL has target pairs.
  num_pairs = config.train.batch_sets * config.train.num_targets
  return Method("btl", make_model,
                functools.partial(sample_pairs, num_pairs=num_pairs), loss, predict,
                batch_axis_size=num_pairs,
                batch_axis_source="train.batch_sets x train.num_targets")

