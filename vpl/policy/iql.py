"""Implicit Q-learning of a condition-conditioned policy from offline transitions.

IQL (Kostrikov et al. 2021, arXiv:2110.06169; docs/policy.md) never queries the policy on
actions outside the data. Per batch of transitions (s, a, s') with a user condition c and
that user's relabelled reward r:
- value: L_V = E[ |tau - 1(u < 0)| u^2 ], u = min_i Q_target,i(s, a, c) - V(s, c): an upper
  expectile of the data's Q-values, an in-sample stand-in for max_a Q;
- critic: L_Q = sum_i E[ (r + gamma V(s', c) - Q_i(s, a, c))^2 ] (time-limit episodes: no
  terminal state), targets Polyak-averaged;
- actor: advantage-weighted regression,
  L_pi = -E[ min(exp(beta (Q_target - V)), 100) log pi(a | s, c) ].
The whole run is one jitted `lax.scan` over steps; the step is pure (parameters in, out).
Shape suffixes: B batch, M transitions, U users, C condition width.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vpl.models.mlp import MLP

MAX_WEIGHT = 100.0  # cap of the advantage weights


@dataclasses.dataclass(frozen=True)
class IQLHyper:
  hidden: Sequence[int] = (64, 64)
  gamma: float = 0.97
  expectile: float = 0.8
  beta: float = 3.0  # inverse temperature of the advantage weights
  polyak: float = 0.005
  learning_rate: float = 3e-4
  batch_size: int = 256
  num_steps: int = 20000

  def __post_init__(self):
    if not 0 < self.expectile < 1:
      raise ValueError(f"policy.expectile = {self.expectile}; it must lie in (0, 1) "
                       f"(0.5 is plain regression, 0.7-0.9 is IQL's range).")
    if not 0 <= self.gamma < 1:
      raise ValueError(f"policy.gamma = {self.gamma}; use a discount in [0, 1).")
    if self.num_steps < 1 or self.batch_size < 1:
      raise ValueError(f"policy.num_steps = {self.num_steps}, policy.batch_size = "
                       f"{self.batch_size}; both must be positive.")


def expectile_loss(diff: jax.Array, tau: float) -> jax.Array:
  """mean |tau - 1(diff < 0)| diff^2: tau weighs positive residuals, 1 - tau negative ones."""
  weight = jnp.where(diff < 0, 1.0 - tau, tau)
  return (weight * diff**2).mean()


class Critic(nnx.Module):
  """Two Q-heads Q_i(s, a, c) `[..., 2]`."""

  def __init__(self, state_dim: int, cond_dim: int, action_dim: int, hidden, *, rngs):
    width = state_dim + cond_dim + action_dim
    self.q1, self.q2 = MLP(width, hidden, 1, rngs=rngs), MLP(width, hidden, 1, rngs=rngs)

  def __call__(self, s, c, a):
    x = jnp.concatenate([s, c, a], -1)
    return jnp.concatenate([self.q1(x), self.q2(x)], -1)


class Value(nnx.Module):
  def __init__(self, state_dim: int, cond_dim: int, hidden, *, rngs):
    self.v = MLP(state_dim + cond_dim, hidden, 1, rngs=rngs)

  def __call__(self, s, c):
    return self.v(jnp.concatenate([s, c], -1))[..., 0]


class Actor(nnx.Module):
  """A Gaussian policy: mean tanh(MLP(s, c)) in the action box, state-independent std."""

  def __init__(self, state_dim: int, cond_dim: int, action_dim: int, hidden, *, rngs):
    self.mean_net = MLP(state_dim + cond_dim, hidden, action_dim, rngs=rngs)
    self.log_std = nnx.Param(jnp.full((action_dim,), -0.5))

  def mean(self, s, c):
    return jnp.tanh(self.mean_net(jnp.concatenate([s, c], -1)))

  def log_prob(self, s, c, a):
    log_std = jnp.clip(self.log_std[...], -5.0, 1.0)
    z = (a - self.mean(s, c)) / jnp.exp(log_std)
    return (-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)


def _losses(critic, target, value, actor, batch, hyper: IQLHyper):
  s, a, s2, c, r = (batch[k] for k in ("s", "a", "s2", "c", "r"))
  q_target = jax.lax.stop_gradient(target(s, c, a).min(-1))
  v = value(s, c)
  loss_v = expectile_loss(q_target - v, hyper.expectile)
  backup = jax.lax.stop_gradient(r + hyper.gamma * value(s2, c))
  loss_q = ((critic(s, c, a) - backup[:, None]) ** 2).mean(0).sum()
  weight = jnp.minimum(jnp.exp(hyper.beta * jax.lax.stop_gradient(q_target - v)), MAX_WEIGHT)
  loss_pi = -(weight * actor.log_prob(s, c, a)).mean()
  return loss_v, loss_q, loss_pi


def make_state(key: jax.Array, cond_dim: int, hyper: IQLHyper, state_dim: int = 2,
               action_dim: int = 2):
  """`(graphdefs, state)`: the networks' structure, and the parameters and optimiser states."""
  k1, k2, k3 = jax.random.split(key, 3)
  nets = dict(critic=Critic(state_dim, cond_dim, action_dim, hyper.hidden,
                            rngs=nnx.Rngs(k1)),
              value=Value(state_dim, cond_dim, hyper.hidden, rngs=nnx.Rngs(k2)),
              actor=Actor(state_dim, cond_dim, action_dim, hyper.hidden, rngs=nnx.Rngs(k3)))
  graphdefs, params = {}, {}
  for name, net in nets.items():
    graphdefs[name], params[name] = nnx.split(net)
  params["target"] = params["critic"]
  tx = optax.adam(hyper.learning_rate)
  opt = {n: tx.init(params[n]) for n in ("critic", "value", "actor")}
  return graphdefs, dict(params=params, opt=opt)


def train_step(state, batch, *, graphdefs, hyper: IQLHyper):
  """One IQL update of value, critic and actor (and the Polyak target); pure.

  The three losses share one gradient call: each depends on its own network's parameters
  only (the others enter through stop_gradient), so the gradient of their sum is each
  loss's gradient for its own network.
  """
  p = state["params"]
  merge = lambda name, params: nnx.merge(graphdefs[name], params)
  trained = ("value", "critic", "actor")

  def total(params):
    lv, lq, lpi = _losses(merge("critic", params["critic"]), merge("critic", p["target"]),
                          merge("value", params["value"]), merge("actor", params["actor"]),
                          batch, hyper)
    return lv + lq + lpi, dict(loss_v=lv, loss_q=lq, loss_pi=lpi)

  grads, metrics = jax.grad(total, has_aux=True)({n: p[n] for n in trained})
  tx = optax.adam(hyper.learning_rate)
  new_params, new_opt = dict(p), {}
  for name in trained:
    updates, new_opt[name] = tx.update(grads[name], state["opt"][name], p[name])
    new_params[name] = optax.apply_updates(p[name], updates)
  new_params["target"] = optax.incremental_update(new_params["critic"], p["target"],
                                                  hyper.polyak)
  return dict(params=new_params, opt=new_opt), metrics


def sample_batch(key: jax.Array, data: dict, batch_size: int) -> dict:
  """Transitions of random users: `data` holds `states`, `actions`, `next_states` `[M, 2]`,
  `cond` `[U, C]` and the relabelled `rewards` `[U, M]`."""
  k_user, k_step = jax.random.split(key)
  user = jax.random.randint(k_user, (batch_size,), 0, data["cond"].shape[0])
  idx = jax.random.randint(k_step, (batch_size,), 0, data["states"].shape[0])
  return dict(s=data["states"][idx], a=data["actions"][idx], s2=data["next_states"][idx],
              c=data["cond"][user], r=data["rewards"][user, idx])


def train(key: jax.Array, data: dict, hyper: IQLHyper):
  """Trains IQL for `hyper.num_steps` steps in one jitted scan.

  Returns:
    `(actor, metrics)`: the trained actor (an NNX module) and the last 10% of steps' mean
    losses.
  """
  k_init, k_steps = jax.random.split(key)
  graphdefs, state = make_state(k_init, data["cond"].shape[1], hyper)

  @jax.jit
  def run(state, data, key):
    def one(state, step):
      batch = sample_batch(jax.random.fold_in(key, step), data, hyper.batch_size)
      return train_step(state, batch, graphdefs=graphdefs, hyper=hyper)
    return jax.lax.scan(one, state, jnp.arange(hyper.num_steps))

  state, metrics = run(state, data, k_steps)
  tail = max(1, hyper.num_steps // 10)
  summary = {k: float(v[-tail:].mean()) for k, v in jax.device_get(metrics).items()}
  return nnx.merge(graphdefs["actor"], state["params"]["actor"]), summary
