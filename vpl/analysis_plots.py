"""Figures of a loaded run or a set of runs (what the notebooks show); each saves a PNG."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str) -> str:
  """Writes `fig` to `path` (folders made as needed) and closes it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def training_curves(curves: dict[str, dict[str, np.ndarray]], path: str,
                    metrics: Sequence[str] = ("loss", "grad_norm")) -> str:
  """One panel per metric, one line per method (from `vpl.analysis.read_metrics`)."""
  fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for name, c in curves.items():
      if metric in c:
        ax.plot(c["step"], c[metric], label=name)
    ax.set_xlabel("step"), ax.set_title(metric, fontsize=9)
  axes[0, 0].legend(fontsize=8)
  return save(fig, path)


def latent_space(latents: dict[str, np.ndarray], path: str, title: str = "") -> str:
  """Posterior means of users, first two dimensions (by variance), coloured by true group."""
  mu, group = latents["mu"], latents["group"]
  order = np.argsort(-mu.var(0))
  x = mu[:, order[0]]
  y = mu[:, order[1]] if mu.shape[1] > 1 else np.zeros_like(x)
  fig, ax = plt.subplots(figsize=(4, 3.6))
  for g in np.unique(group):
    sel = group == g
    ax.scatter(x[sel], y[sel], s=10, label=f"group {g} ({sel.sum()})")
  ax.set_xlabel(f"z[{order[0]}]"), ax.set_ylabel(f"z[{order[1]}]" if mu.shape[1] > 1 else "")
  ax.legend(fontsize=7), ax.set_title(title or "posterior means by true group", fontsize=9)
  return save(fig, path)


def accuracy_vs_questions(by_method: dict[str, dict[int, dict]], path: str,
                          references: dict[str, float] | None = None) -> str:
  """Accuracy on fixed targets against questions asked, per method (or method: strategy),
  from `Run.adaptation` (`{name: {budget: entry}}`)."""
  fig, ax = plt.subplots(figsize=(4.5, 3.2))
  for name, by_budget in by_method.items():
    budgets = sorted(by_budget)
    ax.plot(budgets, [by_budget[n]["accuracy"] for n in budgets], "o-", label=name,
            ls="--" if name.endswith("random") else "-")
  for name, value in (references or {}).items():
    ax.axhline(value, ls=":", lw=0.8, color="gray")
    ax.text(0, value, f" {name}", fontsize=7, va="bottom")
  ax.set_xscale("symlog", linthresh=1), ax.set_xlabel("questions asked")
  ax.set_ylabel("accuracy on fixed targets"), ax.legend(fontsize=7)
  return save(fig, path)


def ablation_bars(rows: list[dict], path: str, label: str = "job",
                  metrics: Sequence[str] = ("heldout_accuracy", "worst_group_accuracy")) -> str:
  """Grouped bars: one group per row (run), one bar per metric."""
  fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(rows)), 3.2))
  width = 0.8 / len(metrics)
  x = np.arange(len(rows))
  for i, metric in enumerate(metrics):
    ax.bar(x + i * width, [r[metric] for r in rows], width, label=metric)
  ax.set_xticks(x + width * (len(metrics) - 1) / 2)
  ax.set_xticklabels([str(r[label]) for r in rows], rotation=30, ha="right", fontsize=7)
  ax.set_ylim(0, 1), ax.legend(fontsize=7)
  return save(fig, path)
