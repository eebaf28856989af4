"""Is VPL's gap to the Bayes oracle in inferring z, or in the decoder r(s, z)?

  python -m experiments.latent_or_decoder --workdir=runs/compare_vpl_linear/ufp4/seed_0

Loads a finished run with VPL and a synthetic task (`vpl.analysis.load_run`) and scores the
held-out users' targets four ways: as the run scores them (with model.atom_prior, the
trained users' latents weighted by the context), with each user's own posterior mean, with
the mean of the posterior means of the user's true group (z found perfectly, up to the
group), and, for the training users, their own training pairs with that group z.
If the group z does no better than the user's own, the encoder is not the limit; if the
training pairs are fitted and the held-out targets are not, the decoder does not generalise
from the training items to the others. Targets split by whether any training user labelled
the pair (`seen`) or not. Prints one JSON line.
"""

import json

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from vpl import analysis, evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A finished run with VPL on a synthetic task.",
                    required=True)


def _accuracy(model, data, z_UxL, mask_UxK) -> float:
  z = jnp.asarray(z_UxL, jnp.float32)[:, None, :]
  r_a = np.asarray(model.reward(jnp.asarray(data.a), z))
  r_b = np.asarray(model.reward(jnp.asarray(data.b), z))
  correct = (r_a > r_b) == (data.label > 0.5)
  return float(correct[mask_UxK].mean()) if mask_UxK.any() else float("nan")


def _seen(train, heldout) -> np.ndarray:
  """[U, K]: whether some training user labelled the held-out user's pair (either order)."""
  def keys(a, b):
    return [tuple(sorted((x.tobytes(), y.tobytes()))) for x, y in zip(a, b)]
  labelled = set(keys(train.a[train.mask], train.b[train.mask]))
  dim = heldout.a.shape[-1]
  flat = keys(heldout.a.reshape(-1, dim), heldout.b.reshape(-1, dim))
  return np.array([k in labelled for k in flat]).reshape(heldout.label.shape)


def main(argv):
  del argv
  run = analysis.load_run(FLAGS.workdir)
  if run.task is None:
    raise SystemExit(f"{FLAGS.workdir} has no synthetic task in memory (real or streamed "
                     f"data): the true groups are needed.")
  _, model = run._get("vpl")  # raises with the loaded names when the run has no VPL
  method = run.methods["vpl"]
  heldout, train, targets = run.heldout, run.train_data, run.target_mask
  p_a, aux = evaluate.predict_users(method, model, heldout, run.context_idx)
  mu, group = aux["mu"], heldout.group
  centre = {int(k): mu[group == k].mean(0) for k in np.unique(group)}
  group_z = np.stack([centre[int(k)] for k in group])
  seen = _seen(train, heldout)
  scored = (p_a > 0.5) == (heldout.label > 0.5)
  out = dict(workdir=FLAGS.workdir,
             heldout_as_scored=float(scored[targets].mean()),
             heldout_own_z=_accuracy(model, heldout, mu, targets),
             heldout_group_z=_accuracy(model, heldout, group_z, targets),
             heldout_group_z_seen=_accuracy(model, heldout, group_z, targets & seen),
             heldout_group_z_unseen=_accuracy(model, heldout, group_z, targets & ~seen),
             train_pairs_group_z=_accuracy(
                 model, train, np.stack([centre[int(k)] for k in train.group]), train.mask),
             num_targets=int(targets.sum()), num_unseen_targets=int((targets & ~seen).sum()))
  print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
  app.run(main)
