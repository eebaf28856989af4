"""A method's size (or penalty) chosen from data: MaxMin's number of clusters K, PReF's number
of bases J, VPL's latent size; VPL's and PReF's penalty on their item MLP's output.

With `maxmin.num_clusters = "auto"` (or `pref.num_bases`, `model.latent_dim` = "auto"), the
training users are split once: a fraction `selection.validation_fraction` become validation
users, the rest train one model per candidate size (`maxmin.candidates`, `pref.candidates`,
`model.latent_candidates`). Each
validation user gets `eval.num_context` of their pairs as a context, as a new user would, and
the others are scored: the mean log-likelihood per pair of their labels under the model's
prediction from that context. The chosen size is the smallest whose held-out log-likelihood
is within one standard error (over validation users) of the best one (the one-standard-error
rule: a bigger model must earn its size). For the mixture, extra clusters can still pay on
noiseless labels by splitting a group in two near-copies that average out each other's
errors, so the chosen K is then the number of *distinct* clusters of the model the rule picked
(`distinct_clusters`: a cluster counts if it is the most probable one of some validation
user, and two clusters whose rewards order 95% of the validation pairs alike count once). A
penalty (`loss.nonlinear_l2 = "auto"`, `pref.nonlinear_l2 = "auto"`) has no "smaller" to
prefer: the candidate with the best held-out log-likelihood is kept. Sizes are
tried in increasing order and the search stops once `selection.patience` sizes in a row gain
less than a standard error over the best before them (the mixture: once they add no
distinct cluster). The method is then trained at the chosen size on all the training users.
For the EM mixture, the Bayesian information criterion of each fit, -2 log-lik +
(parameters) log(pairs), is reported beside it but does not choose: each cluster's penalty is
a whole network's parameter count times log(pairs), about as large as what a group's own
reward gains (docs/methods.md). The curve goes to results.json (`selection`) and to
`selection.png` (docs/methods.md, 'Choosing K and J from data').
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np
from flax import nnx

from vpl import configs, evaluate, methods, seeding, train
from vpl.data.comparisons import UserComparisons

AUTO = "auto"
# Two of a mixture's clusters are one group when their rewards order at least this share of
# the validation users' pairs alike (neighbouring goals of 10-goal navigation order 81% alike,
# two halves of one group about 98-99%).
DUPLICATE_AGREEMENT = 0.95
# What each method can choose from data: (field, candidates' field, rule). "size": the
# smallest candidate within one standard error of the best; "best": the best.
CHOICES = {"maxmin": (("maxmin.num_clusters", "maxmin.candidates", "size"),),
           "pref": (("pref.num_bases", "pref.candidates", "size"),
                    ("pref.nonlinear_l2", "pref.nonlinear_l2_candidates", "best")),
           "vpl": (("model.latent_dim", "model.latent_candidates", "size"),
                   ("loss.nonlinear_l2", "loss.nonlinear_l2_candidates", "best"))}


def auto_choice(config: ml_collections.ConfigDict, name: str) -> Optional[tuple[str, str, str]]:
  """`(field, candidates field, rule)` of method `name`'s field set to "auto", or None."""
  auto = [c for c in CHOICES.get(name, ()) if configs.lookup(config, c[0]) == AUTO]
  if len(auto) > 1:
    raise ValueError(f"{' and '.join(c[0] for c in auto)} are all 'auto'; {name} chooses one "
                     f"field from data at a time: set the others to a value.")
  return auto[0] if auto else None


def is_auto(config: ml_collections.ConfigDict, name: str) -> bool:
  return auto_choice(config, name) is not None


def validation_users(data: UserComparisons, fraction: float, num_context: int,
                     rng: np.random.Generator) -> np.ndarray:
  """`[U]` bool: a random `fraction` of the users with more than `num_context` pairs."""
  eligible = np.flatnonzero(data.mask.sum(1) > num_context)
  count = int(round(fraction * data.num_users))
  if not 0 < fraction < 1 or count < 2 or count > len(eligible):
    raise ValueError(f"selection.validation_fraction = {fraction} gives {count} validation "
                     f"users of the {len(eligible)} with more than eval.num_context = "
                     f"{num_context} pairs; choose a fraction giving 2 to {len(eligible)}.")
  chosen = np.zeros(data.num_users, bool)
  chosen[rng.choice(eligible, count, replace=False)] = True
  return chosen


def heldout_log_lik(method: methods.Method, model: nnx.Module, data: UserComparisons,
                    num_context: int, rng: np.random.Generator) -> tuple[float, float]:
  """Mean log-likelihood per target pair of `data`'s users given `num_context` of their
  pairs, and its standard error over users."""
  noise = np.where(data.mask, rng.random(data.mask.shape), 2.0)
  context_idx = np.argsort(noise, axis=1)[:, :num_context]
  target = data.mask.copy()
  np.put_along_axis(target, context_idx, False, axis=1)
  p_a, _ = evaluate.predict_users(method, model, data, context_idx)
  p_a = np.clip(p_a, 1e-7, 1 - 1e-7)
  ll = data.label * np.log(p_a) + (1 - data.label) * np.log1p(-p_a)
  per_user = (ll * target).sum(1) / np.maximum(target.sum(1), 1)
  per_pair = float((ll * target).sum() / target.sum())
  return per_pair, float(per_user.std(ddof=1) / np.sqrt(len(per_user)))


def one_standard_error(sizes: list[int], log_lik: list[float], se: list[float]) -> int:
  """The smallest size whose log-likelihood is within one standard error of the best."""
  best = int(np.argmax(log_lik))
  return next(s for s, ll in zip(sizes, log_lik) if ll >= log_lik[best] - se[best])


def _no_gain_for(curve: list[dict], patience: int, key: str = "heldout_log_lik") -> bool:
  """Whether the last `patience` sizes all failed to beat the best before them: by one of
  their standard errors for the log-likelihood, at all for a count (`distinct_clusters`).
  Larger sizes are then not tried."""
  if patience < 1 or len(curve) <= patience:
    return False
  best = max(r[key] for r in curve[:-patience])
  margin = (lambda r: r["heldout_log_lik_se"]) if key == "heldout_log_lik" else (lambda r: 1)
  return all(r[key] < best + margin(r) for r in curve[-patience:])


def distinct_clusters(model: nnx.Module, data: UserComparisons) -> int:
  """How many of a mixture's K rewards are distinct groups that serve someone.

  A cluster counts only if it is the most probable cluster (prior weight times the
  likelihood of all their labels) of at least one of `data`'s users: a low-weight cluster
  that no user's answers pick serves no one. Of those, clusters are kept, largest first,
  unless their reward orders DUPLICATE_AGREEMENT of `data`'s pairs as a kept one does.
  """
  a, b = data.a[data.mask], data.b[data.mask]
  prefers_PxK = np.asarray(model.rewards(a) - model.rewards(b)) > 0
  log_pi_K = np.asarray(model.log_pi[...])
  post_UxK = np.asarray(model.posterior(dict(a=data.a, b=data.b, label=data.label,
                                              mask=data.mask)))
  serves_K = np.bincount(np.argmax(post_UxK, 1), minlength=len(log_pi_K)) > 0
  kept = []
  for k in np.argsort(-log_pi_K, kind="stable"):
    if serves_K[k] and all((prefers_PxK[:, k] == prefers_PxK[:, j]).mean() < DUPLICATE_AGREEMENT
                           for j in kept):
      kept.append(k)
  return len(kept)


def _num_params(model: nnx.Module) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _fit_at(name: str, config: ml_collections.ConfigDict, field: str, size, data: UserComparisons,
            ckpt_dir: str, metrics_path, on_chunk):
  """`(method, model, info)` of method `name` with `field` = `size`, fitted on `data` (bound
  to it)."""
  sized = configs.with_overrides(config, {field: size})
  method = methods.make_method(name, sized)
  model, info = (method.fit or train.fit)(method, sized, data, ckpt_dir=ckpt_dir,
                                          metrics_path=metrics_path, on_chunk=on_chunk)
  return (method if method.bind is None else method.bind(data)), model, info


def fit_auto(name: str, config: ml_collections.ConfigDict, data: UserComparisons, *,
             ckpt_dir: str, metrics_path: Optional[str] = None,
             on_chunk: Optional[Callable[[int], None]] = None):
  """Chooses `name`'s size on validation users, then trains it on every training user.

  Checkpoints: each candidate's fit in `ckpt_dir`/selection/<size>, the final one in
  `ckpt_dir`/final/<size>, so a killed run resumes where it stopped.

  Returns:
    `(method, model, info)`: the method at the chosen size, its model, and the final fit's
    info with `selection`: `field`, `candidates`, `chosen`, and per candidate
    `heldout_log_lik`, `heldout_log_lik_se` (and `bic`, `train_log_lik` for maxmin).
  """
  field, candidates_field, rule = auto_choice(config, name)
  cast = int if rule == "size" else float
  candidates = [cast(k) for k in configs.lookup(config, candidates_field)]
  low = 1 if rule == "size" else 0
  if not candidates or min(candidates) < low or sorted(set(candidates)) != candidates:
    raise ValueError(f"{candidates_field} = {candidates}; give increasing values >= {low}.")
  val = validation_users(data, config.selection.validation_fraction,
                         config.eval.num_context, seeding.rng(config.seed, "selection", name))
  fit_data, val_data = data.select_users(np.flatnonzero(~val)), data.select_users(
      np.flatnonzero(val))
  curve = []
  for size in candidates:
    method, model, info = _fit_at(name, config, field, size, fit_data,
                                  os.path.join(ckpt_dir, "selection", str(size)),
                                  metrics_path, on_chunk)
    ll, se = heldout_log_lik(method, model, val_data, config.eval.num_context,
                             seeding.rng(config.seed, "selection", name, "context"))
    row = dict(size=size, heldout_log_lik=ll, heldout_log_lik_se=se)
    if name == "maxmin":
      train_ll = float(np.max([r["log_lik"] for r in info["restarts"]]))
      num_pairs = int(fit_data.mask.sum())
      row.update(train_log_lik=train_ll, num_params=_num_params(model),
                 bic=-2 * train_ll + _num_params(model) * np.log(num_pairs),
                 distinct_clusters=distinct_clusters(model, val_data))
    curve.append(row)
    logging.info("%s: %s = %d: validation log-lik %.4f +- %.4f", name, field, size, ll, se)
    # The mixture stops once its distinct clusters stop growing (its likelihood keeps
    # rising on noiseless labels as groups split); other methods once the likelihood does.
    key = "distinct_clusters" if name == "maxmin" else "heldout_log_lik"
    if _no_gain_for(curve, config.selection.patience, key):
      break
  lls = [r["heldout_log_lik"] for r in curve]
  chosen = (one_standard_error([r["size"] for r in curve], lls,
                               [r["heldout_log_lik_se"] for r in curve]) if rule == "size"
            else curve[int(np.argmax(lls))]["size"])
  by_likelihood = chosen
  if name == "maxmin":  # clusters that split one group serve its users as one would
    chosen = next(r["distinct_clusters"] for r in curve if r["size"] == chosen)
  method, model, info = _fit_at(name, config, field, chosen, data,
                                os.path.join(ckpt_dir, "final", str(chosen)), metrics_path,
                                on_chunk)
  info["selection"] = dict(field=field, candidates=candidates, chosen=chosen,
                           chosen_by_likelihood=by_likelihood,
                           tried=[r["size"] for r in curve],
                           num_validation_users=int(val.sum()), curve=curve)
  return method, model, info
