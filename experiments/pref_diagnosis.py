"""Where a trained PReF loses to BTL: its pieces scored one at a time on a finished run.

  python -m experiments.pref_diagnosis --workdir=runs/ecdat_seeds/seed_0

For the run's `pref` model (and `btl` if the run has it), prints held-out accuracy of:
BTL; PReF as scored (the MAP weights from each user's context under the stored prior);
the population's reward alone (every new user at the prior mean); PReF with the prior's
covariance scaled by each of a few factors; and the training users' accuracy on their own
training pairs with their own trained weights (how much the weights memorise).
"""

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from vpl import analysis, evaluate, seeding
from vpl.methods import pref_prior
from vpl.models.pref import map_weights

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
  if len(p.prior_scales) > 1:  # calibration users' own weights are never trained
    calibration = pref_prior.calibration_users(
        tr, p.calibration_fraction, run.config.eval.num_context,
        seeding.rng(run.config.seed, "pref", "calibration"))
    tr, weights = tr.select_users(np.flatnonzero(~calibration)), weights[~calibration]
  cov = pref_prior.spread(weights, mean, p.prior)
  if "btl" in scores:
    print(f"btl, held-out:                          {scores['btl']['heldout_accuracy']:.3f}")
  print(f"pref as scored (prior scale {float(model.prior_scale[...]):g}):     "
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
  print(f"training users (less calibration users), own weights, own pairs: "
        f"{_accuracy(phi(tr.a) - phi(tr.b), weights, tr.label, tr.mask):.3f}")
  print(f"training users' weights: |mean| {np.linalg.norm(mean):.2f}, spread (sd per base) "
        f"{[round(float(x), 2) for x in np.sqrt(np.diag(cov))]}")


if __name__ == "__main__":
  app.run(main)
