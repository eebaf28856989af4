"""Time-ordered training sets: a window of consecutive answers and the answers right after.

`train.context_order = "time"` (latent methods, `eval.split = "temporal"`): each training
set is one user's `num_context` consecutive answers (the context) and the `num_targets`
answers that follow them (the targets), the window starting anywhere in the user's earlier
answers. This is the question a temporal evaluation asks: from a user's recent answers,
predict their next ones. With drifting users, an unordered set mixes answers from before and
after a change of mind; a window mostly does not. The pool's slots must be in time order with
the real pairs first, as `vpl.data.comparisons.split_temporal` leaves the training users.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vpl.method import Batch
from vpl.methods.sampling import choose_users


def sample_windows(key: jax.Array, pool: Batch, *, num_sets: int, num_context: int,
                   num_targets: int) -> Batch:
  """`num_sets` sets of one user each: a context window and the targets after it."""
  k_user, k_start = jax.random.split(key)
  num_users = pool["a"].shape[0]
  users = choose_users(k_user, num_users, num_sets)
  span = num_context + num_targets
  last_start = pool["mask"][users].sum(1) - span  # >= 0: every user has `span` pairs
  start = jnp.floor(jax.random.uniform(k_start, (num_sets,)) * (last_start + 1)).astype(
      jnp.int32)
  ctx_idx = start[:, None] + jnp.arange(num_context)[None]
  tgt_idx = start[:, None] + num_context + jnp.arange(num_targets)[None]
  take = lambda name, idx: pool[name][users[:, None], idx]
  return dict(context={n: take(n, ctx_idx) for n in ("a", "b", "label")},
              targets={n: take(n, tgt_idx) for n in ("a", "b", "label")})
