"""Orbax checkpoints of a method's training state, with JSON metadata beside it."""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores a state pytree (e.g. `{'params', 'opt_state', 'step'}`) plus a JSON
  `meta` dict."""

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int, like: Any) -> tuple[Any, dict]:
    """Restores the state at `step` into the shapes, dtypes and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out.state, dict(out.meta)

  def restore_meta(self, step: int) -> dict:
    """The JSON metadata saved at `step` alone."""
    out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out.meta)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
