"""Orbax checkpoints of a method's training state, with JSON metadata beside it.

What a save and a restore guarantee (README, "What a run guarantees"):
- nothing non-finite and nothing of zero size is saved: `save` checks every leaf first and
  raises, naming the leaf, instead of writing it;
- a save that fails leaves no temporary directory behind and cannot block the process's exit
  (saves are synchronous: the state is small next to a training call, and no background
  thread is left waiting for a save that will never finish);
- `restore_latest` uses the newest step that reads back whole: a damaged step (truncated or
  zeroed data, a missing item, empty metadata, an empty directory) is logged with the reason
  and skipped; a trainer moves it aside to `<dir>/damaged/<step>` so the run can write that
  step again.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

DAMAGED = "damaged"  # subdirectory where a trainer moves unreadable steps


class NonFiniteState(FloatingPointError):
  """A state with NaN or infinite values was about to be checkpointed (it was not saved)."""


def _path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def check_savable(state: Any, step: int) -> None:
  """Raises for a leaf of zero size (orbax cannot save it) or with non-finite values."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  for path, leaf in leaves:
    if np.size(leaf) == 0:
      raise ValueError(f"checkpoint step {step}: {_path_name(path)} has shape "
                       f"{np.shape(leaf)} (zero size), which cannot be saved; a layer width, "
                       f"the latent size or the feature width is 0. Make it >= 1.")
  floats = [(p, x) for p, x in leaves if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  finite = jax.device_get([jnp.isfinite(x).all() for _, x in floats])
  for (path, _), ok in zip(floats, finite):
    if not ok:
      raise NonFiniteState(f"checkpoint step {step}: {_path_name(path)} holds NaN or "
                           f"infinite values; the step was not saved.")


class Checkpointer:
  """Saves and restores a state pytree (e.g. `{'params', 'opt_state', 'step'}`) plus a JSON
  `meta` dict."""

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Checks `state` (`check_savable`), then writes it; a failed write is cleaned up."""
    check_savable(state, step)
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    except BaseException:
      for tmp in glob.glob(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")):
        shutil.rmtree(tmp, ignore_errors=True)
      raise

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

  def restore_latest(self, like: Union[Any, Callable[[dict], Any]], *, quarantine: bool,
                     step: Optional[int] = None) -> tuple[Optional[int], Any, dict]:
    """`(step, state, meta)` of the newest step that reads back whole (at most `step`).

    Args:
      like: the state to restore into, or a function of the step's metadata that gives it.
      quarantine: move each unreadable step to `<dir>/damaged/` (a trainer, which will write
        that step again); False only logs it (analysis, which must not change the run).
      step: restore this step or, when it is damaged, the newest readable one before it.

    Returns:
      `(None, like, {})` when there is no readable step (nothing saved, or all damaged).
    """
    steps = [s for s in self.all_steps() if step is None or s <= step]
    damaged = []
    for s in reversed(steps):
      try:
        target = like(self.restore_meta(s)) if callable(like) else like
        state, meta = self.restore(s, target)
      except Exception as e:  # pylint: disable=broad-except  (any unreadable step)
        damaged.append(s)
        self._report_damaged(s, e, quarantine)
        continue
      if damaged:
        logging.warning("%s: using step %d instead.", self.directory, s)
      return s, state, meta
    if damaged:
      logging.warning("%s: no readable checkpoint (damaged: %s).", self.directory, damaged)
    return None, (None if callable(like) else like), {}

  def _report_damaged(self, step: int, error: Exception, quarantine: bool) -> None:
    where = os.path.join(self.directory, str(step))
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    if quarantine and jax.process_index() == 0:
      dest = os.path.join(self.directory, DAMAGED, str(step))
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      shutil.rmtree(dest, ignore_errors=True)
      os.replace(where, dest)
      self.manager.reload()
      logging.warning("checkpoint step %d is unreadable (%s); moved it to %s (delete it with "
                      "`rm -r %s`).", step, reason, dest, dest)
    else:
      logging.warning("checkpoint step %d is unreadable (%s); skipped. Delete it with "
                      "`rm -r %s`.", step, reason, where)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
