"""The maze environment, IQL, relabelling, best-of-N and the policy config, by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs import policy as policy_config
from vpl import best_of_n, configs
from vpl.data import maze, tasks
from vpl.envs import maze as env
from vpl.models import latent_atoms
from vpl.models.vpl import VPLModel
from vpl.policy import iql, relabel
from vpl.policy.evaluate import score_rollouts

WALL = np.array([[0.5, -1.0, 0.5, 1.0]], np.float32)  # a vertical wall at x = 0.5


def _spec(**kwargs):
  return env.MazeSpec(WALL, np.array([[0.8, 0.0], [-0.8, 0.0]], np.float32), **kwargs)


def test_a_free_step_moves_by_step_size_times_the_clipped_action():
  state = env.State(jnp.array([0.0, 0.0]), jnp.array(0))
  nxt = env.step(state, jnp.array([0.5, -3.0]), _spec())
  np.testing.assert_allclose(nxt.pos, [0.05, -0.1], atol=1e-7)  # -3 clipped to -1
  assert int(nxt.t) == 1


def test_a_step_into_a_wall_does_not_pass_it():
  state = env.State(jnp.array([0.45, 0.2]), jnp.array(0))
  nxt = env.step(state, jnp.array([1.0, 0.0]), _spec())  # would land at x = 0.55
  np.testing.assert_allclose(nxt.pos, [0.45, 0.2])
  # Along the wall, and away from it, the agent moves.
  np.testing.assert_allclose(env.step(state, jnp.array([0.0, 1.0]), _spec()).pos, [0.45, 0.3],
                             atol=1e-7)
  np.testing.assert_allclose(env.step(state, jnp.array([-1.0, 0.0]), _spec()).pos,
                             [0.35, 0.2], atol=1e-7)


def test_no_sequence_of_steps_crosses_a_wall():
  spec = _spec()
  key = jax.random.key(0)
  actions = jax.random.uniform(key, (200, 64, 2), minval=-1, maxval=1)
  start = env.State(jnp.full((64, 2), 0.3) * jnp.array([1.0, 0.0]), jnp.zeros(64, jnp.int32))

  def one(state, a):
    nxt = jax.vmap(lambda st, ac: env.step(st, ac, spec))(state, a)
    return nxt, nxt.pos

  _, pos = jax.lax.scan(one, start, actions)
  assert float(pos[..., 0].max()) < 0.5  # started left of the wall, never got past it
  assert float(jnp.abs(pos).max()) <= 1.0  # and never left the box


def test_the_box_edge_stops_the_agent():
  state = env.State(jnp.array([0.95, -0.98]), jnp.array(0))
  nxt = env.step(state, jnp.array([1.0, -1.0]), env.MazeSpec(np.zeros((0, 4), np.float32),
                                                              np.zeros((1, 2), np.float32)))
  np.testing.assert_allclose(nxt.pos, [1.0, -1.0])


def test_numpy_and_jax_dynamics_agree():
  rng = np.random.default_rng(0)
  s = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
  a = rng.uniform(-1, 1, (500, 2)).astype(np.float32)
  walls = maze.walls(4)
  np.testing.assert_allclose(maze.move(s, a, walls),
                             np.asarray(jax.jit(lambda s, a: maze.move(s, a, walls, xp=jnp))(
                                 s, a)), atol=1e-6)


def test_the_layout_puts_one_room_per_goal():
  goals, walls = maze.goals(2), maze.walls(2)
  np.testing.assert_allclose(goals, [[0.7, 0.0], [-0.7, 0.0]], atol=1e-6)
  # The two walls are the vertical segments x = 0 outside |y| < 0.3.
  np.testing.assert_allclose(walls[:, [0, 2]], 0.0, atol=1e-6)
  assert maze.crosses_wall(goals[:1], goals[1:], walls)[0] == False  # noqa: E712 (open centre)
  assert maze.crosses_wall(np.array([[0.5, 0.6]]), np.array([[-0.5, 0.6]]), walls)[0]


def test_success_is_within_the_radius_of_the_own_goal_before_the_horizon():
  goal = jnp.array([0.8, 0.0])
  near = jnp.array([[0.0, 0.0], [0.5, 0.0], [0.75, 0.05], [0.4, 0.0]])  # 0.0707 from the goal
  far = jnp.array([[0.0, 0.0], [0.5, 0.0], [0.65, 0.0], [0.6, 0.0]])  # closest 0.15
  assert bool(env.success(near, goal, 0.1)) and not bool(env.success(far, goal, 0.1))
  assert bool(env.success(far, goal, 0.2))
  spec = _spec(success_radius=0.1)
  pos = jnp.stack([near, near])
  scores = score_rollouts(pos, np.array([0, 1]), spec)
  assert scores["success"] == {"0": 1.0, "1": 0.0}  # user 1's goal is at (-0.8, 0)
  np.testing.assert_allclose(scores["return"]["0"],
                             -(0.3 + np.hypot(0.05, 0.05) + 0.4), rtol=1e-5)


def test_reset_is_in_the_start_square_and_rollout_vmaps():
  spec = env.MazeSpec.make(2, horizon=7)
  states = jax.vmap(lambda k: env.reset(k, spec))(jax.random.split(jax.random.key(1), 100))
  assert float(jnp.abs(states.pos).max()) <= spec.start_half_width
  right = lambda s, c: jnp.array([1.0, 0.0]) * c[0]
  pos = env.rollout(right, jax.random.key(0), jnp.array([[1.0], [0.0]]), spec)
  assert pos.shape == (2, 8, 2)
  np.testing.assert_allclose(pos[0, -1, 0] - pos[0, 0, 0], 0.7, atol=1e-6)
  np.testing.assert_allclose(pos[1, -1], pos[1, 0])


def test_explore_returns_consistent_transitions():
  spec = env.MazeSpec.make(2)
  traj = env.explore(jax.random.key(0), spec, 16, 10)
  assert traj["states"].shape == (16, 10, 2)
  np.testing.assert_allclose(traj["states"][:, 1:], traj["next_states"][:, :-1])
  np.testing.assert_allclose(traj["next_states"],
                             maze.move(np.asarray(traj["states"]), np.asarray(traj["actions"]),
                                       maze.walls(2)), atol=1e-6)


def test_expectile_loss_against_hand_values():
  diff = jnp.array([2.0, -1.0, 0.5, -3.0])
  # tau = 0.8: positive residuals weigh 0.8, negative 0.2.
  hand = (0.8 * 4 + 0.2 * 1 + 0.8 * 0.25 + 0.2 * 9) / 4
  np.testing.assert_allclose(iql.expectile_loss(diff, 0.8), hand, rtol=1e-6)
  # tau = 0.5 is half the mean squared error.
  np.testing.assert_allclose(iql.expectile_loss(diff, 0.5), 0.5 * (4 + 1 + 0.25 + 9) / 4,
                             rtol=1e-6)


def test_the_expectile_minimiser_is_an_upper_expectile():
  x = jnp.array([0.0, 1.0, 2.0, 10.0])
  grid = jnp.linspace(0, 10, 10001)
  loss = jax.vmap(lambda v: iql.expectile_loss(x - v, 0.9))(grid)
  best = float(grid[jnp.argmin(loss)])
  assert best > float(x.mean())  # tau > 0.5 leans towards the high values
  # First-order condition: 0.9 sum_{x > v} (x - v) = 0.1 sum_{x < v} (v - x).
  above, below = x[x > best], x[x < best]
  np.testing.assert_allclose(0.9 * (above - best).sum(), 0.1 * (best - below).sum(), atol=0.02)


def test_bad_hyperparameters_name_the_field():
  with pytest.raises(ValueError, match="policy.expectile"):
    iql.IQLHyper(expectile=1.5)
  with pytest.raises(ValueError, match="policy.gamma"):
    iql.IQLHyper(gamma=1.0)


def test_one_iql_step_is_pure_and_moves_every_network():
  hyper = iql.IQLHyper(hidden=(8,), batch_size=4, num_steps=1)
  graphdefs, state = iql.make_state(jax.random.key(0), 3, hyper)
  batch = dict(s=jnp.ones((4, 2)), a=jnp.zeros((4, 2)), s2=jnp.ones((4, 2)),
               c=jnp.ones((4, 3)), r=jnp.arange(4.0))
  step = jax.jit(lambda st, b: iql.train_step(st, b, graphdefs=graphdefs, hyper=hyper))
  new, metrics = step(state, batch)
  again, _ = step(state, batch)
  changed = lambda a, b: any(bool(jnp.any(x != y)) for x, y in zip(
      jax.tree.leaves(a), jax.tree.leaves(b)))
  for name in ("value", "critic", "actor", "target"):
    assert changed(new["params"][name], state["params"][name]), name
  assert not changed(new["params"], again["params"])
  assert set(metrics) == {"loss_v", "loss_q", "loss_pi"}


def test_relabelling_uses_the_given_z():
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=3, decoder="product",
                   rngs=nnx.Rngs(0))
  states = jax.random.uniform(jax.random.key(1), (50, 2), minval=-1, maxval=1)
  reference = jax.random.uniform(jax.random.key(2), (64, 2), minval=-1, maxval=1)
  z = jnp.array([[1.0, 0.0, -1.0], [-2.0, 0.5, 0.3]])
  out = relabel.relabel(relabel.reward_fn("vpl", model, None), z, states, reference)
  for u in range(2):
    r, r_ref = model.reward(states, z[u]), model.reward(reference, z[u])
    np.testing.assert_allclose(out[u], (r - r_ref.mean()) / r_ref.std(), rtol=1e-4, atol=1e-5)
  assert float(jnp.abs(out[0] - out[1]).max()) > 1e-2  # another z, other rewards


def test_relabelling_with_atoms_uses_the_posterior_mean_reward():
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=3, decoder="product_linear",
                   rngs=nnx.Rngs(0))
  atoms = jax.random.normal(jax.random.key(3), (5, 3))
  latent_atoms.set_atoms(model, atoms)
  f = lambda k, *s: jax.random.normal(jax.random.key(k), s)
  context = dict(a=f(4, 2, 6, 2), b=f(5, 2, 6, 2), label=jnp.array([[1.0] * 6, [0.0] * 6]))
  _, aux = model(context, dict(a=f(6, 2, 1, 2), b=f(7, 2, 1, 2)))
  w = np.exp(np.asarray(latent_atoms.log_posterior(model, context)))
  states = f(8, 40, 2)
  fn = relabel.reward_fn("vpl", model, None)
  for u in range(2):
    by_hand = sum(w[u, m] * model.reward(states, atoms[m]) for m in range(5))
    np.testing.assert_allclose(fn(states, jnp.asarray(aux["user"][u])), by_hand, rtol=1e-4,
                               atol=1e-5)
  assert float(np.abs(w[0] - w[1]).max()) > 1e-2  # the two contexts weigh the atoms apart


def test_oracle_and_maxmin_relabel_with_the_users_goal_or_cluster():
  spec = env.MazeSpec.make(2)
  states = jnp.array([[0.7, 0.0], [-0.7, 0.0], [0.0, 0.0]])
  fn = relabel.reward_fn("oracle", None, spec)
  np.testing.assert_allclose(fn(states, jnp.array([1.0, 0.0])), [0.0, -1.4, -0.7], atol=1e-6)
  np.testing.assert_allclose(fn(states, jnp.array([0.0, 1.0])), [-1.4, 0.0, -0.7], atol=1e-6)

  class TwoRewards:
    def rewards(self, s):
      return jnp.stack([s[:, 0], 10 * s[:, 1]], -1)

  fn = relabel.reward_fn("maxmin", TwoRewards(), spec)
  np.testing.assert_allclose(fn(jnp.array([[1.0, 2.0]]), jnp.array([0.0, 1.0])), [20.0])


def test_unknown_policy_method_is_named():
  with pytest.raises(ValueError, match="dpl_mv"):
    relabel.reward_fn("dpl_mv", None, env.MazeSpec.make(2))


def test_maze_task_labels_states_by_each_groups_distance():
  task = tasks.generate("maze", dict(num_goals=2, num_users=20, pairs_per_user=8,
                                     num_trajectories=10, horizon=5), seed=0)
  d = task.data
  goal = maze.goals(2)[d.group][:, None]
  dist_a, dist_b = np.linalg.norm(d.a - goal, axis=-1), np.linalg.norm(d.b - goal, axis=-1)
  ties = np.isclose(dist_a, dist_b)  # the same state drawn twice: a coin flip
  np.testing.assert_array_equal(d.label[~ties], (dist_a < dist_b)[~ties].astype(np.float32))
  assert (~ties).mean() > 0.9


def test_policy_config_loads_for_both_goal_counts():
  for goals in (2, 4):
    c = policy_config.get_config(f"goals={goals}")
    assert c.policy.enabled and c.maxmin.num_clusters == goals
    assert c.data.source == "maze" and c.data.kwargs.num_goals == goals
  with pytest.raises(ValueError, match="goals"):
    policy_config.get_config("goals=3")


def test_best_of_n_picks_the_argmax_of_each_users_reward():
  class Linear(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.array([1.0, -1.0]))

  model = Linear()

  def predict(model, context, targets):
    # A "personal" reward: the user's first context item's sign flips the weight.
    sign = jnp.sign(context["a"][:, :1, :1])
    r = (targets["a"] * model.w[...]).sum(-1) * sign[..., 0]
    return r, dict(reward_a=r)

  class M:
    pass
  method = M()
  method.predict = predict
  cands = np.array([[[1.0, 0.0], [0.0, 1.0], [3.0, -1.0]]], np.float32)  # [P=1, N=3, D=2]
  context = dict(a=np.array([[[1.0, 0.0]], [[-1.0, 0.0]]], np.float32),
                 b=np.zeros((2, 1, 2), np.float32), label=np.ones((2, 1), np.float32))
  r = best_of_n.candidate_rewards(method, model, context, cands)
  np.testing.assert_allclose(r, [[[1.0, -1.0, 4.0]], [[-1.0, 1.0, -4.0]]])
  assert r.argmax(-1).tolist() == [[2], [1]]


def _tiny(**fields):
  from experiments.configs import tiny
  return configs.with_overrides(tiny.get_config(), {
      "maxmin.restarts": 1, "maxmin.max_rounds": 2, "maxmin.steps_per_round": 50, **fields})


def test_a_tiny_policy_run_writes_the_policy_section(tmp_path):
  from vpl import experiment
  config = _tiny(**{"data.source": "maze", "data.kwargs": dict(
      num_goals=2, num_users=60, pairs_per_user=16, num_trajectories=20, horizon=10),
      "methods": ("btl", "vpl", "maxmin"), "eval.selection.enabled": False,
      "policy.enabled": True, "policy.num_steps": 20, "policy.num_trajectories": 20,
      "policy.horizon": 10, "policy.num_users": 8, "policy.hidden": (8,)})
  results = experiment.train_and_evaluate(config, str(tmp_path))
  assert set(results["policy"]) == {"oracle", "vpl", "maxmin", "btl"}
  for section in results["policy"].values():
    assert set(section["success"]) == {"0", "1"} == set(section["return"])
    assert all(0 <= v <= 1 for v in section["success"].values())
  assert (tmp_path / "trajectories.png").exists()


def test_a_tiny_best_of_n_run_reports_regret_per_group(tmp_path):
  from vpl import experiment
  config = _tiny(**{"data.source": "ufp", "data.kwargs": dict(
      num_types=2, dim=8, num_users=60, pairs_per_user=12, pool_pairs=400),
      "methods": ("btl", "vpl"), "eval.selection.enabled": False, "eval.reward_maps": False,
      "best_of_n.enabled": True, "best_of_n.num_prompts": 5, "best_of_n.num_candidates": 4})
  sec = experiment.train_and_evaluate(config, str(tmp_path))["best_of_n"]
  oracle = sec["methods"]["oracle"]
  assert oracle["regret"] == {"0": 0.0, "1": 0.0}
  for name in ("btl", "vpl"):
    assert all(v >= 0 for v in sec["methods"][name]["regret"].values())
  assert set(sec["vpl_regret_over_btl_regret"]) == {"0", "1"}


def test_accuracy_regret_correlation_and_claims_by_hand():
  from vpl.policy import report
  run = dict(seed=0, methods={"btl": dict(heldout_accuracy=0.6), "vpl": dict(
      heldout_accuracy=0.9), "maxmin": dict(heldout_accuracy=0.95)},
      best_of_n=dict(methods={"oracle": dict(mean_regret=0.0), "btl": dict(mean_regret=1.0),
                              "vpl": dict(mean_regret=0.25), "maxmin": dict(mean_regret=0.125)},
                     vpl_regret_over_btl_regret={"0": 0.05, "1": 0.2}))
  c = report.accuracy_regret_correlation([run])
  assert c["points"] == 3 and c["spearman"] == pytest.approx(-1.0)
  acc, reg = np.array([0.6, 0.9, 0.95]), np.array([1.0, 0.25, 0.125])
  assert c["pearson"] == pytest.approx(np.corrcoef(acc, reg)[0, 1])
  [(_, ok, _)] = report.best_of_n_claims([run])
  assert not ok  # group 1's 0.2 is above 10%
  policy = {"oracle": dict(success={"0": 1.0, "1": 1.0}), "vpl": dict(
      success={"0": 0.95, "1": 0.85}), "btl": dict(success={"0": 0.9, "1": 0.0})}
  claims = dict((c[0].split(": ", 1)[1], c[1]) for c in report.policy_claims(
      [dict(seed=0, policy=policy)]))
  assert claims == {"VPL success >= 0.9 x oracle's in both groups": False,
                    "BTL's policy succeeds for at most one group": True}
