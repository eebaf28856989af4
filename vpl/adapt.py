"""Asking a new user: how many questions, which ones, and how sure the model is afterwards.

(docs/methods.md, 'Asking a new user'.) The protocol, for each evaluated user: their real
pairs in a random order (the run's `adapt` stream) are split once into a pool of unlabelled
candidates (the first min(`adapt.pool_size`, n - `adapt.min_targets`)) and a fixed target set
(the rest). At each budget of `adapt.budgets` the method has seen the answers to the questions
asked so far (a question is a pool pair; its answer is the user's recorded label) and is
scored on the same targets; budget 0 is the population prediction (the prior). Users whose
pool is smaller than the largest budget are left out and counted. Questions are chosen by a
strategy of `vpl.strategies` over the method's posterior (`vpl.posteriors`), re-inferred
after every answer, `adapt.batch_size` questions per round.

`evaluate(config, exp, models)` is what `vpl.experiment` writes to results.json
(`adaptation[method][strategy][str(budget)]`); `method_curve` is what
`vpl.analysis.Run.adaptation` runs; `interview` asks one new user through a function.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np

from vpl import calibration, evaluate, posteriors, seeding, strategies
from vpl.data.comparisons import UserComparisons
from vpl.data.sources import ExperimentData


@dataclasses.dataclass(frozen=True)
class Settings:
  """`config.adapt` (experiments/configs/default.py); these defaults are for runs saved
  before the group existed."""
  pool_size: int = 64
  min_targets: int = 16
  budgets: tuple[int, ...] = (0, 1, 2, 4, 8, 16)
  strategies: tuple[str, ...] = ("random", "info_gain", "variance", "dopt", "entropy")
  batch_size: int = 1
  num_samples: int = 64
  predictive: str = "samples"

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, **overrides) -> "Settings":
    given = config.adapt.to_dict() if "adapt" in config else {}
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in given.items()
              if k in fields}
    settings = cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})
    settings.check()
    return settings

  def check(self) -> None:
    b = [int(x) for x in self.budgets]
    if not b or b != sorted(set(b)) or b[0] < 0:
      raise ValueError(f"adapt.budgets = {tuple(self.budgets)}; give increasing distinct "
                       f"numbers of questions >= 0, e.g. (0, 1, 2, 4, 8, 16).")
    for name in ("pool_size", "min_targets", "batch_size", "num_samples"):
      if getattr(self, name) < 1:
        raise ValueError(f"adapt.{name} = {getattr(self, name)}; use at least 1.")
    if self.pool_size < b[-1]:
      raise ValueError(f"adapt.pool_size = {self.pool_size} is below the largest budget "
                       f"{b[-1]}; a user cannot be asked more questions than the pool holds.")
    strategies.check(self.strategies)
    posteriors.vpl(self.num_samples, self.predictive)  # rejects a bad predictive now


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Each kept user's candidate pool and fixed targets.

  Attributes:
    rows: the kept users' rows among the evaluated users.
    data: those users.
    pool_idx: `[U, C]` pair slot of each candidate (0 on padding).
    pool_mask: `[U, C]` real candidates.
    target_mask: `[U, K]` the scored pairs: real, never in the pool.
    num_skipped: evaluated users left out (pool smaller than the largest budget).
  """
  rows: np.ndarray
  data: UserComparisons
  pool_idx: np.ndarray
  pool_mask: np.ndarray
  target_mask: np.ndarray
  num_skipped: int


def make_protocol(data: UserComparisons, settings: Settings, max_budget: int,
                  rng: np.random.Generator) -> Protocol:
  """Splits each user's pairs into pool and targets (the same split whatever the budgets,
  except which users are kept: those with a pool of at least `max_budget`). With `pair_id`,
  an asking of a question in the pool is never a target."""
  noise = np.where(data.mask, rng.random(data.mask.shape), 2.0)
  order = np.argsort(noise, axis=1, kind="stable")  # real pairs first, in random order
  n_U = data.pairs_per_user
  pool_n_U = np.clip(np.minimum(settings.pool_size, n_U - settings.min_targets), 0, None)
  keep = pool_n_U >= max(max_budget, 1)
  if not keep.any():
    raise ValueError(f"no evaluated user has adapt.min_targets + the largest budget = "
                     f"{settings.min_targets} + {max(max_budget, 1)} pairs (the most is "
                     f"{int(n_U.max())}); lower adapt.min_targets or adapt.budgets, or give "
                     f"users more pairs (data.kwargs.pairs_per_user).")
  rows = np.flatnonzero(keep)
  order, n_U, pool_n_U = order[rows], n_U[rows], pool_n_U[rows]
  width = int(pool_n_U.max())
  slot = np.arange(order.shape[1])[None]
  pool_mask = slot[:, :width] < pool_n_U[:, None]
  target_mask = np.zeros(order.shape, bool)
  is_target = (slot >= pool_n_U[:, None]) & (slot < n_U[:, None])
  np.put_along_axis(target_mask, order, is_target, axis=1)
  if data.pair_id is not None:  # a re-asked question is never both a candidate and a target
    pid = data.pair_id[rows]
    pool_pid = np.where(pool_mask, np.take_along_axis(pid, order[:, :width], 1), -2)
    target_mask &= ~(pid[:, :, None] == pool_pid[:, None, :]).any(-1)
  return Protocol(rows, data.select_users(rows), np.where(pool_mask, order[:, :width], 0),
                  pool_mask, target_mask, int((~keep).sum()))


def ask(fitted: posteriors.Fitted, pool: dict, answer: Callable[[np.ndarray], np.ndarray],
        budgets: Sequence[int], strategy: strategies.Strategy, key: jax.Array, *,
        batch_size: int = 1, targets: Optional[dict] = None,
        predict_key: Optional[jax.Array] = None) -> dict[int, dict]:
  """Asks every user of `pool` up to the largest budget, one round of questions at a time.

  Args:
    fitted: the method's posterior on its trained model.
    pool: `a`, `b` `[U, C, D]`, `mask` `[U, C]`: each user's unlabelled candidates.
    answer: `answer(idx [U, k]) -> labels [U, k]`: the users' answers to candidates idx; the
      only way a label enters.
    budgets: increasing numbers of questions at which to record the posterior.
    strategy: a `vpl.strategies` function; round r uses `fold_in(key, questions so far)`.
    batch_size: questions per round (fewer when the next budget is nearer).
    targets: `a`, `b` `[U, T, D]` to predict at each budget (None: no predictions).
    predict_key: the key of sampled predictions (VPL), the same at every budget.

  Returns:
    `{budget: {'info', 'context', 'asked' [U, budget], 'p_a' [U, T] (with targets)}}`.
  """
  num_users, width = pool["mask"].shape
  n_max = int(max(budgets))
  dim = pool["a"].shape[-1]
  context = dict(a=np.zeros((num_users, n_max, dim), np.float32),
                 b=np.zeros((num_users, n_max, dim), np.float32),
                 label=np.full((num_users, n_max), 0.5, np.float32),
                 mask=np.zeros((num_users, n_max), bool))
  asked_idx = np.zeros((num_users, n_max), np.int64)
  asked = np.zeros((num_users, width), bool)
  rows = np.arange(num_users)[:, None]
  candidates = {k: pool[k] for k in ("a", "b", "mask")}
  out, n = {}, 0
  for budget in budgets:
    while n < budget:
      k = min(batch_size, budget - n)
      state = posteriors.UserState(fitted, context, fitted.infer(context), n)
      idx = np.asarray(strategy(state, candidates, asked.copy(), jax.random.fold_in(key, n),
                                k))
      if idx.shape != (num_users, k) or asked[rows, idx].any() or not (
          pool["mask"][rows, idx].all()) or any(len(set(r)) < k for r in idx.tolist()):
        raise RuntimeError(f"strategy {getattr(strategy, '__name__', strategy)} chose "
                           f"candidates already asked, padded or repeated: {idx[:2]}.")
      labels = np.asarray(answer(idx), np.float32)
      new = slice(n, n + k)
      context["a"][:, new], context["b"][:, new] = pool["a"][rows, idx], pool["b"][rows, idx]
      context["label"][:, new], context["mask"][:, new] = labels, True
      asked_idx[:, new], asked[rows, idx] = idx, True
      n += k
    info = fitted.infer(context)
    record = dict(info=info, context={k: v.copy() for k, v in context.items()},
                  asked=asked_idx[:, :budget].copy())
    if targets is not None:
      record["p_a"] = np.asarray(fitted.predict(info, context, targets, predict_key))
    out[int(budget)] = record
  return out


def _score(p_UxK, proto: Protocol, spread, asked_slots, shares) -> dict:
  report = evaluate.accuracy_report(p_UxK, proto.data, proto.target_mask)
  entry = dict(accuracy=report["heldout_accuracy"], nll=report["nll"], ece=report["ece"],
               brier=report["brier"], worst_group_accuracy=report["worst_group_accuracy"],
               posterior_spread=None if spread is None else float(np.mean(spread)),
               num_targets=report["num_targets"])
  if proto.data.group_pref is not None and shares is not None:
    bayes = evaluate.bayes_oracle(proto.data, asked_slots, shares)
    entry["bayes_oracle_accuracy"] = evaluate.accuracy_report(
        bayes, proto.data, proto.target_mask)["heldout_accuracy"]
  return entry


def method_curve(config: ml_collections.ConfigDict, exp: ExperimentData, method, model,
                 strategy: str, settings: Settings, proto: Protocol,
                 budgets: Optional[Sequence[int]] = None) -> tuple[dict, dict]:
  """One method and strategy through the protocol.

  Returns:
    `({str(budget): entry}, {budget: p_a [U, K]})`; an entry holds `accuracy`, `nll`,
    `ece`, `brier`, `worst_group_accuracy`, `posterior_spread` (None without a user
    posterior), `num_targets` and, with generating rewards, `bayes_oracle_accuracy` (the
    Bayes oracle given the same asked pairs).
  """
  if strategy not in strategies.for_method(method.name, [strategy]):
    raise ValueError(f"strategy {strategy!r} does not apply to {method.name!r}; it takes "
                     f"{strategies.for_method(method.name, list(strategies.REGISTRY))}.")
  fitted = posteriors.Fitted(posteriors.for_method(
      method, config, num_samples=settings.num_samples, predictive=settings.predictive), model)
  data, rows = proto.data, np.arange(proto.data.num_users)[:, None]
  pool = dict(a=data.a[rows, proto.pool_idx], b=data.b[rows, proto.pool_idx],
              mask=proto.pool_mask)
  out = ask(fitted, pool, lambda idx: data.label[rows, proto.pool_idx[rows, idx]],
            budgets or settings.budgets, strategies.REGISTRY[strategy],
            jax.random.key(seeding.derive(config.seed, "adapt", "choose", strategy)),
            batch_size=settings.batch_size, targets=dict(a=data.a, b=data.b),
            predict_key=jax.random.key(seeding.derive(config.seed, "adapt", "predict")))
  curve, probs = {}, {}
  for budget, rec in out.items():
    spread = None if fitted.spread is None else np.asarray(fitted.spread(rec["info"]))
    slots = np.take_along_axis(proto.pool_idx, rec["asked"], axis=1)
    curve[str(budget)] = _score(rec["p_a"], proto, spread, slots, exp.shares)
    probs[budget] = rec["p_a"]
  return curve, probs


def protocol_for(config: ml_collections.ConfigDict, exp: ExperimentData, settings: Settings,
                 max_budget: Optional[int] = None) -> Protocol:
  if config.eval.split == "temporal":
    raise ValueError("adapt.enabled needs held-out users (eval.split = 'users' or "
                     "'validation'); with 'temporal' every user's earlier pairs were trained on.")
  return make_protocol(exp.evaluated, settings, max(max_budget or 0, settings.budgets[-1]),
                       seeding.rng(config.seed, "adapt"))


def evaluate_all(config: ml_collections.ConfigDict, exp: ExperimentData,
                 models: dict) -> tuple[dict, dict]:
  """The `adaptation` section of results.json for `models` (`{name: (method, model)}`).

  Returns:
    `(adaptation, info)`: `adaptation[method][strategy][str(budget)]` (see `method_curve`)
    with `random` for every method; info holds the settings, user and target counts, the
    oracle and BTL ceiling on the same targets (with generating rewards), the strategies
    each method ran with their seconds, and each method's reliability bins (random, largest
    budget).
  """
  settings = Settings.from_config(config)
  proto = protocol_for(config, exp, settings)
  data, top = proto.data, settings.budgets[-1]
  info = dict(dataclasses.asdict(settings), num_users=int(data.num_users),
              num_users_skipped=proto.num_skipped,
              num_targets=int(proto.target_mask.sum()),
              pool_sizes=[int(proto.pool_mask.sum(1).min()), int(proto.pool_mask.sum(1).max())],
              strategies={}, seconds={}, reliability={})
  if data.true_pref is not None:
    for name, p in (("oracle", data.true_pref), ("btl_ceiling", data.pooled_pref)):
      rep = evaluate.accuracy_report(p, data, proto.target_mask)
      info[name] = {k: rep[k] for k in ("heldout_accuracy", "nll", "brier", "ece")}
  adaptation = {}
  for name, (method, model) in models.items():
    names = strategies.for_method(name, settings.strategies)
    info["strategies"][name], info["seconds"][name] = names, {}
    adaptation[name] = {}
    for strategy in names:
      start = time.perf_counter()
      curve, probs = method_curve(config, exp, method, model, strategy, settings, proto)
      adaptation[name][strategy] = curve
      info["seconds"][name][strategy] = round(time.perf_counter() - start, 2)
      if strategy == "random":
        info["reliability"][name] = calibration.reliability(probs[top], data.label,
                                                            proto.target_mask)
  return adaptation, info


def interview(run, method_name: str, candidates_a: np.ndarray, candidates_b: np.ndarray,
              answer_fn: Callable[[np.ndarray, np.ndarray], float], num_questions: int, *,
              strategy: str = "info_gain", seed: int = 0,
              batch_size: int = 1) -> tuple[dict, Callable[[np.ndarray], np.ndarray]]:
  """Asks one new user up to `num_questions` questions among candidate pairs.

  Args:
    run: a loaded run (`vpl.analysis.load_run`).
    method_name: one of its methods.
    candidates_a, candidates_b: `[C, D]` the candidate pairs.
    answer_fn: `answer_fn(a [D], b [D]) -> P(a preferred)` (1, 0 or in between): the user.
    num_questions: how many to ask (at most C).
    strategy: a strategy that applies to the method (`vpl.strategies.APPLIES`).
    seed: the stream of the strategy's draws.
    batch_size: questions per round (k > 1: asked in one sitting).

  Returns:
    `(representation, reward_fn)`: representation holds the method's posterior (VPL `mu`,
    `log_var`; PReF `lambda`, `cov`; MaxMin `cluster_posterior`), `asked` (candidate
    indices in order) and `answers`; `reward_fn(items [..., D]) -> [...]` is the user's
    reward (VPL at z = E_q[z], MaxMin's most probable cluster).
  """
  if method_name not in run.models:
    raise ValueError(f"method {method_name!r} is not loaded in {run.workdir}; loaded: "
                     f"{sorted(run.models)}.")
  a = np.asarray(candidates_a, np.float32)
  b = np.asarray(candidates_b, np.float32)
  if a.ndim != 2 or a.shape != b.shape or not 0 <= num_questions <= len(a):
    raise ValueError(f"interview: candidates_a {a.shape} and candidates_b {b.shape} must both "
                     f"be [C, D], and num_questions = {num_questions} in [0, C].")
  method, model = run.methods[method_name], run.models[method_name]
  applicable = strategies.for_method(method_name, list(strategies.REGISTRY))
  if strategy not in applicable:
    raise ValueError(f"strategy = {strategy!r} does not apply to {method_name!r}; choose one "
                     f"of {applicable}.")
  settings = Settings.from_config(run.config, batch_size=batch_size)
  fitted = posteriors.Fitted(posteriors.for_method(
      method, run.config, num_samples=settings.num_samples, predictive=settings.predictive),
      model)
  pool = dict(a=a[None], b=b[None], mask=np.ones((1, len(a)), bool))
  answers = lambda idx: np.asarray([[answer_fn(a[i], b[i]) for i in idx[0]]], np.float32)
  rec = ask(fitted, pool, answers, [num_questions], strategies.REGISTRY[strategy],
            jax.random.key(seeding.derive(seed, "interview", strategy)),
            batch_size=batch_size)[num_questions]
  rep = {k: np.asarray(v)[0] for k, v in fitted.posterior.representation(rec["info"]).items()}
  rep.update(asked=rec["asked"][0], answers=rec["context"]["label"][0, :num_questions])
  info, context = rec["info"], rec["context"]

  def reward_fn(items: np.ndarray) -> np.ndarray:
    items = np.asarray(items, np.float32)
    flat = items.reshape(1, -1, items.shape[-1])
    return np.asarray(fitted.reward(info, context, flat))[0].reshape(items.shape[:-1])

  return rep, reward_fn
