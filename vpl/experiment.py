"""`train_and_evaluate(config, workdir)`: the one entry point for the CLI, tests and notebooks.

The workdir ends up holding `config.json`, `metrics.jsonl`, `checkpoints/<method>/`,
`results.json`, `results.md`, `data_fingerprint.json` (what the run was trained on; a resume
on other data is refused) and `reward_maps.png` (for 2-D tasks); with `adapt.enabled`,
results.json's `adaptation` section (`vpl/adapt.py`), `adaptation.png` and
`reliability.png`; with `policy.enabled`, its `policy` section and `trajectories.png`; with
`best_of_n.enabled`, its `best_of_n` section. Running the same command again on the same
workdir resumes every method from its latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np

from vpl import (adapt, best_of_n, config_checks, configs, distributed, drift_report,
                 evaluate, methods, reliability, report, seeding, selection, size_selection,
                 stability, stability_report, train)
from vpl.data import fingerprint, sources, streaming
from vpl.data.comparisons import UserComparisons
from vpl.workdir import lock as lock_workdir

DATA_FINGERPRINT = "data_fingerprint.json"
build_task = sources.build_task  # the synthetic task a config names (tests, notebooks)


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() != text:
        raise ValueError(f"{path} holds a run with a different config; resuming it with this "
                         f"config would mix two experiments. Use a new --workdir, or delete "
                         f"{workdir} to start over.")
    return
  if jax.process_index() == 0:
    _write_whole(path, text)


def _write_whole(path: str, text: str) -> None:
  """Written whole, then renamed: other processes (and a rerun after a kill) read it whole."""
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def check_data(workdir: str, config: ml_collections.ConfigDict,
               exp: sources.ExperimentData, *, write: bool) -> None:
  """Refuses a workdir whose run was trained on other data than `config` builds now.

  The fingerprint (`vpl/data/fingerprint.py`) is written to `workdir/data_fingerprint.json`
  when the run starts (`write`); a run of an older version without one is not checked.
  """
  path = os.path.join(workdir, DATA_FINGERPRINT)
  now = fingerprint.of_experiment(sources.input_files(config), exp)
  if os.path.exists(path):
    with open(path) as f:
      changed = fingerprint.difference(json.load(f), now)
    if changed:
      raise ValueError(f"{workdir} was trained on other data: {changed}. Its checkpoints "
                       f"and results belong to the old data. Restore the old data, or train "
                       f"on the new data in a new --workdir (or delete {workdir}).")
  elif write and jax.process_index() == 0:
    _write_whole(path, json.dumps(now, indent=2))


def experiment_data(config: ml_collections.ConfigDict) -> sources.ExperimentData:
  """The run's training and evaluated users (what `vpl.analysis.load_run` rebuilds too).

  They depend on the config's data and evaluation fields only, not on `config.methods`.
  """
  # Streaming: the training pairs stay on disk and are read per batch (vpl/data/streaming.py).
  exp = streaming.build(config) if config.streaming.enabled else sources.build(config)
  if config.data.get("drop_unstable", False):
    exp = _drop_unstable(config, exp)
  if config.model.get("reliability", "none") == "reask":
    exp = _attach_reliability(exp)
  return exp


def _attach_reliability(exp: sources.ExperimentData) -> sources.ExperimentData:
  """Each user's reliability from their re-asked questions (vpl/reliability.py), and the
  evaluated users' context answers given by position weighted 0 (times any recency weights);
  the fit and the count are reported in info["reliability"]."""
  if not isinstance(exp.train, UserComparisons):
    raise ValueError("config model.reliability = 'reask' works on in-memory training data; set "
                     "--config.streaming.enabled=False or --config.model.reliability=none.")
  train, evaluated, cw, info = reliability.attach(exp.train, exp.evaluated, exp.context_idx)
  cw = cw if exp.context_weight is None else cw * exp.context_weight
  return dataclasses.replace(exp, train=train, evaluated=evaluated,
                             info=dict(exp.info, reliability=info), context_weight=cw)


def _drop_unstable(config: ml_collections.ConfigDict,
                   exp: sources.ExperimentData) -> sources.ExperimentData:
  """Training users without an opinion or answering by position, and questions answered by
  position, left out (vpl/stability.py, `drop_unstable`); counted in info. Evaluated users
  are scored as they are (their unseen-item mask was computed against all training pairs)."""
  if not isinstance(exp.train, UserComparisons):
    raise ValueError("config data.drop_unstable = True works on in-memory training data; set "
                     "--config.streaming.enabled=False or --config.data.drop_unstable=False.")
  train, report = stability.drop_unstable(exp.train)
  enough = train.pairs_per_user >= sources.min_train_pairs(config)
  report["users_dropped"]["too_few_pairs_left"] = int((~enough).sum())
  return dataclasses.replace(exp, train=train.select_users(np.flatnonzero(enough)),
                             info=dict(exp.info, drop_unstable=report))


def score_method(method: methods.Method, model, exp: sources.ExperimentData, *,
                 shrinkage: float = 0.0) -> dict:
  """A trained method's held-out report (with the latent report for latent methods).

  With `shrinkage` > 0 (eval.shrinkage), VPL's users' logits are blended with the
  population's (vpl/stability_report.py, `shrunk_p`).
  """
  heldout = exp.evaluated
  p_a, aux = evaluate.predict_users(method, model, heldout, exp.context_idx,
                                    context_weight=exp.context_weight)
  if shrinkage > 0 and method.name == "vpl":
    p_a, _, _ = stability_report.shrunk_p(model, heldout, exp.context_idx, shrinkage,
                                          context_weight=exp.context_weight)
  scores = evaluate.accuracy_report(p_a, heldout, exp.target_mask, exp.unseen_mask)
  if "mu" in aux:
    prior_mu, prior_log_var = jax.device_get(model.prior())
    scores.update(evaluate.latent_report(aux["mu"], aux["log_var"], prior_mu, prior_log_var))
  return scores


def _check_conditions(config: ml_collections.ConfigDict, exp: sources.ExperimentData) -> None:
  """With the bias tower on, every condition code must have a row in its table."""
  if not config.model.get("condition_bias", False):
    return
  for data in (exp.train, exp.evaluated):
    codes = getattr(data, "condition", None)
    if codes is not None and codes.max(initial=0) >= config.model.num_conditions:
      raise ValueError(f"config model.num_conditions = {config.model.num_conditions}, but the "
                       f"data has condition {int(codes.max())}; set --config.model."
                       f"num_conditions={int(codes.max()) + 1} (codes start at 0).")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       on_chunk: Optional[Callable[[str, int], None]] = None) -> dict:
  """Trains every method in `config.methods`, evaluates them on held-out users.

  Args:
    config: an experiment config (see experiments/configs/default.py).
    workdir: where config, metrics, checkpoints and results go; resumed if it holds a run.
    on_chunk: called as `on_chunk(method_name, step)` after each jitted training call.

  Returns:
    The results dict also written to `workdir/results.json`.
  """
  config_checks.check(config)
  # One run per workdir (vpl/workdir.py): a second start gets an error naming the holder.
  with lock_workdir(workdir, jax.process_index()):
    return _train_and_evaluate(config, workdir, on_chunk)


def _train_and_evaluate(config, workdir, on_chunk) -> dict:
  _write_config(config, workdir)
  # None: the size is chosen from data while training (vpl/size_selection.py).
  to_train = {name: None if size_selection.is_auto(config, name) else
              methods.make_method(name, config) for name in config.methods}
  exp = experiment_data(config)
  check_data(workdir, config, exp, write=True)
  if isinstance(exp.train, UserComparisons):  # every process must train on the same users
    distributed.check_same_on_all_processes(exp.train.arrays(), "the training data")
  task, train_data, heldout = exp.task, exp.train, exp.evaluated
  _check_conditions(config, exp)
  context_idx, target_mask, unseen = exp.context_idx, exp.target_mask, exp.unseen_mask
  results = dict(task=exp.name, seed=config.seed, shares=list(exp.shares),
                 num_train_users=train_data.num_users, num_heldout_users=heldout.num_users,
                 eval_num_context=config.eval.num_context, data=exp.info, methods={})
  if task is not None:  # the generator knows the rewards: oracle, ceiling, Bayes oracle
    oracle, ceiling = evaluate.oracle_and_ceiling(heldout, target_mask, unseen)
    results.update(oracle_accuracy=oracle["heldout_accuracy"],
                   btl_ceiling=ceiling["heldout_accuracy"], btl_ceiling_report=ceiling)
    results["methods"]["oracle"] = dict(oracle, train_seconds=0.0)
    if heldout.group_pref is not None:
      bayes = evaluate.bayes_oracle(heldout, context_idx, task.shares)
      results["methods"]["bayes_oracle"] = dict(
          evaluate.accuracy_report(bayes, heldout, target_mask, unseen), train_seconds=0.0)
  else:
    results.update(oracle_accuracy=None, btl_ceiling=None, skipped=sources.NO_GENERATOR)
  models = {}
  for name, method in to_train.items():
    hook = None if on_chunk is None else (lambda step, n=name: on_chunk(n, step))
    ckpt_dir = os.path.join(workdir, "checkpoints", name)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if method is None:
      method, model, info = size_selection.fit_auto(
          name, config, train_data, ckpt_dir=ckpt_dir, metrics_path=metrics_path,
          on_chunk=hook)
    else:
      model, info = (method.fit or train.fit)(
          method, config, train_data, ckpt_dir=ckpt_dir, metrics_path=metrics_path,
          on_chunk=hook)
    scores = score_method(method, model, exp, shrinkage=config.eval.get("shrinkage", 0.0))
    scores["train_seconds"] = info["train_seconds"]
    # What the method's trainer reports about itself (e.g. PReF's init, MaxMin's EM rounds).
    scores["fit"] = {k: v for k, v in info.items()
                     if k != "train_seconds" and isinstance(v, (str, int, float, type(None)))}
    if "selection" in info:  # the size chosen from data, and its curve
      scores["selection"] = info["selection"]
    results["methods"][name] = scores
    if "active_units" in scores:
      results.setdefault("active_units", {})[name] = scores["active_units"]
    models[name] = (method, model)
  # A recency-weighted context against the unweighted one on the same users (drift_report;
  # context weights alone can also come from model.reliability).
  if config.model.get("context_recency", "all") != "all":
    results["drift"] = drift_report.report(config.model.context_recency, exp, models,
                                           results["methods"])
  # Re-asked data: who has a stable preference, and what the models did with each kind.
  if exp.truth is not None:
    results["stability"] = stability_report.report(config, exp, models)
    if config.data.reask.get("clean_baseline", False) and not exp.truth["clean"]:
      # The same users, draws and methods without the noise (docs/stability.md); each
      # question is asked once, so there is nothing to drop or to weigh by reliability.
      twin = configs.with_overrides(config, {"data.reask.clean": True,
                                             "data.reask.clean_baseline": False,
                                             "data.drop_unstable": False,
                                             "model.reliability": "none"})
      clean = train_and_evaluate(twin, os.path.join(workdir, "clean"))
      results["stability"]["clean"] = clean["stability"]["methods"]
  # Egalitarian choice among candidates (docs/methods.md, 'MaxMin-RLHF'), scored with the
  # true rewards.
  sel = config.eval.get("selection")
  if (sel is not None and sel.enabled and {"btl", "maxmin"} <= set(models)
      and getattr(task, "true_reward", None) is not None):
    results["selection"] = selection.selection_report(
        task, models["btl"][1], models["maxmin"][1].rewards,
        seeding.rng(config.seed, "selection"), num_prompts=sel.num_prompts,
        num_candidates=sel.num_candidates, num_reference=sel.num_reference,
        scaling_kind=sel.scaling, tau=sel.tau)
  # A new user asked 0, 1, 2, ... questions (docs/methods.md, 'Asking a new user').
  if "adapt" in config and config.adapt.enabled:
    results["adaptation"], results["adaptation_info"] = adapt.evaluate_all(config, exp, models)
  # Personal behaviour: policies on each method's rewards, best-of-N (docs/policy.md).
  paths = None
  if "policy" in config and config.policy.enabled:
    from vpl.policy import evaluate as policy_evaluate  # JAX environment only when asked.
    results["policy"], paths = policy_evaluate.evaluate_all(config, exp, models)
  if "best_of_n" in config and config.best_of_n.enabled:
    results["best_of_n"] = best_of_n.report(config, exp, models)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
    table = report.results_table(results)
    with open(os.path.join(workdir, "results.md"), "w") as f:
      f.write(table + "\n")
    if (task is not None and task.true_reward is not None and task.data.feature_dim == 2
        and config.eval.reward_maps):
      from vpl import plotting  # matplotlib only when a figure is drawn.
      plotting.reward_maps(task, heldout, context_idx, models,
                           os.path.join(workdir, "reward_maps.png"))
    if paths is not None:
      from vpl.envs import render  # matplotlib only when a figure is drawn.
      from vpl.policy.evaluate import spec_from
      render.trajectories(spec_from(config, task.num_groups), paths,
                          os.path.join(workdir, "trajectories.png"))
    chosen = [(name, r["selection"]) for name, r in results["methods"].items()
              if "selection" in r]
    if chosen:
      from vpl import selection_plots  # matplotlib only when a figure is drawn.
      selection_plots.selection_curves(
          [(f"{exp.name} seed {config.seed}: {name}", [(name, sel)]) for name, sel in chosen],
          os.path.join(workdir, "selection.png"))
    if "adaptation" in results:
      from vpl import adapt_plots  # matplotlib only when a figure is drawn.
      adapt_plots.adaptation_curves([results], os.path.join(workdir, "adaptation.png"))
      adapt_plots.reliability_diagram(results["adaptation_info"]["reliability"],
                                      os.path.join(workdir, "reliability.png"))
  return results


def run_seeds(config: ml_collections.ConfigDict, workdir: str,
              seeds: Sequence[int]) -> list[dict]:
  """`train_and_evaluate` once per seed, in `workdir/seed_N` (each resumable)."""
  runs = []
  for seed in seeds:
    seeded = config.copy_and_resolve_references()
    seeded.unlock()
    seeded.seed = int(seed)
    seeded.lock()
    runs.append(train_and_evaluate(seeded, os.path.join(workdir, f"seed_{seed}")))
  return runs
