"""Tables of the adaptation protocol (`vpl/adapt.py`) over one run or several seeds.

`questions_needed` answers "how many questions does a new user need": the fewest budget at
which a method and strategy reach 95% of the Bayes oracle's accuracy at the largest budget,
the Bayes oracle given the same asked pairs (for random questions, the random ones).
"""

from __future__ import annotations

import numpy as np

FRACTION = 0.95


def _cell(values) -> str:
  values = np.asarray([np.nan if v is None else v for v in values], np.float64)
  if np.isnan(values).all():
    return "-"
  if len(values) == 1:
    return f"{values[0]:.3f}"
  return f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}"


def _rows(runs: list[dict]):
  for method, by_strategy in runs[0]["adaptation"].items():
    for strategy in by_strategy:
      yield method, strategy, [r["adaptation"][method][strategy] for r in runs]


def budgets_of(runs: list[dict]) -> list[int]:
  first = next(iter(runs[0]["adaptation"].values()))["random"]
  return sorted(int(b) for b in first)


def adaptation_table(runs: list[dict], metric: str = "accuracy") -> str:
  """`metric` at every budget: one row per method and strategy, mean ± std over runs."""
  budgets = budgets_of(runs)
  head = ["method", "strategy"] + [f"{b} q." for b in budgets]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for method, strategy, curves in _rows(runs):
    cells = [_cell([c[str(b)].get(metric) for c in curves]) for b in budgets]
    lines.append("| " + " | ".join([method, strategy] + cells) + " |")
  return "\n".join(lines)


def calibration_table(runs: list[dict]) -> str:
  """At the largest budget: accuracy, NLL, ECE, Brier and posterior spread per strategy."""
  top = str(budgets_of(runs)[-1])
  metrics = ("accuracy", "nll", "ece", "brier", "posterior_spread")
  head = ["method", "strategy"] + list(metrics)
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for method, strategy, curves in _rows(runs):
    lines.append("| " + " | ".join([method, strategy] + [
        _cell([c[top].get(m) for c in curves]) for m in metrics]) + " |")
  return "\n".join(lines)


def questions_needed(runs: list[dict]) -> dict[str, dict[str, dict]]:
  """`{method: {strategy: {'target', 'needed'}}}` on the mean curve over runs.

  target: FRACTION x the mean Bayes oracle accuracy at the largest budget given the same
  asked pairs; needed: the fewest budget whose mean accuracy reaches it, None if none does
  (and the whole entry is None without generating rewards).
  """
  budgets = budgets_of(runs)
  out = {}
  for method, strategy, curves in _rows(runs):
    bayes = [c[str(budgets[-1])].get("bayes_oracle_accuracy") for c in curves]
    if None in bayes:
      out.setdefault(method, {})[strategy] = None
      continue
    target = FRACTION * float(np.mean(bayes))
    acc = [np.mean([c[str(b)]["accuracy"] for c in curves]) for b in budgets]
    needed = next((b for b, a in zip(budgets, acc) if a >= target), None)
    out.setdefault(method, {})[strategy] = dict(target=target, needed=needed)
  return out


def questions_needed_table(runs: list[dict]) -> str:
  budgets = budgets_of(runs)
  lines = ["| method | strategy | target (95% of Bayes oracle) | questions needed |",
           "| --- | --- | --- | --- |"]
  for method, by_strategy in questions_needed(runs).items():
    for strategy, q in by_strategy.items():
      if q is None:
        lines.append(f"| {method} | {strategy} | - | - |")
      else:
        needed = str(q["needed"]) if q["needed"] is not None else f"> {budgets[-1]}"
        lines.append(f"| {method} | {strategy} | {q['target']:.3f} | {needed} |")
  return "\n".join(lines)


def text(runs: list[dict]) -> str:
  """Every adaptation table, with the protocol's counts."""
  info = runs[0]["adaptation_info"]
  seeds = [r["seed"] for r in runs]
  parts = [f"Adaptation (seeds {seeds}): {info['num_users']} users "
           f"({info['num_users_skipped']} left out), pools of {info['pool_sizes'][0]}-"
           f"{info['pool_sizes'][1]} candidates, {info['num_targets']} fixed targets in all, "
           f"{info['batch_size']} question(s) per round.",
           "Accuracy on the fixed targets against questions asked:",
           adaptation_table(runs),
           f"Calibration at {budgets_of(runs)[-1]} questions:", calibration_table(runs)]
  if "oracle" in info:
    parts[0] += (" Oracle on the same targets: " + _cell(
        [r["adaptation_info"]["oracle"]["heldout_accuracy"] for r in runs]) + ".")
    parts += ["Questions needed:", questions_needed_table(runs)]
  return "\n\n".join(parts)
