"""Each notebook (jupytext percent format: plain Python) runs headless on tiny settings and
saves its figures. 01 and 03 use the run 00 trained, so they share one output folder."""

import os

import pytest

from conftest import run_python, subprocess_env

pytestmark = pytest.mark.slow

FIGURES = {
    "00_quickstart": ["00_training_curves.png", "00_reward_maps.png"],
    "01_inspect_run": ["01_latent_space_vpl.png", "01_reward_maps.png",
                       "01_accuracy_vs_questions.png"],
    "02_ablations": ["02_ablations.png"],
    "03_interview": ["03_interview.png"],  # interviews a user with 00's run
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("notebooks"))


@pytest.mark.parametrize("name", list(FIGURES))  # in order: 01 reads 00's run
def test_notebook_runs_and_saves_its_figures(name, out_dir):
  env = subprocess_env(VPL_NOTEBOOK_TINY="1", VPL_NOTEBOOK_OUT=out_dir, MPLBACKEND="Agg")
  proc = run_python([f"notebooks/{name}.py"], env=env, timeout=240)
  for figure in FIGURES[name]:
    path = os.path.join(out_dir, "figures", figure)
    assert os.path.getsize(path) > 5000, f"{name} did not save {figure}"
  if name == "01_inspect_run":  # re-scored from the checkpoint as results.json says
    for method in ("btl", "vpl"):
      line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{method}: held-out"))
      score, saved = line.split("accuracy ")[1].split(" (results.json: ")
      assert float(score) == round(float(saved.rstrip(")")), 3)
  if name == "02_ablations":
    table = [x for x in proc.stdout.splitlines() if x.startswith("| ")]
    assert len(table) == 2 + 5  # header, rule, five jobs
    assert [x.split(" | ")[0] for x in table[2:]] == [
        "| base", "| beta0.1", "| latent_dim1", "| train.num_context2-eval.num_context2",
        "| shares_0.34_0.33_0.33"]
