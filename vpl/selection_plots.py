"""Figures of sizes chosen from data: held-out log-likelihood against K (or J) per run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def selection_curves(panels: list[tuple[str, list[tuple[str, dict]]]], path: str) -> None:
  """One panel per (title, runs); each run a curve of its `selection` report (results.json).

  The validation users' log-likelihood per pair with one standard error, against the size;
  the likelihood's choice is ringed, and the true number of groups (when given in the run's label
  as `true=N`) drawn as a dotted line.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
  for ax, (title, runs) in zip(axes[0], panels):
    for label, sel in runs:
      sizes = [r["size"] for r in sel["curve"]]
      ll = np.array([r["heldout_log_lik"] for r in sel["curve"]])
      se = np.array([r["heldout_log_lik_se"] for r in sel["curve"]])
      line = ax.errorbar(sizes, ll, yerr=se, marker=".", capsize=2, label=label)[0]
      # Ringed: the fit the likelihood chose (MaxMin keeps its distinct clusters, which
      # need not be a size that was tried).
      picked = sel.get("chosen_by_likelihood", sel["chosen"])
      if picked in sizes:
        k = sizes.index(picked)
        ax.plot(sizes[k], ll[k], "o", mfc="none", ms=10, color=line.get_color())
    if "true" in title:
      ax.axvline(int(title.rsplit("true=", 1)[1].split()[0].rstrip(")")), ls=":",
                 color="gray")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(runs[0][1]["field"] if runs else "size")
    ax.set_ylabel("validation log-lik / pair")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
