"""Best-of-N under a personal reward: what a user gets when each method picks for them.

For every held-out user and each of `num_prompts` prompts (fresh sets of N candidate items
drawn from the task's item distribution, the same sets for every user), each method picks
the candidate its reward for that user ranks first; the user's TRUE reward of the pick is
compared with the true best candidate's (the oracle's pick). Regret = true(oracle's pick) -
true(method's pick), averaged per true group. The user's representation comes from their
`eval.num_context` context pairs, as in the reward-accuracy evaluation.

A method's reward of a candidate for a user is its `reward_a` output (VPL: r(s, z) at the
posterior mean; MaxMin: the most probable cluster's reward; BTL: the single reward), or its
logit against a fixed item when it has none (a monotone stand-in for the ranking).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vpl import evaluate, seeding


def candidate_rewards(method, model, context: dict, cands_PxNxD: np.ndarray, *,
                      users_per_call: int = 32) -> np.ndarray:
  """`[U, P, N]` each user's reward (per the method) of every candidate."""
  graphdef, params = nnx.split(model)
  num_prompts, num_cands, dim = cands_PxNxD.shape
  flat = cands_PxNxD.reshape(1, -1, dim)

  @jax.jit
  def run(params, context):
    users = context["a"].shape[0]
    targets = dict(a=jnp.broadcast_to(flat, (users,) + flat.shape[1:]),
                   b=jnp.zeros((users,) + flat.shape[1:], jnp.float32))
    logits, aux = method.predict(nnx.merge(graphdef, params), context, targets)
    return aux.get("reward_a", logits)

  out = []
  num_users = context["a"].shape[0]
  for start in range(0, num_users, users_per_call):
    rows = slice(start, start + users_per_call)
    out.append(np.asarray(run(params, {k: v[rows] for k, v in context.items()})))
  return np.concatenate(out).reshape(num_users, num_prompts, num_cands)


def report(config: ml_collections.ConfigDict, exp, models: dict) -> dict:
  """results.json's `best_of_n`: per method, the mean true reward and regret per group."""
  task, heldout = exp.task, exp.evaluated
  if task is None or task.true_reward is None:
    raise ValueError("best_of_n.enabled needs a synthetic task with known rewards (data.source "
                     "= pets, ufp, ...); set best_of_n.enabled = False for this data.")
  b = config.best_of_n
  rng = seeding.rng(config.seed, "best_of_n")
  cands = rng.standard_normal((b.num_prompts, b.num_candidates, heldout.feature_dim)).astype(
      np.float32)
  true_GxPxN = np.stack([task.true_reward(cands, k) for k in range(task.num_groups)])
  true_UxPxN = true_GxPxN[heldout.group]
  best_UxP = true_UxPxN.max(-1)
  context = evaluate.gather_context(heldout, exp.context_idx, exp.context_weight)
  groups = range(task.num_groups)

  def summarise(choice_UxP):
    got_UxP = np.take_along_axis(true_UxPxN, choice_UxP[..., None], -1)[..., 0]
    regret_U = (best_UxP - got_UxP).mean(-1)
    per = {str(g): float(regret_U[heldout.group == g].mean()) for g in groups}
    return dict(regret=per, worst_group_regret=max(per.values()),
                mean_regret=float(regret_U.mean()),
                true_reward={str(g): float(got_UxP[heldout.group == g].mean())
                             for g in groups})

  out = dict(num_prompts=b.num_prompts, num_candidates=b.num_candidates,
             num_users=heldout.num_users, methods={"oracle": summarise(true_UxPxN.argmax(-1))})
  for name, (method, model) in models.items():
    out["methods"][name] = summarise(candidate_rewards(method, model, context, cands).argmax(-1))
  if {"btl", "vpl"} <= set(out["methods"]):
    btl, vpl = out["methods"]["btl"]["regret"], out["methods"]["vpl"]["regret"]
    # The oracle's possible improvement over BTL in group g is BTL's regret there.
    out["vpl_regret_over_btl_regret"] = {g: vpl[g] / max(btl[g], 1e-12) for g in btl}
  return out
