"""VPL: latent-conditioned BTL trained with an ELBO (docs/methods.md, 'VPL')."""

from __future__ import annotations

import dataclasses
import functools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vpl import losses, schedules, seeding
from vpl.data import streaming
from vpl.data.comparisons import UserComparisons
from vpl.method import Method
from vpl.methods import btl, windows
from vpl.methods.sampling import sample_sets
from vpl.models import condition_bias, decoder_blocks, latent_atoms
from vpl.models.vpl import ProductDecoder, VPLModel, sample_z


def make(config: ml_collections.ConfigDict) -> Method:
  m, l, t = config.model, config.loss, config.train
  for field, value in (("model.latent_dim", m.latent_dim),
                       ("loss.nonlinear_l2", l.get("nonlinear_l2", 0.0))):
    if value == "auto":
      raise ValueError(f"{field} = 'auto' is chosen while training "
                       f"(vpl.size_selection.fit_auto); make the method at one value.")
  if l.target_mode not in ("disjoint", "context", "both"):
    raise ValueError(f"loss.target_mode = {l.target_mode!r}; choose 'disjoint', 'context' "
                     f"or 'both'.")
  if 0 < t.min_context < t.num_context and l.target_mode != "disjoint":
    raise ValueError(f"train.min_context = {t.min_context} draws context sizes, which needs "
                     f"loss.target_mode = 'disjoint' (now {l.target_mode!r}); set min_context "
                     f"to 0 or use disjoint targets.")
  if m.get("reliability", "none") == "reask" and t.get("context_order", "random") == "time":
    raise ValueError("model.reliability = 'reask' is read by the random context sampler; "
                     "train.context_order = 'time' does not carry it. Use one of them.")
  beta_at = functools.partial(
      schedules.beta_at, kind=l.beta_schedule, beta=l.beta, num_steps=t.num_steps,
      warmup_steps=l.warmup_steps, cycles=l.cycles)
  beta_at(0)  # Rejects an unknown schedule now, not at trace time.
  nonlinear_l2 = float(l.get("nonlinear_l2", 0.0))
  if nonlinear_l2 > 0 and m.decoder == "concat":
    raise ValueError(f"loss.nonlinear_l2 = {nonlinear_l2} penalises the product decoder's "
                     f"item MLP; model.decoder = 'concat' has none. Use model.decoder = "
                     f"'product_linear' (or 'product'), or set loss.nonlinear_l2 = 0.")

  def make_model(feature_dim, rngs):
    return VPLModel(feature_dim, hidden=tuple(m.hidden), embed_dim=m.embed_dim,
                    latent_dim=m.latent_dim, pooling=m.pooling, num_heads=m.num_heads,
                    learned_prior=m.learned_prior, decoder=m.decoder,
                    encoder=m.get("encoder", "pairwise"),
                    num_conditions=btl.num_conditions(config),
                    activation=m.get("activation", "gelu"),
                    decoder_blocks=m.get("decoder_blocks", 1), rngs=rngs)

  blocks = m.get("decoder_blocks", 1)

  def loss(model, batch, key, step):
    context, targets = batch["context"], batch["targets"]
    logits, nll = None, None
    if blocks > 1:  # each block's backward pass right after its forward pass
      mu, log_var = model.posterior(context)
      z = sample_z(mu, log_var, key)  # as model(context, targets, key) draws it
      weight = losses.target_weight(targets["label"], targets.get("mask"),
                                    context.get("reliability"))
      count = targets["label"].size if weight is None else jnp.maximum(weight.sum(), 1.0)
      nll = decoder_blocks.weighted_nll_sum(model, z, targets, weight, blocks) / count
    else:
      logits, aux = model(context, targets, key)
      mu, log_var = aux["mu"], aux["log_var"]
    prior_mu, prior_log_var = model.prior()
    value, metrics = losses.elbo_loss(
        logits, targets["label"], mu, log_var, prior_mu, prior_log_var, beta=beta_at(step),
        free_bits=l.free_bits, target_mask_BxT=targets.get("mask"),
        set_weight_B=context.get("reliability"), nll=nll)
    if nonlinear_l2 > 0:  # a Gaussian prior on the size of phi's non-linear part
      penalty = model.decoder.nonlinear_l2()
      value = value + nonlinear_l2 * penalty
      metrics["nonlinear_l2"] = penalty
    return value, dict(loss=value, **metrics)

  def predict(model, context, targets):  # the coin of an unreliable user in the answers
    logits, aux = model(context, targets)
    return condition_bias.answers(logits, context, targets), aux

  sampler = functools.partial(sample_sets, num_sets=t.batch_sets, num_context=t.num_context,
                              num_targets=t.num_targets, target_mode=l.target_mode,
                              min_context=t.min_context)
  if t.get("context_order", "random") == "time":  # windows in time order (drift tasks)
    sampler = functools.partial(windows.sample_windows, num_sets=t.batch_sets,
                                num_context=t.num_context, num_targets=t.num_targets)
  method = Method("vpl", make_model, sampler, loss, predict, batch_axis_size=t.batch_sets,
                  min_pairs_per_user=t.num_context + t.num_targets,
                  min_pairs_source="train.num_context + train.num_targets")

  def bind(data):
    # model.atom_prior: the training users' latents become a new user's prior.
    return dataclasses.replace(method, finalize=functools.partial(finalize, data=data))

  def finalize(model, data):
    if not isinstance(model.decoder, ProductDecoder):
      logging.info("vpl: model.atom_prior needs a product decoder (model.decoder = %r); "
                   "prediction keeps the encoder's posterior mean.", m.decoder)
      return model
    users = np.arange(data.num_users)
    if len(users) > latent_atoms.MAX_ATOMS:
      users = np.sort(seeding.rng(config.seed, "vpl", "atoms").choice(
          users, latent_atoms.MAX_ATOMS, replace=False))
    if isinstance(data, UserComparisons):
      chosen = data.select_users(users)
    else:  # streamed: the same users read from disk, laid out as in memory
      chosen = streaming.load_users(data.opened, data.users[users],
                                    standardization=data.standardization)
    # Windows in time order (drift): a user's latest window is their current preference.
    latest = t.num_context if t.get("context_order", "random") == "time" else None
    latent_atoms.set_atoms(model, user_means(model, chosen, latest=latest), chosen.reliability)
    return model

  return dataclasses.replace(method, bind=bind) if m.get("atom_prior", False) else method


def user_means(model: VPLModel, data: UserComparisons, users_per_call: int = 256,
               latest: int | None = None) -> np.ndarray:
  """`[U, L]` each user's posterior mean from all of their pairs, or from their `latest` ones
  (the last real slots: pairs in time order)."""
  graphdef, state = nnx.split(model)
  encode = jax.jit(lambda state, c: nnx.merge(graphdef, state).posterior(c)[0])
  mask = data.mask
  if latest is not None:
    mask = mask & (np.arange(mask.shape[1])[None] >= data.pairs_per_user[:, None] - latest)
  out = []
  for start in range(0, data.num_users, users_per_call):
    rows = slice(start, start + users_per_call)
    context = dict(a=data.a[rows], b=data.b[rows], label=data.label[rows],
                   mask=mask[rows].astype(np.float32))
    if data.reliability is not None:
      context["reliability"] = data.reliability[rows]
    out.append(np.asarray(encode(state, context)))
  return np.concatenate(out)

