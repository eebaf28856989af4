"""Where a trained PReF loses to BTL: its pieces scored one at a time on a finished run.

  python -m experiments.pref_diagnosis --workdir=runs/ecdat_seeds/seed_0

For the run's `pref` model (and `btl` if the run has it), prints held-out accuracy of:
BTL; PReF as scored (under the prior the run chose); the population's reward alone (every
new user at the prior mean); PReF with the Gaussian prior's covariance scaled by each of a
few factors; PReF with the mixture prior (the trained users' weights as point masses); the
best weights in hindsight per group (fitted on the group's own held-out targets: what the
bases can express at all); the training users' accuracy on their own training pairs with
their own trained weights (how much the weights memorise); and, on a synthetic task, the
principal angles between the bases' span and the groups' rewards (read as linear maps).
"""

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from vpl import analysis, evaluate, seeding
from vpl.methods import pref_prior
from vpl.models.pref import atom_logits, atom_posterior, map_weights

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A finished run with pref in config.methods.",
                    required=True)
flags.DEFINE_list("scales", ["0", "0.1", "0.3", "1", "3"], "Prior covariance scales.")


def _accuracy(v_UxKxJ, lam_UxJ, label, mask):
  pred = np.einsum("ukj,uj->uk", v_UxKxJ, lam_UxJ) > 0
  return float(np.where(pred, label, 1 - label)[mask].mean())


def main(argv):
  del argv
  run = analysis.load_run(FLAGS.workdir)
  scores = run.evaluate()
  model, p = run.models["pref"], run.config.pref
  phi = lambda x: np.asarray(model.phi(jnp.asarray(x)))
  ho, tr = run.heldout, run.train_data
  v_ho = phi(ho.a) - phi(ho.b)
  ctx = evaluate.gather_context(ho, run.context_idx)
  v_ctx = phi(ctx["a"]) - phi(ctx["b"])

  mean = np.asarray(model.prior_mean[...])
  weights = np.asarray(model.user_weights[...])
  if len(p.prior_scales) > 1 or p.mixture_prior:  # calibration users' weights are untrained
    calibration = pref_prior.calibration_users(
        tr, p.calibration_fraction, run.config.eval.num_context,
        seeding.rng(run.config.seed, "pref", "calibration"))
    tr, weights = tr.select_users(np.flatnonzero(~calibration)), weights[~calibration]
  cov = pref_prior.spread(weights, mean, p.prior)
  if "btl" in scores:
    print(f"btl, held-out:                          {scores['btl']['heldout_accuracy']:.3f}")
  chosen = ("mixture" if float(model.prior_mixture[...]) > 0.5
            else f"scale {float(model.prior_scale[...]):g}")
  print(f"pref as scored (prior {chosen}):     "
        f"{scores['pref']['heldout_accuracy']:.3f}")
  every = np.broadcast_to(mean, (ho.num_users, len(mean)))
  print(f"pref population reward (prior mean):    "
        f"{_accuracy(v_ho, every, ho.label, run.target_mask):.3f}")
  for scale in map(float, FLAGS.scales):
    lam = map_weights(jnp.asarray(v_ctx), jnp.asarray(ctx["label"]), jnp.asarray(mean),
                      jnp.asarray(pref_prior.precision(cov, scale, p.prior_ridge), jnp.float32),
                      num_steps=p.newton_steps)
    print(f"pref, prior covariance x {scale:<5g}:        "
          f"{_accuracy(v_ho, np.asarray(lam), ho.label, run.target_mask):.3f}")
  atoms = jnp.asarray(weights)
  log_post = atom_posterior(jnp.asarray(v_ctx), jnp.asarray(ctx["label"]), atoms,
                            jnp.full(len(weights), -np.log(len(weights))))
  logit = np.asarray(atom_logits(log_post, jnp.asarray(v_ho), atoms))
  correct = np.where(logit > 0, ho.label, 1 - ho.label)[run.target_mask]
  print(f"pref, mixture prior (trained users):   {correct.mean():.3f}")
  if ho.group is not None:
    best = []
    for g in np.unique(ho.group):
      rows = np.flatnonzero(ho.group == g)
      keep = run.target_mask[rows]
      v, y = v_ho[rows][keep], ho.label[rows][keep]
      lam = map_weights(jnp.asarray(v[None]), jnp.asarray(y[None]), jnp.zeros(v.shape[-1]),
                        1e-3 * jnp.eye(v.shape[-1]), num_steps=30)
      best.append(_accuracy(v[None], np.asarray(lam), y[None], np.ones((1, len(y)), bool)))
    print(f"best weights in hindsight, per group:  {np.round(best, 3).tolist()}")
  print(f"training users (less calibration users), own weights, own pairs: "
        f"{_accuracy(phi(tr.a) - phi(tr.b), weights, tr.label, tr.mask):.3f}")
  print(f"training users' weights: |mean| {np.linalg.norm(mean):.2f}, spread (sd per base) "
        f"{[round(float(x), 2) for x in np.sqrt(np.diag(cov))]}")
  if run.task is not None:
    print(f"bases' span against the groups' rewards (principal angles, degrees; linear "
          f"rewards only): {_span_angles(run.task, phi, ho.a.shape[-1])}")


def _span_angles(task, phi, dim: int) -> list[float]:
  """Principal angles between the linear part of the bases and the groups' rewards, read as
  linear maps of the features (least squares on random items; meaningful where the rewards
  are linear, as on the embedding tasks)."""
  x = np.random.default_rng(0).standard_normal((max(4 * dim, 2000), dim)).astype(np.float32)
  centred = lambda r: r - r.mean(0)
  fit = lambda r: np.linalg.lstsq(x, centred(r), rcond=None)[0]
  bases = fit(phi(x))
  groups = fit(np.stack([task.true_reward(x, k) for k in range(len(task.shares))], -1))
  cos = np.linalg.svd(np.linalg.qr(bases)[0].T @ np.linalg.qr(groups)[0], compute_uv=False)
  return [round(float(a), 2) for a in np.degrees(np.arccos(np.clip(cos, -1, 1)))]


if __name__ == "__main__":
  app.run(main)
