"""vpl/experiment.py: an end-to-end tiny run of `train_and_evaluate`, and its workdir."""

import json
import math
import os

import pytest

from conftest import edited
from experiments.configs import tiny
from vpl import experiment

METHOD_KEYS = {"heldout_accuracy", "divergent_accuracy", "group_accuracy",
               "divergent_group_accuracy", "worst_group_accuracy", "train_seconds"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """experiments/configs/tiny.py trained and evaluated once (~10 s); shared by this module."""
  config = tiny.get_config()
  workdir = str(tmp_path_factory.mktemp("tiny_run"))
  calls = []
  results = experiment.train_and_evaluate(config, workdir,
                                          on_chunk=lambda name, step: calls.append((name,
                                                                                    step)))
  return dict(config=config, workdir=workdir, results=results, calls=calls)


def test_results_json_schema(run):
  with open(os.path.join(run["workdir"], "results.json")) as f:
    results = json.load(f)
  assert results == json.loads(json.dumps(run["results"]))  # what was returned was written
  assert {"task", "seed", "oracle_accuracy", "btl_ceiling", "methods"} <= set(results)
  assert results["task"] == "didactic" and results["seed"] == 0
  assert {"oracle", "btl", "vpl"} <= set(results["methods"])
  for name in ("oracle", "btl", "vpl"):
    m = results["methods"][name]
    assert METHOD_KEYS <= set(m), name
    for key in ("heldout_accuracy", "divergent_accuracy", "worst_group_accuracy"):
      assert 0.0 <= m[key] <= 1.0, (name, key)
    assert set(m["group_accuracy"]) == set(m["divergent_group_accuracy"]) == {"0", "1"}
    assert m["worst_group_accuracy"] == min(m["group_accuracy"].values())
    assert m["train_seconds"] >= 0
  assert results["methods"]["btl"]["train_seconds"] > 0
  assert results["methods"]["vpl"]["train_seconds"] > 0
  assert {"mean_kl", "active_units", "latent_dim"} <= set(results["methods"]["vpl"])


def test_accuracies(run):
  results = run["results"]
  btl, vpl = results["methods"]["btl"], results["methods"]["vpl"]
  # Noiseless labels (temperature 0): the generating reward is always right.
  assert results["oracle_accuracy"] == 1.0
  assert results["methods"]["oracle"]["heldout_accuracy"] == 1.0
  # Two groups that disagree on some pairs: no single reward can be always right.
  assert 0.5 < results["btl_ceiling"] < 0.9
  # Measured over seeds 0-7 of the tiny config: VPL 0.74-0.90, BTL 0.64-0.69, ceiling
  # 0.65-0.69; VPL beat BTL by 0.056 (seed 0, the one run here) to 0.23, and BTL sat within
  # 0.01 of its ceiling. The bounds below leave room for platform-level float differences.
  assert vpl["heldout_accuracy"] > btl["heldout_accuracy"] + 0.03
  assert vpl["heldout_accuracy"] > 0.7
  assert btl["heldout_accuracy"] < results["btl_ceiling"] + 0.05
  assert vpl["divergent_accuracy"] > btl["divergent_accuracy"]
  assert vpl["active_units"] >= 1  # the latent is used: no posterior collapse


def test_workdir_files(run):
  workdir, config = run["workdir"], run["config"]
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["seed"] == config.seed
  assert saved["train"]["num_steps"] == config.train.num_steps
  assert saved["model"]["hidden"] == list(config.model.hidden)

  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = list(range(50, 201, 50))  # one row per jitted call of steps_per_call = 50
  assert [(r["method"], r["step"]) for r in rows] == (
      [("btl", s) for s in steps] + [("vpl", s) for s in steps])
  assert all(math.isfinite(r["loss"]) and r["steps_per_s"] > 0 for r in rows)
  assert {"nll", "kl", "beta", "grad_norm"} <= set(rows[-1])
  assert run["calls"] == [(r["method"], r["step"]) for r in rows]

  with open(os.path.join(workdir, "reward_maps.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.getsize(os.path.join(workdir, "reward_maps.png")) > 10_000
  assert "| vpl |" in open(os.path.join(workdir, "results.md")).read()
  for name in ("btl", "vpl"):
    # checkpoint_every = 100: steps 100 and 200 kept.
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints", name))) == ["100", "200"]


def test_rerun_on_the_same_workdir_resumes_and_reproduces(run):
  results = experiment.train_and_evaluate(run["config"], run["workdir"])

  def strip(r):
    return {name: {k: v for k, v in m.items() if k not in ("train_seconds", "fit")}
            for name, m in r["methods"].items()}

  assert strip(results) == strip(run["results"])
  assert run["results"]["methods"]["vpl"]["fit"]["resumed_from"] is None
  assert results["methods"]["vpl"]["fit"] == dict(final_step=200, resumed_from=200)
  # Nothing was trained again: no new metrics rows, and the training time is the saved one.
  rows = open(os.path.join(run["workdir"], "metrics.jsonl")).read().splitlines()
  assert len(rows) == 8
  for name in ("btl", "vpl"):
    assert results["methods"][name]["train_seconds"] == pytest.approx(
        run["results"]["methods"][name]["train_seconds"], rel=0.5)


def test_a_workdir_with_a_different_config_is_refused(run):
  other = edited(run["config"], seed=1)
  with pytest.raises(ValueError, match=r"config.json holds a run with a different config.*"
                                       r"new --workdir"):
    experiment.train_and_evaluate(other, run["workdir"])


def test_build_task_uses_the_config_seed_and_kwargs(tiny_config):
  task = experiment.build_task(tiny_config)
  assert task.name == "didactic"
  assert task.data.num_users == 120 and task.data.a.shape[1] == 24
  other = experiment.build_task(edited(tiny_config, seed=5))
  assert (task.data.a != other.data.a).any()
