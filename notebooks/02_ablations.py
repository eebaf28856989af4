# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 02 Ablations: beta, latent size, context size, number of groups (VPL)
#
# Either runs the `experiments/sweeps/ablations.py` jobs here, one factor at a time around
# the headline, or reads the workdirs of a launched sweep (`VPL_SWEEP_DIR`, e.g. the
# WORKDIR given to launch/slurm.py) into one table. Settings: `VPL_NOTEBOOK_TINY=1` (tiny
# config, 100 steps, five of the jobs; what CI runs), `VPL_NOTEBOOK_OUT` (default
# `runs/notebooks`: runs in `OUT/02_ablations/<job>`, figures in `OUT/figures/`).

# %%
import os

from experiments import sweeps
from experiments.configs import default, tiny
from vpl import analysis_plots, configs, experiment, runs

TINY = os.environ.get("VPL_NOTEBOOK_TINY") == "1"
OUT = os.environ.get("VPL_NOTEBOOK_OUT", "runs/notebooks")
SWEEP_DIR = os.environ.get("VPL_SWEEP_DIR")
FIGURES = os.path.join(OUT, "figures")
FIELDS = ["loss.beta", "model.latent_dim", "eval.num_context", "data.kwargs.shares"]

# %%
if SWEEP_DIR:
  workdirs = sorted(os.path.join(SWEEP_DIR, d) for d in os.listdir(SWEEP_DIR)
                    if os.path.exists(os.path.join(SWEEP_DIR, d, "config.json")))
else:
  jobs = sweeps.expand(sweeps.load("ablations"))
  base = tiny.get_config() if TINY else default.get_config()
  if TINY:
    keep = {"base", "beta0.1", "latent_dim1", "train.num_context2-eval.num_context2",
            "shares_0.34_0.33_0.33"}
    jobs = [j for j in jobs if j["name"] in keep]
    base = configs.with_overrides(base, {"train.num_steps": 100, "eval.reward_maps": False})
  workdirs = []
  for job in jobs:
    workdir = os.path.join(OUT, "02_ablations", job["name"])
    experiment.train_and_evaluate(configs.with_overrides(base, job["overrides"]), workdir)
    workdirs.append(workdir)

# %%
rows = [r for r in runs.collect_results(workdirs, FIELDS) if r["method"] == "vpl"]
for r in rows:
  r["job"] = os.path.basename(r["workdir"])
print(runs.markdown_table(rows, ["job", *FIELDS, "heldout_accuracy",
                                     "worst_group_accuracy", "active_units",
                                     "oracle_accuracy"]))
print(analysis_plots.ablation_bars(rows, os.path.join(FIGURES, "02_ablations.png")))
