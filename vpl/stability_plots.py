"""The stability runs at a glance (experiments/stability_summary.py --figure=PATH)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def summary_figure(rows: list[dict], path: str) -> None:
  """Per run (task and seed): VPL on genuine users noisy against clean, VPL's mean KL per kind
  of user, and the NLL of non-attitude users' coins under BTL and VPL.

  `rows` are `experiments.stability_summary.row` dicts (`vpl_gen`, `vpl_gen_clean`, `kl_gen`,
  `kl_na`, `btl_na_nll`, `vpl_na_nll`; a missing value is left out of its panel).
  """
  labels = [f"{r['task']}\nseed {r['seed']}" for r in rows]
  x = np.arange(len(rows))
  get = lambda key: np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  panels = [
      ("genuine users' accuracy (own preference)", ("clean", "vpl_gen_clean"),
       ("noisy", "vpl_gen"), None),
      ("VPL mean KL(q(z|C) || p(z))", ("genuine users", "kl_gen"),
       ("non-attitude users", "kl_na"), "log"),
      ("non-attitude users: NLL of their coins", ("BTL", "btl_na_nll"), ("VPL", "vpl_na_nll"),
       None)]
  for ax, (title, (name_a, key_a), (name_b, key_b), scale) in zip(axes, panels):
    ax.bar(x - 0.2, get(key_a), 0.4, label=name_a)
    ax.bar(x + 0.2, get(key_b), 0.4, label=name_b)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    if scale:
      ax.set_yscale(scale)
  lows = np.concatenate([get("vpl_gen"), get("vpl_gen_clean")])
  axes[0].set_ylim(max(0.0, np.nanmin(lows) - 0.05), 1.0)
  axes[2].axhline(np.log(2), color="k", ls=":", lw=1, label="log 2 (a flat 1/2)")
  for ax in axes:  # below the axes, clear of the bars
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
