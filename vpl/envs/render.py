"""PNG figures of maze trajectories: one panel per method, every group's users overlaid."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vpl.envs.maze import MazeSpec  # noqa: E402


def draw_maze(ax, spec: MazeSpec) -> None:
  """Walls (black), goals (coloured by group, circles of the success radius), start square."""
  colors = plt.get_cmap("tab10")
  for x1, y1, x2, y2 in np.asarray(spec.walls):
    ax.plot([x1, x2], [y1, y2], color="black", lw=3)
  for k, (gx, gy) in enumerate(np.asarray(spec.goals)):
    ax.add_patch(plt.Circle((gx, gy), spec.success_radius, color=colors(k), alpha=0.35))
    ax.plot(gx, gy, marker="*", ms=12, color=colors(k), mec="black")
  w = spec.start_half_width
  ax.add_patch(plt.Rectangle((-w, -w), 2 * w, 2 * w, fill=False, ls="--", color="grey"))
  ax.set_xlim(-1, 1)
  ax.set_ylim(-1, 1)
  ax.set_aspect("equal")
  ax.set_xticks([])
  ax.set_yticks([])


def trajectories(spec: MazeSpec, panels: dict, path: str, *, per_group: int = 8,
                 titles: dict | None = None) -> None:
  """Writes a PNG with one panel per entry of `panels`.

  Args:
    spec: the maze.
    panels: `{name: (positions [N, T + 1, 2], group [N])}`; each group's first `per_group`
      users are drawn in their goal's colour.
    path: where the PNG goes.
    titles: optional `{name: title}`.
  """
  colors = plt.get_cmap("tab10")
  fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
  for ax, (name, (pos, group)) in zip(axes[0], panels.items()):
    draw_maze(ax, spec)
    for g in np.unique(group):
      for row in np.flatnonzero(group == g)[:per_group]:
        ax.plot(pos[row, :, 0], pos[row, :, 1], color=colors(int(g)), lw=1, alpha=0.8)
        ax.plot(pos[row, -1, 0], pos[row, -1, 1], "o", ms=3, color=colors(int(g)))
    ax.set_title((titles or {}).get(name, name), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
