"""Policies trained on each method's personal rewards, scored by the users' true goals.

`evaluate_all(config, exp, models)` builds the offline data once (exploratory trajectories
on device), then for every method of `config.policy.methods`:
1. represents a subset of training users (`policy.num_users`) from their context pairs, and
   relabels every transition with each of these users' z-scored reward (`vpl.policy.relabel`);
2. trains one condition-conditioned IQL policy on all of them (`vpl.policy.iql`);
3. represents every held-out user from their `eval.num_context` context pairs (the same
   pairs reward accuracy uses), rolls the policy out from the start square, and records per
   true group the success rate (reached their own goal) and the mean undiscounted true
   return, and how close to their goal they came on average (`closest`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vpl import seeding
from vpl.data.comparisons import split_context_target
from vpl.envs import maze as maze_env
from vpl.policy import iql, relabel


def hyper_from(config: ml_collections.ConfigDict) -> iql.IQLHyper:
  p = config.policy
  return iql.IQLHyper(hidden=tuple(p.hidden), gamma=p.gamma, expectile=p.expectile,
                      beta=p.beta, polyak=p.polyak, learning_rate=p.learning_rate,
                      batch_size=p.batch_size, num_steps=p.num_steps)


def spec_from(config: ml_collections.ConfigDict, num_goals: int) -> maze_env.MazeSpec:
  p = config.policy
  return maze_env.MazeSpec.make(num_goals, horizon=p.horizon, success_radius=p.success_radius)


def offline_data(config: ml_collections.ConfigDict, spec: maze_env.MazeSpec) -> dict:
  """`states`, `actions`, `next_states` `[M, 2]` of the exploratory policy."""
  p = config.policy
  traj = maze_env.explore(jax.random.key(seeding.derive(config.seed, "policy", "data")), spec,
                          p.num_trajectories, p.horizon)
  return {k: v.reshape(-1, 2) for k, v in traj.items()}


def score_rollouts(pos_NxTx2: np.ndarray, group_N: np.ndarray, spec: maze_env.MazeSpec
                   ) -> dict:
  """Success rate and mean true return (sum over steps of -distance to own goal) per group."""
  goal_Nx2 = jnp.asarray(spec.goals)[group_N]
  ok_N = jax.vmap(maze_env.success, in_axes=(0, 0, None))(
      pos_NxTx2, goal_Nx2, spec.success_radius)
  ret_N = maze_env.reward(pos_NxTx2[:, 1:], goal_Nx2[:, None]).sum(-1)
  ok_N, ret_N = np.asarray(ok_N), np.asarray(ret_N)
  closest_N = np.asarray(-maze_env.reward(pos_NxTx2, goal_Nx2[:, None]).max(-1))
  groups = range(len(spec.goals))
  return dict(success={str(g): float(ok_N[group_N == g].mean()) for g in groups},
              **{"return": {str(g): float(ret_N[group_N == g].mean()) for g in groups}},
              closest={str(g): float(closest_N[group_N == g].mean()) for g in groups},
              num_users={str(g): int((group_N == g).sum()) for g in groups})


def train_policy(name: str, config, exp, models: dict, spec, data: dict, reference):
  """`(actor, info)`: the IQL policy of method `name` trained on its relabelled rewards."""
  p = config.policy
  method, model = models.get(name, (None, None))
  rng = seeding.rng(config.seed, "policy", "users")
  rows = np.sort(rng.choice(exp.train.num_users, min(p.num_users, exp.train.num_users),
                            replace=False))
  users = exp.train.select_users(rows)
  context_idx, _ = split_context_target(users, config.eval.num_context,
                                        seeding.derive(config.seed, "policy", "context"))
  cond = relabel.representations(name, method, model, users, context_idx, len(spec.goals))
  start = time.perf_counter()
  rewards = relabel.relabel(relabel.reward_fn(name, model, spec), cond, data["next_states"],
                            reference)
  key = jax.random.key(seeding.derive(config.seed, "policy", "train"))
  actor, losses = iql.train(key, dict(data, cond=jnp.asarray(cond), rewards=rewards),
                            hyper_from(config))
  jax.block_until_ready(actor.log_std[...])
  info = dict(train_seconds=time.perf_counter() - start, num_policy_users=len(rows),
              cond_dim=int(cond.shape[1]), **losses)
  return actor, info


def reference_states(config: ml_collections.ConfigDict) -> jax.Array:
  """The 1,024 states (uniform over the box) each user's reward is z-scored against."""
  return jax.random.uniform(jax.random.key(seeding.derive(config.seed, "policy", "ref")),
                            (1024, 2), minval=-1.0, maxval=1.0)


def heldout_rollouts(name: str, actor, config, exp, models: dict, spec) -> np.ndarray:
  """`[N, T + 1, 2]` one episode of every held-out user under `actor`, c from their context."""
  method, model = models.get(name, (None, None))
  cond = relabel.representations(name, method, model, exp.evaluated, exp.context_idx,
                                 len(spec.goals))
  key = jax.random.key(seeding.derive(config.seed, "policy", "eval"))
  return np.asarray(jax.jit(lambda c: maze_env.rollout(actor.mean, key, c, spec))(
      jnp.asarray(cond)))


def evaluate_all(config: ml_collections.ConfigDict, exp, models: dict) -> tuple[dict, dict]:
  """`(policy section of results.json, {method: (positions [N, T+1, 2], group [N])})`."""
  spec = spec_from(config, exp.task.num_groups)
  data = offline_data(config, spec)
  reference = reference_states(config)
  out, paths = {}, {}
  for name in config.policy.methods:
    if name != "oracle" and name not in models:
      raise ValueError(f"policy.methods has {name!r}, which config.methods does not train "
                       f"({list(config.methods)}); add it there or drop it here.")
    actor, info = train_policy(name, config, exp, models, spec, data, reference)
    pos = heldout_rollouts(name, actor, config, exp, models, spec)
    out[name] = dict(score_rollouts(pos, exp.evaluated.group, spec), **info)
    paths[name] = (pos, exp.evaluated.group)
  return out, paths
