"""Every config value checked in one place, before anything is built. Imports no JAX.

`check(config)` raises a ValueError naming the field, the value, the rule and the fix for
the first field that breaks its rule. `vpl.experiment.train_and_evaluate` and
`vpl.analysis.load_run` call it first; fields a config does not have are not checked, so
configs of older runs still load.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import ml_collections

Rule = tuple[Callable[[Any], bool], str]


def _int(lo: int) -> Rule:
  return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo,
          f"an integer >= {lo}")


def _int_or_auto(lo: int) -> Rule:
  ok, what = _int(lo)
  return (lambda v: v == "auto" or ok(v)), f"{what} or 'auto'"


def _num_or_auto(lo: float) -> Rule:
  ok, what = _num(lo)
  return (lambda v: v == "auto" or ok(v)), f"{what} or 'auto'"


def _num(lo: float, *, strict: bool = False, hi: float = math.inf,
         hi_strict: bool = False) -> Rule:
  def ok(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return (v > lo if strict else v >= lo) and (v < hi if hi_strict else v <= hi)
  bounds = f"{'>' if strict else '>='} {lo}" + (
      "" if hi == math.inf else f" and {'<' if hi_strict else '<='} {hi}")
  return ok, f"a finite number {bounds}"


def _choice(*choices: str) -> Rule:
  return (lambda v: v in choices), f"one of {list(choices)}"


def _bool() -> Rule:
  return (lambda v: isinstance(v, bool)), "True or False"


def _ints(lo: int) -> Rule:
  one, what = _int(lo)
  return (lambda v: isinstance(v, (list, tuple)) and all(map(one, v)),
          f"a list of integers >= {lo}")


def _shares() -> Rule:
  one, _ = _num(0, hi=1)
  return (lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(map(one, v)),
          "a non-empty list of numbers in [0, 1]")


def _recency_ok(v) -> bool:
  kind, _, value = str(v).partition(":")
  try:
    number = float(value)
  except ValueError:
    return v == "all"
  return ((kind == "latest" and number.is_integer() and number >= 1)
          or (kind == "exp" and math.isfinite(number) and number > 0))


RULES: dict[str, Rule] = {
    "seed": _int(0),
    "data.heldout_fraction": _num(0, strict=True, hi=1, hi_strict=True),
    "data.device_dtype": _choice("float32", "bfloat16"),
    "data.drop_unstable": _bool(),
    "data.reask.enabled": _bool(),
    "data.reask.clean": _bool(),
    "data.reask.clean_baseline": _bool(),
    **{f"data.reask.{k}": _num(0, hi=1) for k in (
        "non_attitude_users", "constructed_users", "non_attitude_questions",
        "constructed_questions", "first_bias", "reask_share")},
    "data.reask.asks": _int(2),
    "model.hidden": _ints(1),
    "model.embed_dim": _int(1),
    "model.latent_dim": _int_or_auto(1),
    "model.num_heads": _int(1),
    "model.pooling": _choice("mean", "attention", "bayes"),
    "model.encoder": _choice("pairwise", "deepsets"),
    "model.activation": _choice("gelu", "leaky_relu"),
    "model.decoder": _choice("product", "product_linear", "concat"),
    "model.decoder_blocks": _int(1),
    "model.reliability": _choice("none", "reask"),
    "model.context_recency": (_recency_ok, "'all', 'latest:N' (N >= 1) or 'exp:H' (H > 0)"),
    "model.condition_bias": _bool(),
    "model.num_conditions": _int(1),
    "loss.beta": _num(0),
    "loss.beta_schedule": _choice("constant", "warmup", "cyclical"),
    "loss.warmup_steps": _int(0),
    "loss.cycles": _int(1),
    "loss.free_bits": _num(0),
    "loss.nonlinear_l2": _num_or_auto(0),
    "loss.target_mode": _choice("disjoint", "context", "both"),
    "optim.learning_rate": _num(0, strict=True),
    "optim.warmup_steps": _int(0),
    "optim.weight_decay": _num(0),
    "optim.grad_clip": _num(0, strict=True),
    "train.num_steps": _int(1),
    "train.steps_per_call": _int(1),
    "train.checkpoint_every": _int(1),
    "train.batch_sets": _int(1),
    "train.num_context": _int(1),
    "train.min_context": _int(0),
    "train.num_targets": _int(1),
    "train.context_order": _choice("random", "time"),
    "dpl.num_atoms": _int(2),
    "dpl.entropy_coef": _num(0),
    "pref.num_bases": _int_or_auto(1),
    "pref.l2": _num(0),
    "pref.nonlinear_l2": _num_or_auto(0),
    "pref.newton_steps": _int(1),
    "pref.prior": _choice("empirical", "isotropic"),
    "pref.mixture_prior": _bool(),
    "pref.population_head": _bool(),
    "pref.linear_path": _bool(),
    "pref.prior_ridge": _num(0),
    "pref.svd_rounds": _int(0),
    "pref.prefit_steps": _int(0),
    "maxmin.num_clusters": _int_or_auto(1),
    "maxmin.em": _choice("hard", "soft"),
    "maxmin.init": _choice("kmeans", "random", "round_robin"),
    "maxmin.restarts": _int(1),
    "maxmin.max_rounds": _int(1),
    "maxmin.tol": _num(0),
    "maxmin.steps_per_round": _int(1),
    "maxmin.pairs_per_step": _int(1),
    "eval.num_context": _int(0),
    "eval.split": _choice("users", "validation", "temporal"),
    "eval.unseen_fraction": _num(0, hi=1, hi_strict=True),
    "eval.shrinkage": _num(0, hi=1),
    "adapt.pool_size": _int(1),
    "adapt.min_targets": _int(1),
    "adapt.budgets": _ints(0),
    "adapt.batch_size": _int(1),
    "adapt.num_samples": _int(1),
    "adapt.predictive": _choice("samples", "mean"),
    "feedback.rounds": _int(1),
    "feedback.stability": _choice("mixture", "consistency"),
    "feedback.strengths": _shares(),
    "feedback.constructed_share": _num(0, strict=True, hi=1, hi_strict=True),
    "feedback.lean": _num(0, hi=1),
    "feedback.position_share": _num(0, hi=1),
    "feedback.eta": _num(0, hi=1),
    "feedback.temperature": _num(0),
    "feedback.num_questions": _int(1),
    "feedback.num_prompts": _int(1),
    "feedback.num_candidates": _int(2),
    "feedback.population_users": _int(1),
    "feedback.reference_items": _int(2),
    "streaming.read_threads": _int(1),
    "streaming.prefetch_chunks": _int(1),
}
# Why a value is refused, where the rule alone does not say it.
WHY = {
    "train.num_steps": "a run without training steps would score untrained models",
    "loss.beta": "a negative KL weight rewards a posterior far from the prior",
    "optim.learning_rate": "a learning rate <= 0 does not descend the loss",
    "model.latent_dim": "a zero-size latent cannot be learned or checkpointed",
    "feedback.constructed_share": "the loop needs both constructed and genuine users",
    "data.reask.asks": "a re-asked question is asked at least twice",
    "eval.shrinkage": "it is the share of the way to the fully weighted blend (0 = off)",
}


def _get(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return _MISSING
    node = node[part]
  return node


_MISSING = object()


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for the first field of `config` that breaks its rule."""
  for field, (ok, what) in RULES.items():
    value = _get(config, field)
    if value is _MISSING or ok(value):
      continue
    why = f" ({WHY[field]})" if field in WHY else ""
    raise ValueError(f"config {field} = {value!r} is not valid{why}: it must be {what}. Set "
                     f"--config.{field}=... (or fix the config file).")
  r = _get(config, "data.reask")
  if r is not _MISSING and {"non_attitude_users", "constructed_users"} <= set(r):
    if r.non_attitude_users + r.constructed_users > 1:
      raise ValueError(f"config data.reask.non_attitude_users + constructed_users = "
                       f"{r.non_attitude_users + r.constructed_users} > 1: they are shares of "
                       f"one set of users; lower one of them.")
  t = config.get("train")
  if t is not None and {"checkpoint_every", "steps_per_call"} <= set(t):
    if t.checkpoint_every % t.steps_per_call:
      raise ValueError(f"config train.checkpoint_every = {t.checkpoint_every} is not a "
                       f"multiple of train.steps_per_call = {t.steps_per_call}; make it one.")
  blocks = _get(config, "model.decoder_blocks")
  if blocks is not _MISSING and t is not None and "batch_sets" in t and t.batch_sets % blocks:
    raise ValueError(f"config model.decoder_blocks = {blocks} does not divide train.batch_sets "
                     f"= {t.batch_sets}: the training batch is split into that many equal "
                     f"blocks. Set --config.model.decoder_blocks to a divisor of it.")
  if t is not None and {"min_context", "num_context"} <= set(t):
    if t.min_context > t.num_context:
      raise ValueError(f"config train.min_context = {t.min_context} exceeds "
                       f"train.num_context = {t.num_context}; lower it (0: always "
                       f"num_context).")
  order = _get(config, "train.context_order")
  if order == "time" and _get(config, "eval.split") not in ("temporal", _MISSING):
    raise ValueError(f"config train.context_order = 'time' draws windows of answers in time "
                     f"order, which needs eval.split = 'temporal' (now "
                     f"{_get(config, 'eval.split')!r}). Set --config.eval.split=temporal or "
                     f"--config.train.context_order=random.")
  if order == "time" and t is not None and 0 < t.get("min_context", 0) < t.num_context:
    raise ValueError(f"config train.context_order = 'time' uses windows of exactly "
                     f"train.num_context answers, so train.min_context = {t.min_context} "
                     f"would be ignored; set train.min_context = 0.")
  recency = _get(config, "model.context_recency")
  if recency is not _MISSING and recency != "all":
    split = _get(config, "eval.split")
    if split is not _MISSING and split != "temporal":
      raise ValueError(f"config model.context_recency = {recency!r} weighs answers by how "
                       f"recent they are, which needs contexts in time order; eval.split = "
                       f"{split!r} draws them unordered. Set --config.eval.split=temporal "
                       f"or --config.model.context_recency=all.")
    num_context = _get(config, "eval.num_context")
    if (str(recency).startswith("latest:") and num_context is not _MISSING
        and float(recency.split(":")[1]) > num_context):
      raise ValueError(f"config model.context_recency = {recency!r} keeps more answers than "
                       f"the context has (eval.num_context = {num_context}); lower N or "
                       f"raise eval.num_context.")
