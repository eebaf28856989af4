"""PReF's bases refitted under the trained users' weights as the prior (pref_refine.py)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import edited
from vpl import analysis, experiment, methods
from vpl.methods import pref_refine


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_leave_one_out_posterior_means_by_hand():
  rng = np.random.default_rng(0)
  users, pairs, bases = 5, 6, 3
  v = rng.standard_normal((users, pairs, bases)).astype(np.float32)
  y = (rng.random((users, pairs)) < 0.5).astype(np.float32)
  mask = np.ones((users, pairs), np.float32)
  mask[1, 4:] = 0  # user 1 has 4 pairs
  weights = 3 * rng.standard_normal((users, bases)).astype(np.float32)
  got = np.asarray(pref_refine.loo_posterior_means(jnp.asarray(v), jnp.asarray(y),
                                                   jnp.asarray(mask), jnp.asarray(weights)))
  for u in range(users):
    others = [m for m in range(users) if m != u]
    p_a = _sigmoid(np.einsum("kj,mj->mk", v[u], weights[others]))
    ll = ((y[u] * np.log(p_a) + (1 - y[u]) * np.log(1 - p_a)) * mask[u]).sum(1)
    w = np.exp(ll - ll.max())
    np.testing.assert_allclose(got[u], (w / w.sum()) @ weights[others], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fields, match", [
    ({"pref.refine_rounds": -1}, "refine_rounds"),
    ({"pref.refine_rounds": 1, "pref.refine_steps": 0}, "refine_steps"),
    ({"pref.refine_params": "bases"}, "refine_params")])
def test_bad_refine_settings_name_the_field(tiny_config, fields, match):
  with pytest.raises(ValueError, match=match):
    methods.make_method("pref", edited(tiny_config, **fields))


def test_refinement_is_skipped_with_the_population_head(tiny_config):
  config = edited(tiny_config, **{"pref.refine_rounds": 2})
  assert pref_refine.check(config.pref, 0) == 2
  assert pref_refine.check(edited(config, **{"pref.population_head": True}).pref, 0) == 0
  assert pref_refine.check(config.pref, 2) == 0  # the position-bias tower


def test_refined_run_restores_and_rescores_exactly(tiny_config, tmp_path):
  base = edited(tiny_config, methods=("pref",),
                **{"pref.refine_steps": 50, "pref.refine_rounds": 0,
                   "pref.refine_params": "output"})
  experiment.train_and_evaluate(base, str(tmp_path / "plain"))
  experiment.train_and_evaluate(edited(base, **{"pref.refine_rounds": 2}), str(tmp_path / "r"))
  with open(tmp_path / "r" / "results.json") as f:
    saved = json.load(f)["methods"]["pref"]
  run = analysis.load_run(str(tmp_path / "r"))
  again = run.evaluate()["pref"]
  assert again == {k: v for k, v in saved.items() if k not in ("train_seconds", "fit")}
  # The refinement moved the bases and the weights away from the trained ones.
  plain = analysis.load_run(str(tmp_path / "plain")).models["pref"]
  refined = run.models["pref"]
  x = np.random.default_rng(0).uniform(-1, 1, (20, 2)).astype(np.float32)
  assert not np.allclose(np.asarray(plain.phi(x)), np.asarray(refined.phi(x)), atol=1e-3)
  assert not np.allclose(np.asarray(plain.user_weights[...]),
                         np.asarray(refined.user_weights[...]), atol=1e-3)
  # "output": the MLP's hidden layers are the trained ones; its output layer and the linear
  # path moved.
  layers = lambda m: [np.asarray(l.kernel[...]) for l in m.bases.layers]
  for trained, refit in zip(layers(plain)[:-1], layers(refined)[:-1]):
    np.testing.assert_array_equal(trained, refit)
  assert not np.allclose(layers(plain)[-1], layers(refined)[-1], atol=1e-4)
  assert not np.allclose(np.asarray(plain.linear.kernel[...]),
                         np.asarray(refined.linear.kernel[...]), atol=1e-4)


def test_refit_filter_moves_what_it_names():
  from flax import nnx
  from vpl.models.pref import PReFModel
  model = PReFModel(3, (4, 4), 2, 5, num_scales=1, num_conditions=0, linear_path=True,
                    population_head=False, rngs=nnx.Rngs(0))
  moved = lambda which: sorted(
      path for path, _ in nnx.to_flat_state(nnx.state(model, pref_refine.refit_filter(which,
                                                                                      model))))
  assert moved("linear") == [("linear", "kernel")]
  assert moved("output") == [("bases", "layers", 2, "bias"), ("bases", "layers", 2, "kernel"),
                             ("linear", "kernel")]
  assert len(moved("all")) == 9  # every Param: 3 layers x 2, linear, both weight tables
