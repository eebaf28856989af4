"""A new user's posterior after a few answers, for every method behind one interface.

(docs/methods.md, 'Asking a new user'.) `for_method(method, config)` returns a `Posterior`:
pure functions of the trained model and the pairs asked so far (`context`: `a`, `b` `[B, N,
D]`, `label`, `mask` `[B, N]`; unasked slots are masked and hold no label):
- `infer(model, context) -> info`: the posterior. VPL: q(z | answers) by the encoder, or the
  prior p(z) when nothing was asked (an empty set is never encoded); MaxMin: the cluster
  posterior p(k | answers), pi when nothing was asked; PReF: the MAP lambda (Newton, refit
  from the prior at every call) and its Laplace covariance, the prior with no answers.
- `predict(model, info, context, pairs, key) -> P(a preferred) [B, C]`. VPL: the posterior
  predictive E_q[sigma(r(a, z) - r(b, z))] from `adapt.num_samples` samples of q
  (`adapt.predictive = 'samples'`), or sigma at z = E_q[z] ('mean'); MaxMin: sum_k p(k)
  sigma(d_k); PReF: sigma at the MAP lambda; any other method: its own `predict` (one
  reward for everyone ignores the answers).
- `reward(model, info, context, items [B, M, D]) -> [B, M]` and `representation(info)`.
Optional, what strategies need (`vpl.strategies`): `spread(info) -> [B]` (VPL: mean posterior
variance of z per dimension; MaxMin: entropy of p(k) in nats; PReF: mean Laplace variance of
lambda per basis), `hypotheses(model, info, pairs, key) -> (w [B, S], p [B, S, C])` (a
weighted set of hypotheses with each one's P(a preferred): VPL S samples of q with weights
1/S, MaxMin the K clusters weighted by p(k)), `question_scores` (PReF's D-optimal rule).

`Fitted` binds a posterior to a trained model with every call jitted; `UserState` is what a
strategy sees. Shape suffixes: B users, N asked pairs, C candidate or target pairs, S samples
or hypotheses, D features, L latent dimensions, K clusters, J bases, M items.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vpl.method import Method
from vpl.models import pref as pref_model
from vpl.models.vpl import ProductDecoder

PREDICTIVES = ("samples", "mean")


@dataclasses.dataclass(frozen=True)
class Posterior:
  """A method's user posterior as pure functions (see the module docstring)."""
  name: str
  infer: Callable[..., dict]
  predict: Callable[..., jax.Array]
  reward: Callable[..., jax.Array]
  representation: Callable[[dict], dict]
  spread: Optional[Callable[[dict], jax.Array]] = None
  hypotheses: Optional[Callable[..., tuple[jax.Array, jax.Array]]] = None
  question_scores: Optional[Callable[..., jax.Array]] = None


def _vpl_rewards(model, s_BxCxD: jax.Array, z_BxSxL: jax.Array) -> jax.Array:
  """r(s_c, z_s) `[B, S, C]`; the product decoder embeds each item once, not once per z."""
  decoder = model.decoder
  if isinstance(decoder, ProductDecoder):
    return jnp.einsum("bcw,bsw->bsc", decoder.embed(s_BxCxD), decoder.user(z_BxSxL))
  b, c, d = s_BxCxD.shape
  s_BxSxCxD = jnp.broadcast_to(s_BxCxD[:, None], (b, z_BxSxL.shape[1], c, d))
  return model.reward(s_BxSxCxD, z_BxSxL[:, :, None, :])


def vpl(num_samples: int, predictive: str) -> Posterior:
  """VPL's q(z | answers) (the prior with no answers) and its posterior predictive."""
  if predictive not in PREDICTIVES:
    raise ValueError(f"adapt.predictive = {predictive!r}; choose 'samples' (E_q sigma, "
                     f"calibrated) or 'mean' (sigma at z = E_q[z]).")
  if num_samples < 1:
    raise ValueError(f"adapt.num_samples = {num_samples}; use at least 1 (64 by default).")

  def infer(model, context):
    mu, log_var = model.posterior(context)  # tempered when the context has a reliability
    prior_mu, prior_log_var = model.prior()
    asked_Bx1 = context["mask"].any(-1, keepdims=True)
    return dict(mu=jnp.where(asked_Bx1, mu, prior_mu),
                log_var=jnp.where(asked_Bx1, log_var, prior_log_var))

  def hypotheses(model, info, pairs, key):
    mu, std = info["mu"], jnp.exp(0.5 * info["log_var"])
    eps_BxSxL = jax.random.normal(key, (mu.shape[0], num_samples, mu.shape[1]), mu.dtype)
    z_BxSxL = mu[:, None] + std[:, None] * eps_BxSxL
    diff = _vpl_rewards(model, pairs["a"], z_BxSxL) - _vpl_rewards(model, pairs["b"], z_BxSxL)
    return jnp.full(z_BxSxL.shape[:2], 1.0 / num_samples), jax.nn.sigmoid(diff)

  def predict(model, info, context, pairs, key):
    del context
    if predictive == "samples":
      w_BxS, p_BxSxC = hypotheses(model, info, pairs, key)
      return jnp.einsum("bs,bsc->bc", w_BxS, p_BxSxC)
    z_Bx1xL = info["mu"][:, None]
    return jax.nn.sigmoid(_vpl_rewards(model, pairs["a"], z_Bx1xL)[:, 0]
                          - _vpl_rewards(model, pairs["b"], z_Bx1xL)[:, 0])

  def reward(model, info, context, items_BxMxD):
    del context
    return _vpl_rewards(model, items_BxMxD, info["mu"][:, None])[:, 0]

  return Posterior("vpl", infer, predict, reward, lambda info: dict(info),
                   spread=lambda info: jnp.exp(info["log_var"]).mean(-1),
                   hypotheses=hypotheses)


def maxmin() -> Posterior:
  """MaxMin's cluster posterior p(k | answers) with prior pi."""
  def infer(model, context):
    return dict(log_post=model.posterior(context))

  def hypotheses(model, info, pairs, key):
    del key
    diff_BxCxK = model.rewards(pairs["a"]) - model.rewards(pairs["b"])
    return jnp.exp(info["log_post"]), jax.nn.sigmoid(jnp.swapaxes(diff_BxCxK, 1, 2))

  def predict(model, info, context, pairs, key):
    del context
    w_BxK, p_BxKxC = hypotheses(model, info, pairs, key)
    return jnp.einsum("bk,bkc->bc", w_BxK, p_BxKxC)

  def reward(model, info, context, items_BxMxD):
    del context
    k_B = jnp.argmax(info["log_post"], -1)
    return jnp.take_along_axis(model.rewards(items_BxMxD), k_B[:, None, None], -1)[..., 0]

  def spread(info):
    w = jnp.exp(info["log_post"])
    return -jnp.where(w > 0, w * info["log_post"], 0.0).sum(-1)

  return Posterior("maxmin", infer, predict, reward,
                   lambda info: dict(cluster_posterior=jnp.exp(info["log_post"])),
                   spread=spread, hypotheses=hypotheses)


def pref(newton_steps: int) -> Posterior:
  """PReF's posterior: with the Gaussian prior, the MAP lambda (refit by Newton at every call)
  and its Laplace covariance; with the mixture prior (`model.prior_mixture`), the posterior over
  the trained users' lambdas, its mean and covariance."""
  def v_of(model, pairs):
    return model.phi(pairs["a"]) - model.phi(pairs["b"])

  def infer(model, context):
    v_BxNxJ = v_of(model, context)
    mask = context["mask"].astype(v_BxNxJ.dtype)
    atoms_UxJ = model.user_weights[...]

    def gaussian():
      precision = model.prior_precision[...]
      lam_BxJ = pref_model.map_weights(v_BxNxJ, context["label"], model.prior_mean[...],
                                       precision, num_steps=newton_steps, mask_BxN=mask)
      logit = jnp.einsum("bnj,bj->bn", v_BxNxJ, lam_BxJ)
      w_BxN = jax.nn.sigmoid(logit) * jax.nn.sigmoid(-logit) * mask
      neg_hess = jnp.einsum("bn,bni,bnj->bij", w_BxN, v_BxNxJ, v_BxNxJ) + precision
      # log_post is unused with the Gaussian prior (zeros keep both branches' shapes).
      log_post = jnp.zeros(v_BxNxJ.shape[:1] + atoms_UxJ.shape[:1], v_BxNxJ.dtype)
      return dict(lam=lam_BxJ, cov=jnp.linalg.inv(neg_hess), log_post=log_post)

    def mixture():
      log_post = pref_model.atom_posterior(v_BxNxJ, context["label"], atoms_UxJ,
                                           model.atom_log_weight[...], mask)
      post_BxU = jnp.exp(log_post)
      mean_BxJ = post_BxU @ atoms_UxJ
      d_BxUxJ = atoms_UxJ - mean_BxJ[:, None]
      return dict(lam=mean_BxJ, log_post=log_post,
                  cov=jnp.einsum("bu,bui,buj->bij", post_BxU, d_BxUxJ, d_BxUxJ))

    return jax.lax.cond(model.prior_mixture[...] > 0.5, mixture, gaussian)

  def predict(model, info, context, pairs, key):
    del context, key
    v_BxCxJ = v_of(model, pairs)
    return jax.nn.sigmoid(jax.lax.cond(
        model.prior_mixture[...] > 0.5,
        lambda: pref_model.atom_logits(info["log_post"], v_BxCxJ, model.user_weights[...]),
        lambda: jnp.einsum("bcj,bj->bc", v_BxCxJ, info["lam"])))

  def reward(model, info, context, items_BxMxD):
    del context
    return jnp.einsum("bmj,bj->bm", model.phi(items_BxMxD), info["lam"])

  def question_scores(model, info, context, pairs):
    v_seen = v_of(model, context) * context["mask"][..., None]  # unasked rows add nothing
    return jax.vmap(pref_model.question_scores)(info["lam"], v_seen, v_of(model, pairs))

  return Posterior("pref", infer, predict, reward,
                   lambda info: {"lambda": info["lam"], "cov": info["cov"]},
                   spread=lambda info: jnp.diagonal(info["cov"], axis1=1, axis2=2).mean(-1),
                   question_scores=question_scores)


def through_predict(method: Method) -> Posterior:
  """Any other method: its own `predict` given the answers (BTL and DPL ignore them)."""
  def predict(model, info, context, pairs, key):
    del info, key
    return jax.nn.sigmoid(method.predict(model, context, pairs)[0])

  def reward(model, info, context, items_BxMxD):
    del info
    _, aux = method.predict(model, context, dict(a=items_BxMxD, b=items_BxMxD))
    if "reward_a" not in aux:
      raise ValueError(f"method {method.name!r}'s predict returns no reward_a (aux keys "
                       f"{sorted(aux)}); it has no per-item reward to return.")
    return aux["reward_a"]

  return Posterior(method.name, lambda model, context: {}, predict, reward, lambda info: {})


def for_method(method: Method, config: ml_collections.ConfigDict, *, num_samples: int = 64,
               predictive: str = "samples") -> Posterior:
  """The posterior of `method` (VPL's sampling settings come from the arguments)."""
  if method.name == "vpl":
    return vpl(num_samples, predictive)
  if method.name == "maxmin":
    return maxmin()
  if method.name == "pref":
    return pref(config.pref.newton_steps)
  return through_predict(method)


def _spread_after(posterior: Posterior, model, context, pairs) -> jax.Array:
  """`[B, C, 2]`: the posterior's spread were candidate c asked next and answered y = 0, 1."""
  b, n = context["mask"].shape

  def one(cand):  # cand: one candidate per user, a, b [B, D]
    grow = lambda x, new: jnp.concatenate(
        [jnp.broadcast_to(x[:, None], (b, 2) + x.shape[1:]), new[:, :, None]], axis=2)
    side = lambda k: jnp.broadcast_to(cand[k][:, None], (b, 2, cand[k].shape[-1]))
    y_Bx2 = jnp.broadcast_to(jnp.array([0.0, 1.0], context["label"].dtype), (b, 2))
    grown = dict(a=grow(context["a"], side("a")), b=grow(context["b"], side("b")),
                 label=grow(context["label"], y_Bx2), mask=grow(context["mask"],
                                                               jnp.ones((b, 2), bool)))
    flat = {k: v.reshape((2 * b, n + 1) + v.shape[3:]) for k, v in grown.items()}
    return posterior.spread(posterior.infer(model, flat)).reshape(b, 2)

  per_cand = jax.lax.map(one, {k: jnp.swapaxes(pairs[k], 0, 1) for k in ("a", "b")})
  return jnp.swapaxes(per_cand, 0, 1)


class Fitted:
  """A posterior bound to a trained model; every call is jitted (once per shape)."""

  def __init__(self, posterior: Posterior, model: nnx.Module):
    self.posterior, self.model = posterior, model
    graphdef, params = nnx.split(model)

    def jit(fn):
      if fn is None:
        return None
      run = jax.jit(lambda params, *args: fn(nnx.merge(graphdef, params), *args))
      return lambda *args: run(params, *args)

    self.infer = jit(posterior.infer)
    self.predict = jit(posterior.predict)
    self.reward = jit(posterior.reward)
    self.hypotheses = jit(posterior.hypotheses)
    self.question_scores = jit(posterior.question_scores)
    self.spread = None if posterior.spread is None else jax.jit(posterior.spread)
    self.spread_after = None if posterior.spread is None else jit(
        lambda model, context, pairs: _spread_after(posterior, model, context, pairs))


def _missing(what: str, name: str) -> ValueError:
  return ValueError(f"method {name!r} has no {what}; choose a strategy that applies to it "
                    f"(vpl.strategies.APPLIES).")


@dataclasses.dataclass(frozen=True)
class UserState:
  """What a strategy sees of B users: their posterior after the answers so far.

  Attributes:
    fitted: the method's posterior bound to its model.
    context: the pairs asked so far (`a`, `b`, `label`, `mask`); labels only of asked pairs.
    info: `fitted.infer(context)`.
    num_asked: questions asked so far (the same for every user).
  """
  fitted: Fitted
  context: dict
  info: Any
  num_asked: int

  def predict(self, pairs: dict, key: jax.Array) -> np.ndarray:
    """P(a preferred) `[B, C]` of each user's candidate pairs under the posterior."""
    return np.asarray(self.fitted.predict(self.info, self.context, pairs, key))

  def hypotheses(self, pairs: dict, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    if self.fitted.hypotheses is None:
      raise _missing("hypotheses (samples of its user posterior)", self.fitted.posterior.name)
    w, p = self.fitted.hypotheses(self.info, pairs, key)
    return np.asarray(w, np.float64), np.asarray(p, np.float64)

  def spread(self) -> np.ndarray:
    if self.fitted.spread is None:
      raise _missing("posterior spread", self.fitted.posterior.name)
    return np.asarray(self.fitted.spread(self.info), np.float64)

  def spread_after(self, pairs: dict) -> np.ndarray:
    if self.fitted.spread_after is None:
      raise _missing("posterior spread", self.fitted.posterior.name)
    return np.asarray(self.fitted.spread_after(self.context, pairs), np.float64)

  def question_scores(self, pairs: dict) -> np.ndarray:
    if self.fitted.question_scores is None:
      raise _missing("D-optimal question scores", self.fitted.posterior.name)
    return np.asarray(self.fitted.question_scores(self.info, self.context, pairs), np.float64)
