"""VPL's prior of trained users' latents (vpl/models/latent_atoms.py, model.atom_prior)."""

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import edited
from vpl import methods, train
from vpl.data import synthetic
from vpl.methods import vpl as vpl_method
from vpl.models import latent_atoms
from vpl.models.vpl import VPLModel

D, L = 3, 2


def _model(decoder="product_linear"):
  return VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, decoder=decoder,
                  rngs=nnx.Rngs(0))


def _sets(rng, users=4, pairs=5):
  f = lambda *s: rng.standard_normal(s).astype(np.float32)
  return (dict(a=f(users, pairs, D), b=f(users, pairs, D),
               label=(rng.random((users, pairs)) < 0.5).astype(np.float32)),
          dict(a=f(users, 6, D), b=f(users, 6, D)))


def _with_atoms(seed, num_atoms):
  """A model with `num_atoms` random atoms set, a context and targets."""
  model, rng = _model(), np.random.default_rng(seed)
  context, targets = _sets(rng)
  atoms = rng.standard_normal((num_atoms, L)).astype(np.float32)
  latent_atoms.set_atoms(model, atoms)
  return model, rng, context, targets, atoms


def test_prediction_is_the_posterior_average_over_atoms_by_hand():
  model, _, context, targets, atoms = _with_atoms(0, 3)
  logits, aux = model(context, targets)
  r = lambda s, z: np.asarray(model.reward(s, np.broadcast_to(z, s.shape[:-1] + (L,))))
  for u in range(4):
    margin = lambda z: r(context["a"][u], z) - r(context["b"][u], z)
    y = context["label"][u]
    ll = np.array([np.sum(y * np.log(_sig(margin(z))) + (1 - y) * np.log(_sig(-margin(z))))
                   for z in atoms])
    w = np.exp(ll - ll.max()) / np.exp(ll - ll.max()).sum()
    p_a = sum(w[m] * _sig(r(targets["a"][u], z) - r(targets["b"][u], z))
              for m, z in enumerate(atoms))
    np.testing.assert_allclose(_sig(np.asarray(logits[u])), p_a, rtol=1e-4, atol=1e-6)
    # The user's reward is the posterior mean of the atoms' rewards.
    mean_reward = sum(w[m] * r(targets["a"][u], z) for m, z in enumerate(atoms))
    np.testing.assert_allclose(np.asarray(aux["reward_a"][u]), mean_reward, rtol=1e-4,
                               atol=1e-5)


def _sig(x):
  return 1 / (1 + np.exp(-x))


def test_one_atom_predicts_with_that_latent_and_context_mask_counts_pairs_out():
  model, rng, context, targets, z = _with_atoms(1, 1)
  logits, _ = model(context, targets)
  fixed = np.asarray(model.reward(targets["a"], z[None]) - model.reward(targets["b"], z[None]))
  np.testing.assert_allclose(np.asarray(logits), fixed, rtol=1e-4, atol=1e-5)
  # Two atoms: a pair with mask 0 does not move the weights.
  latent_atoms.set_atoms(model, rng.standard_normal((2, L)).astype(np.float32))
  masked = dict(context, mask=np.ones((4, 5), np.float32))
  masked["mask"][:, -1] = 0
  cut = {k: v[:, :-1] for k, v in context.items()}
  np.testing.assert_allclose(np.asarray(latent_atoms.log_posterior(model, masked)),
                             np.asarray(latent_atoms.log_posterior(model, cut)), atol=1e-5)


def test_training_sets_atoms_to_each_training_users_posterior_mean(tiny_config, tmp_path):
  config = edited(tiny_config, **{"train.num_steps": 50})
  data = synthetic.didactic(num_users=20, pairs_per_user=16, seed=0).data
  method = methods.make_method("vpl", config)
  model, _ = train.fit(method, config, data, ckpt_dir=str(tmp_path))
  assert model.atoms[...].shape == (20, config.model.latent_dim)
  u = 7
  context = dict(a=data.a[u:u + 1], b=data.b[u:u + 1], label=data.label[u:u + 1],
                 mask=data.mask[u:u + 1].astype(np.float32))
  np.testing.assert_allclose(np.asarray(model.atoms[...][u]),
                             np.asarray(model.posterior(context)[0][0]), rtol=1e-4, atol=1e-5)
  # Prediction goes through the atoms; a sampled z (training) does not.
  c = {k: data.__dict__[k][:2, :4] for k in ("a", "b", "label")}
  t = {k: data.__dict__[k][:2, 4:8] for k in ("a", "b")}
  np.testing.assert_array_equal(np.asarray(model(c, t)[0]),
                                np.asarray(latent_atoms.predict(model, c, t)[0]))
  logits, aux = model(c, t, jax.random.key(0))
  z = np.asarray(aux["z"])[:, None]
  np.testing.assert_allclose(np.asarray(logits), np.asarray(
      model.reward(t["a"], z) - model.reward(t["b"], z)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fields", [{"model.atom_prior": False},
                                    {"model.decoder": "concat", "loss.nonlinear_l2": 0.0}])
def test_no_atoms_when_off_or_with_the_concat_decoder(tiny_config, fields, tmp_path):
  config = edited(tiny_config, **{"train.num_steps": 50, **fields})
  data = synthetic.didactic(num_users=20, pairs_per_user=16, seed=0).data
  model, _ = train.fit(methods.make_method("vpl", config), config, data, ckpt_dir=str(tmp_path))
  assert getattr(model, "atoms", None) is None


def test_user_means_of_the_latest_pairs_read_only_those():
  """latest=N (pairs in time order, drift): each user's last N real pairs, as a context."""
  data = synthetic.didactic(num_users=6, pairs_per_user=8, seed=0).data
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=L, rngs=nnx.Rngs(0))
  means = vpl_method.user_means(model, data, latest=3)
  for u in (0, 5):
    last = slice(int(data.pairs_per_user[u]) - 3, int(data.pairs_per_user[u]))
    context = dict(a=data.a[u:u + 1, last], b=data.b[u:u + 1, last],
                   label=data.label[u:u + 1, last])
    np.testing.assert_allclose(means[u], np.asarray(model.posterior(context)[0][0]),
                               rtol=1e-5, atol=1e-6)
  assert np.abs(means - vpl_method.user_means(model, data)).max() > 1e-4


def test_user_means_are_blocked_like_one_call():
  data = synthetic.didactic(num_users=10, pairs_per_user=8, seed=0).data
  model = VPLModel(2, hidden=(8,), embed_dim=8, latent_dim=L, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(vpl_method.user_means(model, data, users_per_call=3),
                             vpl_method.user_means(model, data), atol=1e-6)


def test_atom_weights_and_the_towers_likelihood_by_hand():
  """Atoms weighted (a zero weight is never chosen), and with the position-bias tower each
  context answer's likelihood under an atom is the tower's mixture w_g sigmoid(m) + w_a."""
  model = VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, decoder="product_linear",
                   num_conditions=2, rngs=nnx.Rngs(0))
  model.condition_bias.theta[...] = np.array([[0.0, -1.0, -3.0], [0.5, -2.0, -1.5]], np.float32)
  rng = np.random.default_rng(3)
  context, targets = _sets(rng)
  context["condition"] = rng.integers(0, 2, (4, 5))
  targets["condition"] = rng.integers(0, 2, (4, 6))
  atoms = 3 * rng.standard_normal((3, L)).astype(np.float32)
  weight = np.array([1.0, 0.0, 3.0])
  latent_atoms.set_atoms(model, atoms, weight)
  logits, _ = model(context, targets)
  theta = np.asarray(model.condition_bias.theta[...], np.float64)
  w_Cx3 = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
  r = lambda s, z: np.asarray(model.reward(s, np.broadcast_to(z, s.shape[:-1] + (L,))))
  mixture = lambda m, c: w_Cx3[c, 0] * _sig(m) + w_Cx3[c, 1]  # P(a | c)
  for u in range(4):
    c, y = context["condition"][u], context["label"][u]
    ll = np.array([np.sum(np.log(np.where(y > 0.5, mixture(m, c), 1 - mixture(m, c))))
                   for m in (r(context["a"][u], z) - r(context["b"][u], z) for z in atoms)])
    post = weight * np.exp(ll - ll.max())
    post /= post.sum()
    assert post[1] == 0
    p_a = sum(post[m] * _sig(r(targets["a"][u], z) - r(targets["b"][u], z))
              for m, z in enumerate(atoms))
    np.testing.assert_allclose(_sig(np.asarray(logits[u])), mixture(
        np.log(p_a / (1 - p_a)), targets["condition"][u]), rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="atom weights: need 3 finite values >= 0"):
    latent_atoms.set_atoms(model, atoms, np.array([1.0, -1.0, 0.0]))
