"""PReF's bases refitted under the trained users' weights as the prior (`pref.refine_rounds`).

Trained jointly, every user's weights lambda_u are free, and with a few noiseless answers
each user needs the bases only to order *their own* pairs: on ufp4 the bases' span ends 5-8
degrees off the four types' directions, and the best weights in hindsight reach only
0.98 (docs/methods.md, 'PReF'). Each round here ties the users together through the mixture
prior the method predicts with:

1. lambda-bar_u = the posterior mean of user u's weights under the *other* training users'
   weights as point masses, given all of u's training pairs (leave one out);
2. the bases are refitted with every user's weights fixed at lambda-bar_u, so a group's
   users pull them toward one shared direction. `pref.refine_params` says what moves: the
   linear path and the MLP's output layer ("output", the default), the linear path alone
   ("linear"), or all of phi ("all", which overfits the training pairs: on unimodal it ranked
   unseen items at 0.93, BTL at 0.96);
3. each user's own weights are refitted to the new bases (they are the prior's atoms).

Full batch, Adam, `pref.refine_steps` steps for each fit. It runs in `finalize`, after
training and after a restore alike (the checkpoint holds the trained parameters; the
refinement is a deterministic function of them and of the training users).
Shape suffixes: U users, K pairs per user, J bases, B a block of users.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from vpl import losses
from vpl.data.comparisons import UserComparisons
from vpl.models.pref import PReFModel, atom_posterior

# What the bases' refit may move (`refit_filter`).
REFIT_PARAMS = ("output", "linear", "all")
# Elements of a block's [B, U, K] logits in the leave-one-out posterior.
_BLOCK_ELEMENTS = 2 * 10**7


def refit_params(p) -> str:
  """`pref.refine_params`; "all" for a run stored before the field existed (it refitted all
  of phi)."""
  return p.get("refine_params", "all")


def check(p, num_conditions: int) -> int:
  """The rounds to run: `pref.refine_rounds`, or 0 with the population head or the
  position-bias tower, which the refit leaves out (logged)."""
  rounds = int(p.get("refine_rounds", 0))
  if rounds < 0 or (rounds and p.get("refine_steps", 0) < 1):
    raise ValueError(f"pref.refine_rounds = {rounds}, pref.refine_steps = "
                     f"{p.get('refine_steps')}; use rounds >= 0 and steps >= 1.")
  if refit_params(p) not in REFIT_PARAMS:
    raise ValueError(f"pref.refine_params = {refit_params(p)!r}; choose one of {REFIT_PARAMS} "
                     f"(what the bases' refit moves).")
  if rounds and (p.get("population_head", False) or num_conditions):
    logging.info("pref: pref.refine_rounds = %d skipped: the refit has no place for the "
                 "population head or the position-bias tower.", rounds)
    return 0
  return rounds


def loo_posterior_means(v_UxKxJ: jax.Array, y_UxK: jax.Array, mask_UxK: jax.Array,
                        weights_UxJ: jax.Array) -> jax.Array:
  """`[U, J]`: each user's posterior mean weights given all their pairs, under the other
  users' weights as equally likely point masses."""
  num_users, num_pairs = y_UxK.shape
  block = max(1, _BLOCK_ELEMENTS // max(1, num_users * num_pairs))
  flat = jnp.zeros(num_users)
  out = []
  for start in range(0, num_users, block):
    rows = jnp.arange(start, min(start + block, num_users))
    log_post_BxU = atom_posterior(v_UxKxJ[rows], y_UxK[rows], weights_UxJ, flat,
                                  mask_UxK[rows])
    log_post_BxU = log_post_BxU.at[jnp.arange(len(rows)), rows].set(-jnp.inf)
    out.append(jax.nn.softmax(log_post_BxU, axis=-1) @ weights_UxJ)
  return jnp.concatenate(out)


def _fit(loss, params, steps: int, learning_rate: float):
  """`params` after `steps` full-batch Adam steps on `loss(params)`."""
  tx = optax.adam(learning_rate)

  def step(carry, _):
    params, opt_state = carry
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[0][0])
  return run(params)


def refit_filter(which: str, model: PReFModel):
  """The parameters the bases' refit moves: "all" of phi, its "linear" path alone, or the
  linear path and the MLP's "output" layer."""
  if which == "all":
    return nnx.Param
  last = len(model.bases.layers) - 1

  def moves(path, value):
    if not isinstance(value, nnx.Param):
      return False
    return path[0] == "linear" or (which == "output" and tuple(path[:3]) == ("bases", "layers",
                                                                             last))
  return moves


def refine(model: PReFModel, data: UserComparisons, users: np.ndarray, *, rounds: int,
           steps: int, learning_rate: float, l2: float, nonlinear_l2: float,
           params: str) -> None:
  """Refits `model`'s bases and the weights of training users `users`, in place."""
  sub = data.select_users(users)
  a, b = jnp.asarray(sub.a), jnp.asarray(sub.b)
  y, mask = jnp.asarray(sub.label), jnp.asarray(sub.mask, jnp.float32)
  num_pairs = mask.sum()
  per_pair_U = mask.sum(1) / num_pairs  # the training loss's weight penalty counts pairs
  pop_J = model.population_weights[...]

  def nll(logit_UxK):
    return -(losses.bt_log_likelihood(logit_UxK, y) * mask).sum() / num_pairs

  v_UxKxJ = model.phi(a) - model.phi(b)  # phi(a) - phi(b) of the current bases
  for _ in range(rounds):
    graphdef, moving, rest = nnx.split(model, refit_filter(params, model), ...)

    def diffs(params):
      m = nnx.merge(graphdef, params, rest)
      phi_a, phi_b = m.phi(a), m.phi(b)
      size = 0.5 * (((phi_a**2).sum(-1) + (phi_b**2).sum(-1)) * mask).sum() / num_pairs
      return m, phi_a - phi_b, size

    weights_UxJ = model.user_weights[...][users]
    lam_bar_UxJ = loo_posterior_means(v_UxKxJ, y, mask, weights_UxJ)

    def bases_loss(params):  # the weights are constants: only the refit's part of phi moves
      m, v, size = diffs(params)
      value = nll(jnp.einsum("ukj,uj->uk", v, lam_bar_UxJ)) + l2 * size
      return value + nonlinear_l2 * m.nonlinear_l2() if nonlinear_l2 > 0 else value

    nnx.update(model, _fit(bases_loss, moving, steps, learning_rate))
    v_UxKxJ = model.phi(a) - model.phi(b)

    def weights_loss(lam_UxJ):
      return (nll(jnp.einsum("ukj,uj->uk", v_UxKxJ, lam_UxJ))
              + l2 * (per_pair_U * ((lam_UxJ - pop_J)**2).sum(-1)).sum())

    lam_UxJ = _fit(weights_loss, weights_UxJ, steps, learning_rate)
    model.user_weights.set_value(jnp.asarray(model.user_weights[...]).at[users].set(lam_UxJ))
