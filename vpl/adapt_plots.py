"""Figures of the adaptation protocol: accuracy against questions asked, and reliability.

Both read results.json's `adaptation` and `adaptation_info` sections (`vpl/adapt.py`) of one
run or of several seeds of one config.
"""

from __future__ import annotations

from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vpl.analysis_plots import save as _save  # noqa: E402

MARKERS = {"random": "o", "info_gain": "^", "variance": "s", "dopt": "D", "entropy": "v"}


def curve(runs: list[dict], method: str, strategy: str,
          metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
  """`(budgets [n], values [seeds, n])` of one method and strategy over runs (seeds)."""
  by_budget = runs[0]["adaptation"][method][strategy]
  budgets = np.array(sorted(int(b) for b in by_budget))
  values = np.array([[np.nan if r["adaptation"][method][strategy][str(b)].get(metric) is None
                      else r["adaptation"][method][strategy][str(b)][metric] for b in budgets]
                     for r in runs], np.float64)
  return budgets, values


def _is_flat(runs: list[dict], method: str) -> bool:
  """One reward for everyone: no user posterior, so the answers change nothing."""
  strategies = runs[0]["adaptation"][method]
  return list(strategies) == ["random"] and all(
      e["posterior_spread"] is None for e in strategies["random"].values())


def adaptation_curves(runs: list[dict], path: str, title: Optional[str] = None) -> str:
  """Accuracy on the fixed targets against questions asked, per method and strategy.

  Mean over runs (seeds), with a band of one standard deviation when there are several;
  random questions dashed, chosen ones solid; methods with one reward for everyone (BTL,
  DPL), the oracle and the Bayes oracle given the random questions are reference lines.
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, method in enumerate(runs[0]["adaptation"]):
    color = colors[i % len(colors)]
    for strategy in runs[0]["adaptation"][method]:
      budgets, acc = curve(runs, method, strategy)
      mean, std = acc.mean(0), acc.std(0)
      if _is_flat(runs, method):
        ax.axhline(mean.mean(), color=color, lw=1.2, label=f"{method} (one reward)")
        continue
      ax.plot(budgets, mean, ls="--" if strategy == "random" else "-",
              marker=MARKERS.get(strategy, "x"), ms=4, color=color,
              label=f"{method}: {strategy}")
      if len(runs) > 1:
        ax.fill_between(budgets, mean - std, mean + std, color=color, alpha=0.12, lw=0)
  info = runs[0].get("adaptation_info", {})
  if "oracle" in info:
    ax.axhline(np.mean([r["adaptation_info"]["oracle"]["heldout_accuracy"] for r in runs]),
               color="black", ls=":", lw=1.2, label="oracle")
  first = next(iter(runs[0]["adaptation"]))
  if "bayes_oracle_accuracy" in runs[0]["adaptation"][first]["random"]["0"]:
    budgets, bayes = curve(runs, first, "random", "bayes_oracle_accuracy")
    ax.plot(budgets, bayes.mean(0), color="gray", ls="-.", lw=1,
            label="Bayes oracle (random questions)")
  budgets = sorted(int(b) for b in runs[0]["adaptation"][first]["random"])
  ax.set_xscale("symlog", linthresh=1)
  ax.set_xticks(budgets), ax.set_xticklabels([str(b) for b in budgets])
  ax.set_xlabel("questions asked"), ax.set_ylabel("accuracy on the fixed targets")
  seeds = [r["seed"] for r in runs]
  ax.set_title(title or f"{runs[0]['task']}, seeds {seeds}", fontsize=9)
  ax.legend(fontsize=6.5, ncol=2)
  return _save(fig, path)


def reliability_diagram(bins_by_method: dict[str, dict], path: str,
                        title: str = "reliability (random questions, largest budget)") -> str:
  """Accuracy against confidence per bin (`vpl.calibration.reliability`), one line per
  method; marker area grows with the bin's count; the diagonal is perfect calibration."""
  fig, ax = plt.subplots(figsize=(4.6, 4.2))
  ax.plot([0.5, 1], [0.5, 1], color="black", ls=":", lw=1, label="calibrated")
  for name, bins in bins_by_method.items():
    count = np.asarray(bins["count"], np.float64)
    keep = count > 0
    conf = np.asarray(bins["confidence"], np.float64)[keep]
    acc = np.asarray(bins["accuracy"], np.float64)[keep]
    line, = ax.plot(conf, acc, "-", lw=1, label=name)
    ax.scatter(conf, acc, s=8 + 60 * np.sqrt(count[keep] / count.sum()), color=line.get_color())
  ax.set_xlim(0.48, 1.01), ax.set_ylim(0, 1.01)
  ax.set_xlabel("confidence max(p, 1 - p)"), ax.set_ylabel("agreement with the label")
  ax.set_title(title, fontsize=9), ax.legend(fontsize=7)
  return _save(fig, path)
