"""`load_run`: a run trained on 4 forced CPU devices (in a subprocess) is rebuilt from its
workdir here, on 1 device, and re-scores exactly as its results.json says."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from conftest import run_python, subprocess_env
from vpl import analysis, configs, methods, runs, train
from vpl.models import latent_atoms


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run") / "w")
  run_python(["-m", "experiments.main", f"--workdir={workdir}",
              "--config=experiments/configs/tiny.py", "--config.train.num_steps=40",
              "--config.train.steps_per_call=20", "--config.train.checkpoint_every=20",
              "--config.eval.reward_maps=False"],
             env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  return workdir


@pytest.mark.slow
def test_restores_on_one_device_and_reproduces_results(four_device_run):
  assert jax.device_count() == 1  # this process; the run used 4 (checked in the sharding)
  run = analysis.load_run(four_device_run)
  assert run.steps == {"btl": 40, "vpl": 40} and run.skipped == {}
  assert list(run.config.methods) == ["btl", "vpl"]
  assert run.heldout.num_users == run.results["num_heldout_users"]
  scores = run.evaluate()
  for name in ("btl", "vpl"):
    saved = dict(run.results["methods"][name])
    saved.pop("train_seconds"), saved.pop("fit")  # what training recorded, not scores
    assert scores[name] == saved  # exact: the same parameters, data and context pairs


@pytest.mark.slow
def test_latent_or_decoder_scores_the_run_and_splits_its_targets(four_device_run):
  """experiments/latent_or_decoder.py: its as-scored accuracy is the run's held-out accuracy, and
  the targets it calls seen are those some training user labelled (checked by hand here)."""
  out = run_python(["-m", "experiments.latent_or_decoder", f"--workdir={four_device_run}"],
                   env=subprocess_env())
  row = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
  run = analysis.load_run(four_device_run)
  saved = run.results["methods"]["vpl"]
  assert row["heldout_as_scored"] == pytest.approx(saved["heldout_accuracy"], abs=1e-4)  # printed to 4 places
  if not run.config.model.atom_prior:
    assert row["heldout_own_z"] == pytest.approx(saved["heldout_accuracy"], abs=0.01)
  assert row["num_targets"] == int(run.target_mask.sum())
  train, held = run.train_data, run.heldout
  labelled = {frozenset((a.tobytes(), b.tobytes()))
              for a, b in zip(train.a[train.mask], train.b[train.mask])}
  unseen = sum(frozenset((a.tobytes(), b.tobytes())) not in labelled
               for a, b in zip(held.a[run.target_mask], held.b[run.target_mask]))
  assert row["num_unseen_targets"] == unseen
  for key in ("heldout_group_z", "train_pairs_group_z"):
    assert 0.0 <= row[key] <= 1.0


@pytest.mark.slow
def test_latent_views_agree(four_device_run):
  run = analysis.load_run(four_device_run)
  lat = run.latents("vpl")
  assert lat["mu"].shape == (run.heldout.num_users, run.config.model.latent_dim)
  np.testing.assert_array_equal(lat["group"], run.heldout.group)
  # One user's posterior from their context pairs is the latent evaluation used.
  u = 3
  ctx = {k: getattr(run.heldout, k)[u, run.context_idx[u]] for k in ("a", "b", "label")}
  mu, log_var = run.posterior("vpl", ctx["a"], ctx["b"], ctx["label"])
  np.testing.assert_allclose(mu, lat["mu"][u], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_var, lat["log_var"][u], rtol=1e-5, atol=1e-6)
  # Rewards given the context are the posterior mean of the trained users' latents' rewards
  # (model.atom_prior), weighted by how well each explains the context.
  items = np.random.default_rng(0).uniform(-1, 1, (5, 7, 2)).astype(np.float32)
  assert run.rewards("vpl", items, z=mu).shape == (5, 7)
  model = run.models["vpl"]
  atoms = np.asarray(model.atoms[...])
  assert len(atoms) == run.train_data.num_users
  log_w = np.asarray(latent_atoms.log_posterior(model, {k: v[None] for k, v in ctx.items()}))
  want = sum(np.exp(log_w[0, m]) * run.rewards("vpl", items, z=z) for m, z in enumerate(atoms))
  np.testing.assert_allclose(run.rewards("vpl", items, context=ctx), want, rtol=1e-4,
                             atol=1e-5)
  # BTL ignores the context: any user's context gives the same rewards.
  other = {k: v[::-1] for k, v in ctx.items()}
  np.testing.assert_array_equal(run.rewards("btl", items, context=ctx),
                                run.rewards("btl", items, context=other))
  with pytest.raises(ValueError, match="'btl' has no user latent"):
    run.posterior("btl", ctx["a"], ctx["b"], ctx["label"])
  with pytest.raises(ValueError, match="no reward"):
    run.rewards("btl", items, z=mu)
  all_users = run.latents("vpl", users="all")
  assert all_users["mu"].shape[0] == run.task.data.num_users
  # Asked 0, 1, 4 questions: every budget scored on the same fixed targets.
  by_budget = run.adaptation("vpl", "info_gain", [0, 1, 4])
  assert list(by_budget) == [0, 1, 4]
  assert len({r["num_targets"] for r in by_budget.values()}) == 1
  assert by_budget[0]["posterior_spread"] == pytest.approx(1.0)  # the prior N(0, I)
  assert by_budget[4]["posterior_spread"] < 1.0


@pytest.mark.slow
def test_step_choice_and_skips(four_device_run, monkeypatch):
  early = analysis.load_run(four_device_run, step=20)
  late = analysis.load_run(four_device_run)
  assert early.steps == {"btl": 20, "vpl": 20}
  # Restored at step 20, the model predicts what it did then, not what it does at 40.
  items = np.random.default_rng(1).uniform(-1, 1, (16, 2)).astype(np.float32)
  ctx = dict(a=items[:2], b=items[2:4], label=np.ones(2, np.float32))
  assert not np.allclose(early.rewards("btl", items, context=ctx),
                         late.rewards("btl", items, context=ctx))
  with pytest.raises(ValueError, match=r"step = 30 is not saved .*saved steps: \[20, 40\]"):
    analysis.load_run(four_device_run, step=30)

  # A method with its own fit and no restore hook is skipped, with the reason.
  make_btl = methods.REGISTRY["btl"]
  monkeypatch.setitem(methods.REGISTRY, "btl",
                      lambda c: dataclasses.replace(make_btl(c), fit=train.fit))
  run = analysis.load_run(four_device_run)
  assert sorted(run.models) == ["vpl"]
  assert "own fit and has no restore" in run.skipped["btl"]
  with pytest.raises(ValueError, match="'btl' is not loaded .*own fit"):
    run.rewards("btl", items, context=ctx)
  assert set(run.evaluate()) == {"vpl"}


def test_not_a_run_directory(tmp_path):
  with pytest.raises(ValueError, match="config.json does not exist"):
    analysis.load_run(str(tmp_path))


def test_read_metrics_keeps_the_last_line_per_step(tmp_path):
  rows = [dict(method="vpl", step=10, loss=3.0), dict(method="vpl", step=20, loss=2.0),
          dict(method="btl", step=10, loss=0.7),
          dict(method="vpl", step=20, loss=1.5)]  # resumed at 10: step 20 logged again
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  curves = analysis.read_metrics(str(tmp_path))
  np.testing.assert_array_equal(curves["vpl"]["step"], [10, 20])
  np.testing.assert_array_equal(curves["vpl"]["loss"], [3.0, 1.5])
  np.testing.assert_array_equal(curves["btl"]["loss"], [0.7])


def test_with_overrides_and_collect(tiny_config, tmp_path):
  before = tiny_config.loss.beta
  assert before != 0.6
  c = configs.with_overrides(tiny_config, {"loss.beta": 0.6, "model.latent_dim": 2})
  assert (c.loss.beta, c.model.latent_dim, tiny_config.loss.beta) == (0.6, 2, before)
  with pytest.raises(ValueError, match="no field 'betta'"):
    configs.with_overrides(tiny_config, {"loss.betta": 0.1})
  # One finished run (config.json + results.json written by hand), one unfinished.
  done, running = tmp_path / "done", tmp_path / "running"
  for w in (done, running):
    os.makedirs(w)
    (w / "config.json").write_text(c.to_json())
  (done / "results.json").write_text(json.dumps(dict(
      oracle_accuracy=1.0, btl_ceiling=0.7,
      methods=dict(vpl=dict(heldout_accuracy=0.9, worst_group_accuracy=0.8)))))
  rows = runs.collect_results([str(done), str(running)], ["loss.beta", "model.latent_dim"])
  assert rows == [dict(workdir=str(done), method="vpl", **{"loss.beta": 0.6},
                       **{"model.latent_dim": 2}, heldout_accuracy=0.9,
                       divergent_accuracy=rows[0]["divergent_accuracy"],
                       worst_group_accuracy=0.8, active_units=None, oracle_accuracy=1.0,
                       btl_ceiling=0.7)]
  assert np.isnan(rows[0]["divergent_accuracy"])
  assert runs.markdown_table(rows, ["method", "loss.beta", "heldout_accuracy"]) == (
      "| method | loss.beta | heldout_accuracy |\n| --- | --- | --- |\n| vpl | 0.600 | 0.900 |")
