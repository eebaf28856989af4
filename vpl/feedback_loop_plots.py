"""The feedback-loop figure: per round, drift from genuine, group distance, genuine accuracy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("drift", "constructed users: |expressed - genuine|"),
          ("group_distance", "distance between group means"),
          ("own_group_lean", "constructed users' lean to own group"),
          ("genuine_accuracy", "accuracy on genuine users"))


def rounds(runs: list[dict], path: str) -> None:
  """One panel per measure; one line per seed and shrinkage strength (colour = strength)."""
  fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
  strengths = list(runs[0]["strengths"])
  colours = plt.cm.viridis([i / max(len(strengths) - 1, 1) for i in range(len(strengths))])
  for ax, (key, title) in zip(axes, PANELS):
    for colour, s in zip(colours, strengths):
      for i, run in enumerate(runs):
        ys = run["strengths"][s][key]
        ax.plot(range(len(ys)), ys, color=colour, alpha=0.8,
                label=f"shrinkage s = {s}" if i == 0 else None)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("round")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"best-of-N feedback loop, seeds {[r['seed'] for r in runs]}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
