"""vpl/models: the set encoder's invariances, z changing r, shapes and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from vpl.models.btl import BTLReward
from vpl.models.mlp import MLP
from vpl.models.vpl import SetEncoder, VPLModel, masked_mean

B, N, D, L = 3, 6, 2, 3


def _context(seed=0, soft=False):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(B, N, D)).astype(np.float32)
  b = rng.normal(size=(B, N, D)).astype(np.float32)
  label = (rng.random((B, N)) if soft else rng.integers(0, 2, (B, N))).astype(np.float32)
  return a, b, label


# A mask with a different number of real pairs per set, none empty.
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 0]], bool)


@pytest.fixture(scope="module", params=["mean", "attention", "bayes", "deepsets:mean",
                                        "deepsets:attention"])
def encoder(request):
  layout, pooling = (request.param.split(":") if ":" in request.param
                     else ("pairwise", request.param))
  return SetEncoder(D, (16, 16), 8, L, pooling=pooling, num_heads=2, layout=layout,
                    rngs=nnx.Rngs(0))


def test_deepsets_encoder_runs_one_layer_per_pair_and_the_rest_per_set():
  enc = SetEncoder(D, (16, 16), 8, L, layout="deepsets", rngs=nnx.Rngs(0))
  assert len(enc.pair.layers) == 1 and len(enc.head.layers) == 3
  a, b, label = _context()
  y = label[..., None]
  x = np.concatenate([y * a + (1 - y) * b, y * b + (1 - y) * a, np.abs(2 * y - 1)], -1)
  pooled = jax.nn.gelu(enc.pair.layers[0](jnp.asarray(x))).mean(1)  # [B, 8], once per set
  mu, log_var = jnp.split(enc.head(pooled), 2, axis=-1)
  got = _encode(enc, a, b, label)
  np.testing.assert_allclose(got[0], mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[1], log_var, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="model.encoder = 'deepsets'.*bayes"):
    SetEncoder(D, (8,), 8, L, pooling="bayes", layout="deepsets", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="model.encoder = 'perpair'"):
    SetEncoder(D, (8,), 8, L, layout="perpair", rngs=nnx.Rngs(0))


def _encode(encoder, a, b, label, mask=None):
  return [np.asarray(x) for x in encoder(jnp.asarray(a), jnp.asarray(b), jnp.asarray(label),
                                         None if mask is None else jnp.asarray(mask))]


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_encoder_is_permutation_invariant(encoder, use_mask, soft):
  a, b, label = _context(soft=soft)
  mask = MASK if use_mask else None
  mu, log_var = _encode(encoder, a, b, label, mask)
  rng = np.random.default_rng(1)
  for _ in range(3):
    perm = np.stack([rng.permutation(N) for _ in range(B)])  # a different order per set
    take = lambda x: np.take_along_axis(x, perm[..., None] if x.ndim == 3 else perm, axis=1)
    mu_p, log_var_p = _encode(encoder, take(a), take(b), take(label),
                              None if mask is None else take(mask))
    np.testing.assert_allclose(mu_p, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_var_p, log_var, rtol=1e-5, atol=1e-6)


def test_encoder_ignores_masked_out_pairs(encoder):
  a, b, label = _context()
  mu, log_var = _encode(encoder, a, b, label, MASK)
  rng = np.random.default_rng(2)
  junk = lambda x: np.where(MASK[..., None] if x.ndim == 3 else MASK, x,
                            (10 * rng.normal(size=x.shape)).astype(np.float32))
  mu_j, log_var_j = _encode(encoder, junk(a), junk(b), np.where(MASK, label, 1 - label), MASK)
  np.testing.assert_allclose(mu_j, mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_var_j, log_var, rtol=1e-5, atol=1e-6)
  # Dropping the masked-out pairs altogether gives the same posterior as masking them.
  for row in range(B):
    keep = MASK[row]
    mu_r, log_var_r = _encode(encoder, a[row:row + 1, keep], b[row:row + 1, keep],
                              label[row:row + 1, keep])
    np.testing.assert_allclose(mu_r[0], mu[row], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_var_r[0], log_var[row], rtol=1e-5, atol=1e-6)


def test_bayes_pooling_multiplies_gaussian_factors_and_shrinks_with_each_pair():
  enc = SetEncoder(D, (16, 16), 8, L, pooling="bayes", rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=(1, 6, D)).astype(np.float32) for _ in range(2))
  y = (rng.random((1, 6)) < 0.5).astype(np.float32)
  variances = []
  for n in range(7):  # 0 .. 6 real pairs
    mask = (np.arange(6) < n)[None]
    _, log_var = enc(a, b, y, mask)
    variances.append(np.exp(np.asarray(log_var))[0])
  np.testing.assert_allclose(variances[0], 1.0)  # no pair: the prior N(0, I)
  assert all((later < earlier).all() for earlier, later in zip(variances, variances[1:]))
  # By hand: precision 1 + sum of the pairs' precisions, mean = weighted mean over it.
  h = enc.pair(np.concatenate([np.where(y[..., None] > 0.5, a, b),
                               np.where(y[..., None] > 0.5, b, a), np.abs(2 * y - 1)[..., None]],
                              -1))
  mu_i, log_prec_i = np.split(np.asarray(enc.head(h)), 2, axis=-1)
  prec_i = np.exp(np.clip(log_prec_i, -10, 10))
  mu, log_var = enc(a, b, y)
  np.testing.assert_allclose(np.exp(-np.asarray(log_var)), 1 + prec_i.sum(1), rtol=1e-5)
  np.testing.assert_allclose(mu, (prec_i * mu_i).sum(1) / (1 + prec_i.sum(1)), rtol=1e-4,
                             atol=1e-6)


def test_encoder_depends_on_the_real_pairs(encoder):
  # Guards the invariance tests above against an encoder that ignores its input.
  a, b, label = _context()
  mu, _ = _encode(encoder, a, b, label, MASK)
  mu_flipped, _ = _encode(encoder, a, b, 1 - label, MASK)
  assert np.abs(mu_flipped - mu).max() > 1e-4
  moved = a.copy()
  moved[:, 2] += 1.0  # pair 2 is real in every set
  mu_moved, _ = _encode(encoder, moved, b, label, MASK)
  assert (np.abs(mu_moved - mu).max(axis=1) > 1e-4).all()


@pytest.mark.parametrize("soft", [False, True])
def test_encoder_swap_a_b_with_flipped_label(encoder, soft):
  a, b, label = _context(soft=soft)
  swap = np.random.default_rng(3).random((B, N)) < 0.5  # swap about half of the pairs
  a_s = np.where(swap[..., None], b, a)
  b_s = np.where(swap[..., None], a, b)
  label_s = np.where(swap, 1 - label, label)
  for mask in (None, MASK):
    mu, log_var = _encode(encoder, a, b, label, mask)
    mu_s, log_var_s = _encode(encoder, a_s, b_s, label_s, mask)
    np.testing.assert_allclose(mu_s, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_var_s, log_var, rtol=1e-5, atol=1e-6)


def test_masked_mean_by_hand():
  x = jnp.arange(12.0).reshape(1, 4, 3)
  mask = jnp.array([[True, False, True, False]])
  np.testing.assert_allclose(masked_mean(x, mask), [[3.0, 4.0, 5.0]])  # rows 0 and 2
  np.testing.assert_allclose(masked_mean(x, None), [[4.5, 5.5, 6.5]])


@pytest.fixture(scope="module")
def model():
  return VPLModel(D, hidden=(16, 16), embed_dim=8, latent_dim=L, rngs=nnx.Rngs(0))


def test_changing_z_changes_the_reward(model):
  s = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (10, D)), jnp.float32)
  z1, z2 = jnp.zeros(L), jnp.array([1.0, -0.5, 0.3])
  r1, r2 = np.asarray(model.reward(s, z1)), np.asarray(model.reward(s, z2))
  assert r1.shape == r2.shape == (10,)
  assert np.abs(r1 - r2).max() > 1e-3
  # Not only a constant shift: z changes which states are preferred by how much.
  assert np.std(r1 - r2) > 1e-4
  # The same z gives the same reward, broadcast per state or given per state.
  np.testing.assert_allclose(model.reward(s, jnp.broadcast_to(z2, (10, L))), r2, rtol=1e-6)


def test_vpl_forward_shapes_and_aux(model):
  a, b, label = _context()
  targets = dict(a=jnp.asarray(a[:, :4]), b=jnp.asarray(b[:, :4]))
  context = dict(a=a, b=b, label=label)
  logits, aux = model(context, targets)
  assert logits.shape == (B, 4)
  assert {k: v.shape for k, v in aux.items()} == dict(
      mu=(B, L), log_var=(B, L), z=(B, L), reward_a=(B, 4), reward_b=(B, 4))
  np.testing.assert_array_equal(aux["z"], aux["mu"])  # no key: the posterior mean
  np.testing.assert_allclose(logits, aux["reward_a"] - aux["reward_b"], rtol=1e-5, atol=1e-6)
  # With a key, z = mu + sigma * eps for that key's eps.
  key = jax.random.key(7)
  _, aux_k = model(context, targets, key)
  eps = jax.random.normal(key, aux["mu"].shape)
  np.testing.assert_allclose(aux_k["z"], aux["mu"] + jnp.exp(0.5 * aux["log_var"]) * eps,
                             rtol=1e-5, atol=1e-6)
  assert np.abs(np.asarray(aux_k["z"] - aux["z"])).max() > 1e-3


def test_prior_fixed_and_learned():
  fixed = VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, rngs=nnx.Rngs(0))
  for x in fixed.prior():
    np.testing.assert_array_equal(x, np.zeros(L))
  learned = VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, learned_prior=True,
                     rngs=nnx.Rngs(0))
  names = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(learned, nnx.Param))}
  assert {"prior_mu", "prior_log_var"} <= names
  learned.prior_mu[...] = jnp.ones(L)
  np.testing.assert_array_equal(learned.prior()[0], np.ones(L))


def test_btl_and_mlp_shapes():
  btl = BTLReward(D, (8, 8), rngs=nnx.Rngs(0))
  assert btl(jnp.zeros((5, 7, D))).shape == (5, 7)
  mlp = MLP(4, (8,), 3, rngs=nnx.Rngs(0))
  assert len(mlp.layers) == 2
  assert mlp(jnp.zeros((2, 4))).shape == (2, 3)


def test_bad_encoder_arguments_raise():
  with pytest.raises(ValueError, match=r"model.pooling = 'max'; choose 'mean', 'attention' or"):
    SetEncoder(D, (8,), 8, L, pooling="max", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"model.embed_dim = 10 .*model.num_heads = 4"):
    SetEncoder(D, (8,), 10, L, pooling="attention", num_heads=4, rngs=nnx.Rngs(0))


def test_mlp_activation_is_leaky_relu_when_asked_and_names_the_choices():
  mlp = MLP(D, (8,), 1, activation="leaky_relu", rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, D)).astype(np.float32))
  h = mlp.layers[0](x)
  want = mlp.layers[1](jnp.where(h > 0, h, 0.2 * h))
  np.testing.assert_allclose(mlp(x), want, rtol=1e-6, atol=1e-7)
  gelu = MLP(D, (8,), 1, rngs=nnx.Rngs(0))  # same initial weights, GELU between them
  assert np.abs(np.asarray(gelu(x) - mlp(x))).max() > 1e-4
  with pytest.raises(ValueError, match="model.activation = 'relu'.*gelu.*leaky_relu"):
    MLP(D, (8,), 1, activation="relu", rngs=nnx.Rngs(0))
  model = VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, decoder="concat",
                   activation="leaky_relu", rngs=nnx.Rngs(0))
  assert model.decoder.mlp.activation is mlp.activation


@pytest.mark.parametrize("decoder", ["concat", "product", "product_linear"])
def test_vpl_decoder_blocks_same_function_and_last_bias_unused(decoder):
  """model.decoder_blocks runs the sets through the decoder in blocks: the same logits and
  gradients; the decoder's last bias cancels in r(a) - r(b), so its gradient is exactly 0
  (1 and N devices then end with the same parameters)."""
  a, b, label = _context()
  targets = dict(a=jnp.asarray(b[:, ::-1]), b=jnp.asarray(a))
  context = dict(a=a, b=b, label=label)
  y = jnp.asarray(label)
  grads, logits = {}, {}
  for blocks in (1, 2, 3):
    model = VPLModel(D, hidden=(8, 8), embed_dim=8, latent_dim=L, decoder=decoder,
                     decoder_blocks=blocks, rngs=nnx.Rngs(0))

    def loss(model):
      out, _ = model(context, targets)
      return optax.sigmoid_binary_cross_entropy(out, y).mean(), out

    (_, logits[blocks]), grads[blocks] = nnx.value_and_grad(loss, has_aux=True)(model)
    tower = getattr(grads[blocks].decoder, "mlp" if decoder == "concat" else "item")
    last = tower.layers[max(tower.layers.keys())]
    np.testing.assert_array_equal(np.asarray(last.bias[...]), 0.0)
  for blocks in (2, 3):
    np.testing.assert_allclose(logits[blocks], logits[1], rtol=1e-5, atol=1e-6)
    for g, g1 in zip(jax.tree.leaves(nnx.state(grads[blocks])),
                     jax.tree.leaves(nnx.state(grads[1]))):
      np.testing.assert_allclose(g, g1, rtol=1e-4, atol=1e-6)


def test_vpl_decoder_blocks_must_be_positive():
  with pytest.raises(ValueError, match="model.decoder_blocks = 0"):
    VPLModel(D, hidden=(8,), embed_dim=8, latent_dim=L, decoder_blocks=0, rngs=nnx.Rngs(0))


def test_product_linear_decoder_adds_a_linear_path_by_hand():
  """model.decoder = 'product_linear': phi(s) = MLP(s) + A s; the pair logit is r(a) - r(b)
  and nonlinear_l2 is the squared norm of the item MLP's output kernel."""
  a, b, _ = _context()
  z = jnp.asarray(np.random.default_rng(1).normal(size=(B, 1, L)), jnp.float32)
  model = VPLModel(D, hidden=(8, 8), embed_dim=5, latent_dim=L, decoder="product_linear",
                   rngs=nnx.Rngs(0))
  dec = model.decoder
  kernel = np.asarray(dec.linear.kernel[...])
  assert kernel.shape == (D, 5)
  np.testing.assert_allclose(dec.embed(a), np.asarray(dec.item(a)) + a @ kernel, rtol=1e-5,
                             atol=1e-6)
  diff, r_a, r_b = dec.pair(a, b, z)
  np.testing.assert_allclose(r_a, dec(a, z), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(diff, dec(a, z) - dec(b, z), rtol=1e-4, atol=1e-5)
  last = np.asarray(dec.item.layers[-1].kernel[...])
  np.testing.assert_allclose(dec.nonlinear_l2(), (last ** 2).sum(), rtol=1e-6)
  plain = VPLModel(D, hidden=(8, 8), embed_dim=5, latent_dim=L, decoder="product",
                   rngs=nnx.Rngs(0))
  assert plain.decoder.linear is None
  with pytest.raises(ValueError, match="product_linear"):
    VPLModel(D, hidden=(8,), embed_dim=5, latent_dim=L, decoder="linear", rngs=nnx.Rngs(0))
