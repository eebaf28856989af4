"""Batch samplers shared by methods: single pairs, and per-user context/target sets."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vpl.method import Batch


def pair_fields(pool: Batch) -> tuple[str, ...]:
  """What a drawn pair carries: a, b, label, and its condition and pair_id when the pool has
  them."""
  return ("a", "b", "label") + tuple(k for k in ("condition", "pair_id") if k in pool)


def sample_pairs(key: jax.Array, pool: Batch, num_pairs: int, with_user: bool = False) -> Batch:
  """Draws `num_pairs` comparisons uniformly from all real pairs of the pool (with replacement).

  With `with_user`, the batch also holds `user`: the row of each pair's user in the pool.
  """
  pick = jax.random.randint(key, (num_pairs,), 0, pool["valid_flat"].shape[0])
  flat = pool["valid_flat"][pick]
  width = pool["a"].shape[1]
  user, slot = flat // width, flat % width
  batch = {name: pool[name][user, slot] for name in pair_fields(pool)}
  return dict(batch, user=user) if with_user else batch


# Above this many users, `choose_users` draws by Floyd's algorithm (work in the number of sets)
# instead of a permutation of every user (work in U log U: at 80,000 users it was most of a
# streamed step, docs/data.md). Below it the draws are the ones every documented run made.
FLOYD_ABOVE = 2**16


def choose_users(key: jax.Array, num_users: int, num_sets: int) -> jax.Array:
  """`num_sets` users drawn uniformly, distinct when there are enough (with replacement
  otherwise), in uniformly random order: `jax.random.choice`'s distribution.

  Above FLOYD_ABOVE users, Floyd's algorithm picks the subset (for j = U - k .. U - 1: draw t
  in [0, j]; take t unless already taken, else j: each k-subset equally likely, in k steps of
  k comparisons) and a permutation of the k orders it.
  """
  if num_users < num_sets or num_users <= FLOYD_ABOVE:
    return jax.random.choice(key, num_users, (num_sets,), replace=num_users < num_sets)
  k_draw, k_order = jax.random.split(key)
  draws = jax.random.randint(k_draw, (num_sets,), 0,
                             num_users - num_sets + 1 + jnp.arange(num_sets))

  def step(i, chosen):
    j = num_users - num_sets + i
    taken = (chosen == draws[i]).any()
    return chosen.at[i].set(jnp.where(taken, j, draws[i]))

  chosen = jax.lax.fori_loop(0, num_sets, step, jnp.full((num_sets,), -1, jnp.int32))
  return jax.random.permutation(k_order, chosen)


def sample_sets(key: jax.Array, pool: Batch, *, num_sets: int, num_context: int,
                num_targets: int, target_mode: str, min_context: int = 0) -> Batch:
  """Draws sets of one user each: `num_context` context pairs and target pairs.

  A fresh context is drawn for the same user at every step, so each target is seen with many
  different context sets (the paper's augmentation). `target_mode`:
  'disjoint' targets are other pairs of the same user (trains the encoder to generalise);
  'context' targets are the context pairs themselves (the paper's training);
  'both' targets are the context pairs and the others.
  With `pair_id` in the pool, no asking of a question in the context is a target (all
  askings of one question stay on one side), and `targets['mask']` marks the real targets.
  With `0 < min_context < num_context`, each set shows only its first n context pairs, n drawn
  uniformly in [min_context, num_context] (context-size augmentation; `context['mask']` marks
  them), so the encoder learns to read small and large contexts alike.
  """
  k_user, k_pair, k_size = jax.random.split(key, 3)
  num_users = pool["a"].shape[0]
  users = choose_users(k_user, num_users, num_sets)
  mask = pool["mask"][users]
  noise = jnp.where(mask, jax.random.uniform(k_pair, mask.shape), 2.0)
  order = jnp.argsort(noise, axis=1)
  take = lambda name, idx: pool[name][users[:, None], idx]
  ctx_idx = order[:, :num_context]
  fields = pair_fields(pool)
  context = {n: take(n, ctx_idx) for n in fields}
  if "reliability" in pool:  # each set's user's reliability (vpl/reliability.py)
    context["reliability"] = pool["reliability"][users]
  if 0 < min_context < num_context:
    size = jax.random.randint(k_size, (num_sets, 1), min_context, num_context + 1)
    context["mask"] = jnp.arange(num_context)[None, :] < size
  if target_mode == "context":
    return dict(context=context, targets={n: take(n, ctx_idx) for n in fields})
  rest_idx, rest_ok = order[:, num_context:], mask
  if "pair_id" in pool:
    # A re-asked question is never split: no asking of a context question is a target
    # (they go last, and are masked out if a set runs short of other pairs).
    pid = pool["pair_id"][users]
    rest_ok = mask & ~(pid[:, :, None] == take("pair_id", ctx_idx)[:, None, :]).any(-1)
    rest_idx = jnp.argsort(jnp.where(rest_ok, noise, 3.0), axis=1)
  rest_idx = rest_idx[:, :num_targets]
  targets = {n: take(n, rest_idx) for n in fields}
  if "pair_id" in pool:
    targets["mask"] = jnp.take_along_axis(rest_ok, rest_idx, axis=1)
  if target_mode == "both":
    targets = {n: jnp.concatenate([context[n] if n != "mask" else
                                   jnp.ones(ctx_idx.shape, bool), targets[n]], 1)
               for n in targets}
  return dict(context=context, targets=targets)
