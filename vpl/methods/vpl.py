"""VPL: latent-conditioned BTL trained with an ELBO (docs/methods.md, 'VPL')."""

from __future__ import annotations

import functools

import ml_collections

from vpl import losses, schedules
from vpl.method import Method
from vpl.methods import btl, windows
from vpl.methods.sampling import sample_sets
from vpl.models.vpl import VPLModel


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

  def loss(model, batch, key, step):
    logits, aux = model(batch["context"], batch["targets"], key)
    prior_mu, prior_log_var = model.prior()
    value, metrics = losses.elbo_loss(
        logits, batch["targets"]["label"], aux["mu"], aux["log_var"], prior_mu,
        prior_log_var, beta=beta_at(step), free_bits=l.free_bits,
        target_mask_BxT=batch["targets"].get("mask"),
        set_weight_B=batch["context"].get("reliability"))
    if nonlinear_l2 > 0:  # a Gaussian prior on the size of phi's non-linear part
      penalty = model.decoder.nonlinear_l2()
      value = value + nonlinear_l2 * penalty
      metrics["nonlinear_l2"] = penalty
    return value, dict(loss=value, **metrics)

  def predict(model, context, targets):
    return model(context, targets)

  sampler = functools.partial(sample_sets, num_sets=t.batch_sets, num_context=t.num_context,
                              num_targets=t.num_targets, target_mode=l.target_mode,
                              min_context=t.min_context)
  if t.get("context_order", "random") == "time":  # windows in time order (drift tasks)
    sampler = functools.partial(windows.sample_windows, num_sets=t.batch_sets,
                                num_context=t.num_context, num_targets=t.num_targets)
  return Method("vpl", make_model, sampler, loss, predict, batch_axis_size=t.batch_sets,
                min_pairs_per_user=t.num_context + t.num_targets,
                min_pairs_source="train.num_context + train.num_targets")

