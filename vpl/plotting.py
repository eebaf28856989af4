"""Reward maps of 2-D tasks: each group's true reward beside what each method learned."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vpl.data.comparisons import UserComparisons  # noqa: E402
from vpl.data.synthetic import Task  # noqa: E402
from vpl.evaluate import gather_context  # noqa: E402


def reward_maps(task: Task, heldout: UserComparisons, context_idx: np.ndarray,
                models: dict, path: str, *, resolution: int = 60) -> None:
  """Rows: true reward, then one per method; columns: one held-out user of each group.

  Latent methods are shown with z inferred from that user's context pairs (marked: preferred
  option as a dot, the other as a cross); single-reward methods show the same map in every
  column, which is the centroid collapse to look for.
  """
  axis = np.linspace(task.state_low, task.state_high, resolution, dtype=np.float32)
  grid = np.stack(np.meshgrid(axis, axis), -1)  # [R, R, 2]
  flat = grid.reshape(-1, 2)
  groups = np.unique(heldout.group)
  users = [int(np.flatnonzero(heldout.group == g)[0]) for g in groups]
  context = gather_context(heldout, context_idx)
  rows = [("true", lambda u, g: task.true_reward(grid, g))]
  for name, (method, model) in models.items():
    rows.append((name, _method_map(method, model, context, flat, grid.shape[:2])))
  fig, axes = plt.subplots(len(rows), len(users), squeeze=False,
                           figsize=(2.6 * len(users), 2.4 * len(rows)))
  extent = (task.state_low, task.state_high, task.state_low, task.state_high)
  for r, (name, fn) in enumerate(rows):
    for c, (u, g) in enumerate(zip(users, groups)):
      ax = axes[r, c]
      ax.imshow(fn(u, int(g)), origin="lower", extent=extent, cmap="viridis")
      if r > 0:
        win = context["label"][u] > 0.5
        preferred = np.where(win[:, None], context["a"][u], context["b"][u])
        other = np.where(win[:, None], context["b"][u], context["a"][u])
        ax.scatter(*preferred.T, s=8, c="white", edgecolors="black", linewidths=0.3)
        ax.scatter(*other.T, s=8, c="red", marker="x", linewidths=0.6)
      ax.set_xticks([]), ax.set_yticks([])
      ax.set_title(f"{name}: group {g} user" if r else f"true reward, group {g}", fontsize=8)
  fig.suptitle(f"{task.name}, shares {task.shares}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _method_map(method, model, context, flat, shape):
  def reward(u, g):
    del g
    ctx = {k: v[u:u + 1] for k, v in context.items()}
    _, aux = method.predict(model, ctx, dict(a=flat[None], b=flat[None]))
    return np.asarray(aux["reward_a"][0]).reshape(shape)
  return reward


def beta_sweep(rows: list[dict], task: str, path: str) -> None:
  """Held-out accuracy and active latent units against beta, one line per recipe."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
  for recipe in dict.fromkeys(r["recipe"] for r in rows):
    mine = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["beta"])
    betas = [r["beta"] for r in mine]
    left.plot(betas, [r["accuracy"] for r in mine], "o-", label=recipe)
    right.plot(betas, [r["active_units"] for r in mine], "o-", label=recipe)
  left.axhline(rows[0]["oracle"], color="k", ls=":", lw=1, label="oracle")
  left.axhline(rows[0]["btl_ceiling"], color="gray", ls="--", lw=1, label="BTL ceiling")
  left.set(xscale="log", xlabel="beta", ylabel="held-out accuracy", title=f"{task}: accuracy")
  right.set(xscale="log", xlabel="beta", ylabel="active units (Var > 0.01)",
            title=f"{task}: active latent units")
  left.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
