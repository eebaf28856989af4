"""Choosing MaxMin's K, PReF's J and VPL's latent size from data (vpl/size_selection.py)."""

import dataclasses
import json
import os

import numpy as np
import pytest
from flax import nnx

from conftest import edited
from vpl import analysis, experiment, methods, size_selection
from vpl.data import synthetic
from vpl.models.mixture import RewardMixture


def test_one_standard_error_picks_the_smallest_size_near_the_best():
  sizes = [1, 2, 3, 4]
  # Best is 4 (-0.50, se 0.02); 3 is within one se of it, 2 is not.
  assert size_selection.one_standard_error(sizes, [-0.9, -0.6, -0.51, -0.50],
                                           [0.01, 0.01, 0.01, 0.02]) == 3
  assert size_selection.one_standard_error(sizes, [-0.9, -0.6, -0.51, -0.50],
                                           [0.01, 0.01, 0.01, 0.005]) == 4


def test_search_stops_after_patience_sizes_without_gain():
  row = lambda ll, se=0.01: dict(heldout_log_lik=ll, heldout_log_lik_se=se)
  curve = [row(-0.9), row(-0.3), row(-0.295), row(-0.31)]
  assert size_selection._no_gain_for(curve, 2)
  assert not size_selection._no_gain_for(curve[:3], 2)  # only one size after the best
  assert not size_selection._no_gain_for(curve[:2] + [row(-0.2), row(-0.3)], 2)
  assert not size_selection._no_gain_for(curve, 0)
  # The mixture: stops once two more sizes add no distinct cluster.
  count = lambda *ns: [dict(distinct_clusters=n) for n in ns]
  assert size_selection._no_gain_for(count(1, 2, 3, 3, 3), 2, "distinct_clusters")
  assert not size_selection._no_gain_for(count(1, 2, 3, 3), 2, "distinct_clusters")


def _labelled_by_heads(model, data, heads_U):
  """`data` with user u's labels the hard preferences of head `heads_U[u]`."""
  margin_UxPxK = np.asarray(model.rewards(data.a) - model.rewards(data.b))
  label = np.take_along_axis(margin_UxPxK, heads_U[:, None, None], 2)[..., 0] > 0
  return dataclasses.replace(data, label=label.astype(np.float32))


def test_distinct_clusters_counts_copies_once():
  model = RewardMixture(2, (8,), 3, rngs=nnx.Rngs(0))
  data = synthetic.didactic(num_users=12, pairs_per_user=20, seed=0).data
  data = _labelled_by_heads(model, data, np.arange(12) % 3)  # each head answers for 4 users
  assert size_selection.distinct_clusters(model, data) == 3  # three random heads differ
  # Head 2 a copy of head 0 (a scaled reward orders every pair alike).
  state = nnx.state(model.heads[0])
  nnx.update(model.heads[2], _scaled_output(state, 2.0))
  assert size_selection.distinct_clusters(model, data) == 2


def test_distinct_clusters_skips_a_cluster_no_user_picks():
  model = RewardMixture(2, (8,), 3, rngs=nnx.Rngs(0))
  data = synthetic.didactic(num_users=12, pairs_per_user=20, seed=0).data
  # Heads 0 and 1 answer for every user; head 2 differs from both but serves no one.
  assert size_selection.distinct_clusters(model, _labelled_by_heads(
      model, data, np.arange(12) % 2)) == 2
  # Even as the heaviest cluster.
  model.log_pi[...] = np.log(np.array([0.2, 0.2, 0.6], np.float32))
  assert size_selection.distinct_clusters(model, _labelled_by_heads(
      model, data, np.arange(12) % 2)) == 2


def _scaled_output(state, factor):
  """The head's parameters with its output layer's weights scaled (bias kept at 0)."""
  import jax
  return jax.tree.map(lambda x: x * factor if x.ndim == 2 and x.shape[-1] == 1 else x, state)


def test_validation_users_bad_fraction_names_the_field():
  data = synthetic.didactic(num_users=10, pairs_per_user=20, seed=0).data
  with pytest.raises(ValueError, match="selection.validation_fraction"):
    size_selection.validation_users(data, 0.05, 4, np.random.default_rng(0))


def test_auto_accepts_sizes_and_auto_on_the_command_line_twin(tiny_config):
  config = edited(tiny_config, **{"maxmin.num_clusters": "auto"})
  assert size_selection.is_auto(config, "maxmin")
  config = edited(config, **{"maxmin.num_clusters": 3})
  assert not size_selection.is_auto(config, "maxmin") and config.maxmin.num_clusters == 3


def test_auto_run_records_the_curve_and_reloads(tiny_config, tmp_path):
  config = edited(tiny_config, **{
      "methods": ("maxmin",), "maxmin.num_clusters": "auto", "maxmin.candidates": (1, 2, 3),
      "maxmin.restarts": 1, "maxmin.max_rounds": 2, "maxmin.steps_per_round": 100,
      "selection.patience": 0})
  results = experiment.train_and_evaluate(config, str(tmp_path))
  sel = results["methods"]["maxmin"]["selection"]
  assert [r["size"] for r in sel["curve"]] == [1, 2, 3]
  # Two groups with opposite bumps: one reward cannot serve both.
  assert sel["curve"][1]["heldout_log_lik"] > sel["curve"][0]["heldout_log_lik"] + 0.05
  assert sel["chosen"] in (2, 3) and all("bic" in r for r in sel["curve"])
  assert os.path.isfile(tmp_path / "selection.png")
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["methods"]["maxmin"]["selection"]["chosen"] == sel["chosen"]
  run = analysis.load_run(str(tmp_path))
  assert run.models["maxmin"].num_clusters == sel["chosen"]
  again = run.evaluate()["maxmin"]["heldout_accuracy"]
  assert again == results["methods"]["maxmin"]["heldout_accuracy"]


def test_vpl_latent_auto_records_the_curve_and_reloads(tiny_config, tmp_path):
  """model.latent_dim = 'auto': one VPL per latent size, scored on validation users; the run
  keeps the chosen size, and a restored run rebuilds the model at that size."""
  config = edited(tiny_config, **{
      "methods": ("vpl",), "model.latent_dim": "auto", "model.latent_candidates": (1, 2),
      "train.num_steps": 150, "selection.patience": 0})
  with pytest.raises(ValueError, match="model.latent_dim = 'auto'"):
    methods.make_method("vpl", config)
  results = experiment.train_and_evaluate(config, str(tmp_path))
  sel = results["methods"]["vpl"]["selection"]
  assert sel["field"] == "model.latent_dim" and [r["size"] for r in sel["curve"]] == [1, 2]
  assert sel["chosen"] in (1, 2)
  assert all(np.isfinite(r["heldout_log_lik"]) for r in sel["curve"])
  run = analysis.load_run(str(tmp_path))
  assert run.models["vpl"].encoder.head.layers[-1].kernel.shape[-1] == 2 * sel["chosen"]
  again = run.evaluate()["vpl"]["heldout_accuracy"]
  assert again == results["methods"]["vpl"]["heldout_accuracy"]


def test_penalty_auto_keeps_the_best_candidate_and_two_autos_are_refused(tiny_config, tmp_path):
  """loss.nonlinear_l2 = 'auto': the candidate with the best validation log-likelihood is kept
  (no one-standard-error rule: a penalty has no smaller model to prefer)."""
  config = edited(tiny_config, **{
      "methods": ("vpl",), "loss.nonlinear_l2": "auto",
      "loss.nonlinear_l2_candidates": (0.0, 3.0), "train.num_steps": 150,
      "selection.patience": 0})
  results = experiment.train_and_evaluate(config, str(tmp_path))
  sel = results["methods"]["vpl"]["selection"]
  lls = [r["heldout_log_lik"] for r in sel["curve"]]
  assert sel["field"] == "loss.nonlinear_l2" and [r["size"] for r in sel["curve"]] == [0.0, 3.0]
  assert sel["chosen"] == [0.0, 3.0][int(np.argmax(lls))]
  run = analysis.load_run(str(tmp_path))
  assert run.evaluate()["vpl"]["heldout_accuracy"] == results["methods"]["vpl"][
      "heldout_accuracy"]
  both = edited(config, **{"model.latent_dim": "auto"})
  with pytest.raises(ValueError, match="model.latent_dim and loss.nonlinear_l2 are all 'auto'"):
    size_selection.is_auto(both, "vpl")


def test_selection_figure_when_the_kept_size_was_not_tried(tmp_path):
  """MaxMin keeps the distinct clusters of a fit (11 of K = 12): the figure still draws."""
  from vpl import selection_plots
  curve = [dict(size=k, heldout_log_lik=-1.0 / k, heldout_log_lik_se=0.01) for k in (10, 12)]
  sel = dict(field="maxmin.num_clusters", chosen=11, chosen_by_likelihood=12, curve=curve)
  selection_plots.selection_curves([("navigation10 (true=10)", [("seed 0", sel)])],
                                   str(tmp_path / "s.png"))
  assert os.path.getsize(tmp_path / "s.png") > 0
