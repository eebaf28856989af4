# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 00 Quickstart: the 51/49 dilemma in one run
#
# Trains BTL and VPL on the headline task (`didactic`, two groups at 51/49) and plots the
# training curves; the run's reward maps are written by the run itself.
# Settings: `VPL_NOTEBOOK_TINY=1` (tiny config, seconds; what CI runs),
# `VPL_NOTEBOOK_OUT` (default `runs/notebooks`): the run goes to `OUT/00_quickstart_run`,
# figures to `OUT/figures/`. Running it again resumes (here: finds the run finished).

# %%
import os
import shutil

from experiments.configs import default, tiny
from vpl import analysis, analysis_plots, experiment, report

TINY = os.environ.get("VPL_NOTEBOOK_TINY") == "1"
OUT = os.environ.get("VPL_NOTEBOOK_OUT", "runs/notebooks")
WORKDIR = os.path.join(OUT, "00_quickstart_run")
FIGURES = os.path.join(OUT, "figures")
config = tiny.get_config() if TINY else default.get_config()

# %%
results = experiment.train_and_evaluate(config, WORKDIR)
print(report.results_table(results))

# %%
print(analysis_plots.training_curves(analysis.read_metrics(WORKDIR),
                                     os.path.join(FIGURES, "00_training_curves.png")))
maps = os.path.join(WORKDIR, "reward_maps.png")
if os.path.exists(maps):
  print(shutil.copy(maps, os.path.join(FIGURES, "00_reward_maps.png")))
