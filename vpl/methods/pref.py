"""PReF: reward factorisation r_u = lambda_u . phi, fit jointly (docs/methods.md, 'PReF').

Training is joint maximum likelihood of the bases phi and one weight row per training user,
with L2 (`pref.l2`) on the weights and on the bases' outputs, by the generic trainer.

Initialisation by SVD, where it means something: when users label the SAME pairs, the
pair x user label matrix is completed at rank J (missing entries imputed at 0.5, then
refilled from the rank-J reconstruction for `pref.svd_rounds` rounds), lambda starts at
V sqrt(S) and phi is pre-fit so that phi(a) - phi(b) matches U sqrt(S). The matrix holds
4 (label - 0.5), the linearisation of the logit around 0.5 (sigma(x) ~ 1/2 + x/4), so the
factors start on the logit scale the model trains on. To bound the SVD, at most
`pref.svd_max_pairs` shared pairs (the most-labelled) and `pref.svd_max_users` users (those
with the most labels on them) enter it; the other users start at the mean of the SVD's
weights. When no pair is labelled by two users (every user has their own random pairs, as in
`didactic`), there is no matrix to complete: weights and bases start at random, and the run
says so (a log line and `init` in the fit's info). The same holds when fewer than
MIN_SHARED_FRACTION of the labels fall on shared pairs (Ecdat `Train`: 5 pairs shared by 8
of 232 users), where the SVD would initialise a handful of users.

The weights are penalised toward the population's weights m (`population_weights`, a
parameter), not toward 0, and with `pref.population_coef` > 0 the population's reward
m . phi is also trained as one Bradley-Terry reward on the pooled pairs: PReF then contains
a single reward as good as BTL's, and everyone's weights are deviations from it.

After training, the prior of a new user's lambda is a Gaussian at m with covariance
s * Sigma + `pref.prior_ridge` I, Sigma the training weights' spread around m (empirical, or
isotropic); the scale s is chosen from `pref.prior_scales` by the held-out likelihood of the
training users' own pairs given a context of `eval.num_context` of them
(`vpl/methods/pref_prior.py`). With `pref.mixture_prior` the same users also score the
trained users' own lambdas as the prior (one point mass each), which is kept where its
held-out likelihood beats the best Gaussian's. With `pref.refine_rounds`, the bases are first
refitted under that prior (`vpl/methods/pref_refine.py`). All of it is a pure function of the
trained parameters and the training users (`finalize`): a restored model gets the same.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from vpl import losses, seeding
from vpl.data.comparisons import UserComparisons
from vpl.data.pairs import pair_ids
from vpl.method import Method
from vpl.methods import btl, pref_prior, pref_refine
from vpl.methods.sampling import sample_pairs
from vpl.models import condition_bias
from vpl.models.pref import PReFModel

RANDOM_INIT = "random (no shared pairs)"
FEW_SHARED_INIT = "random (too few shared pairs)"
# The SVD initialises only users seen on shared pairs (the rest start at their mean), so it is
# used only when most labels fall on pairs that two or more users labelled.
MIN_SHARED_FRACTION = 0.5


def complete_low_rank(y_PxU: np.ndarray, observed_PxU: np.ndarray, rank: int,
                      rounds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Rank-`rank` completion by iterated SVD, refilling only the missing entries.

  Missing entries start at 0 (a label of 0.5 once centred).

  Returns:
    `(U [P, r], S [r], Vt [r, U])` of the completed matrix's rank-r SVD.
  """
  x = np.where(observed_PxU, y_PxU, 0.0)
  for _ in range(rounds):
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    x = np.where(observed_PxU, y_PxU, (u[:, :rank] * s[:rank]) @ vt[:rank])
  u, s, vt = np.linalg.svd(x, full_matrices=False)
  return u[:, :rank], s[:rank], vt[:rank]


def svd_init(data: UserComparisons, p: ml_collections.ConfigDict) -> dict:
  """The SVD initialisation, or why there is none.

  Returns:
    dict with `init` ('svd', RANDOM_INIT or FEW_SHARED_INIT), counts of shared pairs and
    the fraction of labels on them, and for
    'svd': `weights [U, J]`; `a`, `b` `[P, D]`, `target [P, J]` for the bases' pre-fit; and
    which pairs (`pair_ids` [P], as in `shared_pair_ids`) and users (`user_rows`) it used.
  """
  (pair_id,), (flipped,) = pair_ids(data)
  users, slots = np.nonzero(data.mask)
  ids = pair_id[users, slots]
  # Distinct users per pair (a user who labels a pair twice counts once).
  user_pair = np.unique(np.stack([ids, users], 1), axis=0)
  users_per_pair = np.bincount(user_pair[:, 0], minlength=ids.max() + 1)
  shared = np.flatnonzero(users_per_pair >= 2)
  shared_fraction = float(np.isin(ids, shared).mean())
  info = dict(num_distinct_pairs=int(len(users_per_pair)), num_shared_pairs=int(len(shared)),
              shared_label_fraction=shared_fraction)
  rank = p.num_bases
  if not len(shared):
    return dict(info, init=RANDOM_INIT)
  if len(shared) <= rank or shared_fraction < MIN_SHARED_FRACTION:
    return dict(info, init=FEW_SHARED_INIT)
  # The most-labelled shared pairs, then the users with the most labels on those.
  shared = shared[np.argsort(-users_per_pair[shared], kind="stable")][:p.svd_max_pairs]
  row_of_pair = np.full(len(users_per_pair), -1)
  row_of_pair[shared] = np.arange(len(shared))
  keep = row_of_pair[ids] >= 0
  counts = np.bincount(users[keep], minlength=data.num_users)
  cols = np.argsort(-counts, kind="stable")[:p.svd_max_users]
  cols = np.sort(cols[counts[cols] > 0])
  if len(cols) <= rank:
    return dict(info, init=FEW_SHARED_INIT)
  col_of_user = np.full(data.num_users, -1)
  col_of_user[cols] = np.arange(len(cols))
  keep &= col_of_user[users] >= 0
  r, c = row_of_pair[ids[keep]], col_of_user[users[keep]]
  label = data.label[users[keep], slots[keep]]
  label = np.where(flipped[users[keep], slots[keep]], 1 - label, label)
  # Mean label where a user labelled the same pair more than once.
  total = np.zeros((len(shared), len(cols)))
  seen = np.zeros_like(total)
  np.add.at(total, (r, c), 4.0 * (label - 0.5))
  np.add.at(seen, (r, c), 1.0)
  y = total / np.maximum(seen, 1)
  u, s, vt = complete_low_rank(y, seen > 0, rank, p.svd_rounds)
  root = np.sqrt(s)
  user_weights = vt.T * root
  weights = np.broadcast_to(user_weights.mean(0), (data.num_users, rank)).copy()
  weights[cols] = user_weights
  # Canonical (a, b) of each shared pair, from any one of its occurrences.
  first = np.zeros(len(shared), np.int64)
  first[r] = np.flatnonzero(keep)
  fu, fk = users[first], slots[first]
  fl = flipped[fu, fk][:, None]
  a = np.where(fl, data.b[fu, fk], data.a[fu, fk])
  b = np.where(fl, data.a[fu, fk], data.b[fu, fk])
  return dict(info, init="svd", svd_pairs=int(len(shared)), svd_users=int(len(cols)),
              pair_ids=shared, user_rows=cols,
              svd_observed_fraction=float((seen > 0).mean()),
              weights=weights.astype(np.float32), a=a.astype(np.float32),
              b=b.astype(np.float32), target=(u * root).astype(np.float32))


def prefit_bases(model: PReFModel, a: np.ndarray, b: np.ndarray, target: np.ndarray, *,
                 num_steps: int, learning_rate: float) -> tuple[float, float]:
  """Fits phi(a) - phi(b) to `target` by least squares (Adam, full batch), in place.

  Returns:
    The mean squared error before and after, relative to the target's mean square.
  """
  graphdef, params = nnx.split(model.bases)
  tx = optax.adam(learning_rate)
  scale = float(np.mean(target**2)) or 1.0

  def mse(params):
    bases = nnx.merge(graphdef, params)
    return jnp.mean((bases(a) - bases(b) - target) ** 2) / scale

  def step(carry, _):
    params, opt_state = carry
    value, grads = jax.value_and_grad(mse)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), value

  @jax.jit
  def run(params):
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=num_steps)
    return params

  before = float(mse(params))
  params = run(params)
  nnx.update(model.bases, params)
  return before, float(mse(params))


def fit_prior(weights_UxJ: np.ndarray, kind: str, ridge: float, scale: float = 1.0,
              mean_J: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """Mean `[J]` and precision `[J, J]` of the Gaussian prior of a new user's weights.

  The mean is `mean_J` (default: the weights' mean); the covariance is `scale` times the
  weights' spread around it, plus `ridge` on the diagonal.
  """
  mean = weights_UxJ.mean(0) if mean_J is None else np.asarray(mean_J)
  cov = pref_prior.spread(weights_UxJ, mean, kind)
  return mean, pref_prior.precision(cov, scale, ridge)


def head_weights(model: PReFModel) -> jax.Array:
  """(0, ..., 0, 1): the weights whose reward is the population head's r0 alone (BTL's)."""
  width = model.population_weights[...].shape[0]
  return jax.nn.one_hot(width - 1, width)


def make(config: ml_collections.ConfigDict) -> Method:
  p = config.pref
  for field in ("num_bases", "nonlinear_l2"):
    if p.get(field) == "auto":
      raise ValueError(f"pref.{field} = 'auto' is chosen while training "
                       f"(vpl.size_selection.fit_auto); make the method at one value.")
  for field in ("newton_steps", "svd_rounds", "svd_max_pairs", "svd_max_users"):
    if p[field] < 1:
      raise ValueError(f"pref.{field} = {p[field]}; use at least 1.")
  if p.l2 < 0 or p.prior_ridge <= 0:
    raise ValueError(f"pref.l2 = {p.l2} and pref.prior_ridge = {p.prior_ridge}: l2 must be "
                     f">= 0 and prior_ridge > 0 (it keeps the prior covariance invertible).")
  fit_prior(np.zeros((2, p.num_bases)), p.prior, p.prior_ridge)  # Rejects a bad kind now.
  if not len(p.prior_scales) or min(p.prior_scales) < 0:
    raise ValueError(f"pref.prior_scales = {tuple(p.prior_scales)}; give one or more scales "
                     f">= 0 of the prior covariance (one value fixes it).")
  if not 0 <= p.calibration_fraction < 1:
    raise ValueError(f"pref.calibration_fraction = {p.calibration_fraction}; use a value "
                     f"in [0, 1).")
  if p.population_coef < 0:
    raise ValueError(f"pref.population_coef = {p.population_coef}; use >= 0.")
  nonlinear_l2 = float(p.get("nonlinear_l2", 0.0))
  population_head = bool(p.get("population_head", False))
  if nonlinear_l2 < 0:
    raise ValueError(f"pref.nonlinear_l2 = {nonlinear_l2}; use >= 0 (0 = no penalty).")
  refine_rounds = pref_refine.check(p, btl.num_conditions(config))

  def make_model(feature_dim, rngs, num_users=1):
    return PReFModel(feature_dim, tuple(config.model.hidden), p.num_bases, num_users,
                     num_scales=len(p.prior_scales) + int(p.mixture_prior),
                     num_conditions=btl.num_conditions(config),
                     linear_path=p.get("linear_path", False),
                     population_head=population_head, rngs=rngs)

  def loss(model, batch, key, step, calibration_U=None):
    del key, step
    # With a population head its r0 is the last base, trained as BTL on the pooled pairs
    # alone (no gradient from the personal term), and the weights are penalised toward
    # (0, ..., 0, 1): BTL's reward.
    phi_a, phi_b = (model.phi(batch[k], stop_head=True) for k in ("a", "b"))
    lam = model.user_weights[...][batch["user"]]
    pop = head_weights(model) if population_head else model.population_weights[...]
    # Calibration users' pairs train the pooled reward only (vpl/methods/pref_prior.py).
    personal = None if calibration_U is None else ~calibration_U[batch["user"]]
    framed = lambda logit: condition_bias.apply(model, logit, batch)  # the tower, if on
    nll = losses.bt_loss(framed(((phi_a - phi_b) * lam).sum(-1)), batch["label"], personal)
    pooled_logit = (model.population(batch["a"])[..., 0] - model.population(batch["b"])[..., 0]
                    if population_head else ((phi_a - phi_b) * pop).sum(-1))
    pop_nll = losses.bt_loss(framed(pooled_logit), batch["label"])
    bases_a, bases_b = phi_a[..., :p.num_bases], phi_b[..., :p.num_bases]
    reg = (losses.masked_mean(((lam - pop)**2).sum(-1), personal)
           + 0.5 * ((bases_a**2).sum(-1) + (bases_b**2).sum(-1)).mean())
    value = nll + p.population_coef * pop_nll + p.l2 * reg
    metrics = dict(loss=value, nll=nll, population_nll=pop_nll, reg=reg)
    if nonlinear_l2 > 0:  # a Gaussian prior on the size of the bases' non-linear part
      penalty = model.nonlinear_l2()
      value = value + nonlinear_l2 * penalty
      metrics.update(loss=value, nonlinear_l2=penalty)
    return value, metrics

  def predict(model, context, targets):
    # The tower frames the targets' logits; an unreliable user's answers get their coin.
    logits, aux = model(context, targets, num_steps=p.newton_steps)
    return condition_bias.answers(condition_bias.apply(model, logits, targets), context,
                                  targets), aux

  def bind(data):
    if not isinstance(data, UserComparisons):
      raise ValueError(f"pref keeps one weight row per training user and reads their pairs "
                       f"in memory; got {type(data).__name__}. Set streaming.enabled = False "
                       f"for pref, or run the other methods alone.")
    calibration_U = np.zeros(data.num_users, bool)
    if len(p.prior_scales) > 1 or p.mixture_prior:
      calibration_U = pref_prior.calibration_users(
          data, p.calibration_fraction, config.eval.num_context,
          seeding.rng(config.seed, "pref", "calibration"))
    return dataclasses.replace(
        method, make_model=functools.partial(make_model, num_users=data.num_users),
        loss=functools.partial(loss, calibration_U=jnp.asarray(calibration_U)),
        finalize=functools.partial(finalize, data=data, calibration_U=calibration_U))

  def initialize(model, data):
    init = svd_init(data, p)
    info = {k: v for k, v in init.items() if not isinstance(v, np.ndarray)}
    if init["init"] == "svd":
      logging.info("pref: SVD initialisation from %d shared pairs x %d users (%.0f%% "
                   "observed)", init["svd_pairs"], init["svd_users"],
                   100 * init["svd_observed_fraction"])
      weights = init["weights"]
      if population_head:  # the head's weight starts at 1, the bases' as deviations
        weights = np.concatenate([weights - weights.mean(0), np.ones((len(weights), 1),
                                                                    np.float32)], 1)
      model.user_weights.set_value(jnp.asarray(weights))
      if not population_head:
        model.population_weights.set_value(jnp.asarray(init["weights"].mean(0)))
      info["prefit_relative_mse"] = list(prefit_bases(
          model, init["a"], init["b"], init["target"], num_steps=p.prefit_steps,
          learning_rate=config.optim.learning_rate))
    else:
      logging.info("pref: init %s: %d distinct pairs, %d labelled by two or more users "
                   "(%.0f%% of labels; the SVD needs %.0f%%); starting from random bases and "
                   "weights", init["init"], init["num_distinct_pairs"],
                   init["num_shared_pairs"], 100 * init["shared_label_fraction"],
                   100 * MIN_SHARED_FRACTION)
    return info

  def finalize(model, data, calibration_U):
    if refine_rounds:  # the bases refitted under the users' weights as a prior
      pref_refine.refine(model, data, np.flatnonzero(~calibration_U), rounds=refine_rounds,
                         steps=p.refine_steps, learning_rate=config.optim.learning_rate,
                         l2=p.l2, nonlinear_l2=nonlinear_l2, params=pref_refine.refit_params(p))
    weights = np.asarray(model.user_weights[...])[~calibration_U]
    mean = np.asarray(head_weights(model) if population_head else model.population_weights[...])
    cov = pref_prior.spread(weights, mean, p.prior)
    curve = [0.0]
    users = np.flatnonzero(calibration_U)
    if len(users):
      curve = pref_prior.scale_curve(
          model.phi, data, users, mean, cov, scales=p.prior_scales,
          ridge=p.prior_ridge,
          num_context=config.eval.num_context, newton_steps=p.newton_steps,
          rng=seeding.rng(config.seed, "pref", "prior"))
    scale = float(p.prior_scales[int(np.argmax(curve))])
    atoms = pref_prior.atom_rows(~calibration_U, seeding.rng(config.seed, "pref", "atoms"))
    log_weight = pref_prior.atom_log_weight(data.num_users, atoms, data.reliability)
    mixture = False
    if p.mixture_prior:
      mixture_ll = pref_prior.mixture_log_lik(
          model.phi, data, users, np.asarray(model.user_weights[...])[atoms],
          num_context=config.eval.num_context, rng=seeding.rng(config.seed, "pref", "prior"))
      mixture = mixture_ll > max(curve)
      curve = list(curve) + [mixture_ll]
    logging.info("pref: prior %s chosen (training users' held-out log-lik: Gaussian at "
                 "scales %s %s%s)", "mixture of trained users" if mixture else f"scale {scale:g}",
                 tuple(p.prior_scales), np.round(curve[:len(p.prior_scales)], 4).tolist(),
                 f", mixture {curve[-1]:.4f}" if p.mixture_prior else "")
    model.atom_log_weight.set_value(jnp.asarray(log_weight, jnp.float32))
    model.prior_mixture.set_value(jnp.asarray(float(mixture), jnp.float32))
    model.prior_mean.set_value(jnp.asarray(mean, jnp.float32))
    model.prior_precision.set_value(
        jnp.asarray(pref_prior.precision(cov, scale, p.prior_ridge), jnp.float32))
    model.prior_scale.set_value(jnp.asarray(scale, jnp.float32))
    model.prior_curve.set_value(jnp.asarray(curve, jnp.float32))
    return model

  num_pairs = config.train.batch_sets * config.train.num_targets
  method = Method("pref", make_model,
                  functools.partial(sample_pairs, num_pairs=num_pairs, with_user=True), loss,
                  predict, batch_axis_size=num_pairs,
                  batch_axis_source="train.batch_sets x train.num_targets", bind=bind,
                  initialize=initialize)
  return method
