"""vpl/checkpointing.py: save, restore into a template, metadata, retention."""

import jax.numpy as jnp
import numpy as np

from conftest import assert_trees_equal
from vpl.checkpointing import Checkpointer


def _state(scale):
  return dict(params={"w": jnp.arange(6.0).reshape(2, 3) * scale, "b": jnp.ones(3) * scale},
              opt_state=(jnp.zeros(2) + scale,), step=jnp.int32(scale))


def test_save_restore_round_trip_and_retention(tmp_path):
  ckpt = Checkpointer(str(tmp_path))
  assert ckpt.latest_step() is None
  for step in (10, 20, 30):
    ckpt.save(step, _state(step), dict(train_seconds=step / 10))
  ckpt.wait()
  assert ckpt.latest_step() == 30
  like = _state(0)
  state, meta = ckpt.restore(30, like)
  assert_trees_equal(state, _state(30))
  assert meta == dict(train_seconds=3.0)
  ckpt.close()
  # max_to_keep = 2: the oldest step is gone; a new manager on the directory sees the rest.
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["20", "30"]
  again = Checkpointer(str(tmp_path))
  assert again.latest_step() == 30
  state, _ = again.restore(20, like)
  np.testing.assert_array_equal(state["params"]["w"], np.arange(6.0).reshape(2, 3) * 20)
  assert state["params"]["w"].dtype == like["params"]["w"].dtype
  again.close()
