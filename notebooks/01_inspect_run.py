# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 01 Inspect a run: latent space, reward maps per user, accuracy vs questions asked
#
# Loads a finished run from its workdir alone (`vpl.analysis.load_run`: config.json and
# the checkpoints) and re-scores it. Settings: `VPL_RUN_DIR` (default: the run of
# 00_quickstart, `OUT/00_quickstart_run`), `VPL_NOTEBOOK_OUT` (default `runs/notebooks`;
# figures go to `OUT/figures/`), `VPL_NOTEBOOK_TINY=1` (fewer budgets).

# %%
import os

from vpl import analysis, analysis_plots, plotting

TINY = os.environ.get("VPL_NOTEBOOK_TINY") == "1"
OUT = os.environ.get("VPL_NOTEBOOK_OUT", "runs/notebooks")
RUN_DIR = os.environ.get("VPL_RUN_DIR", os.path.join(OUT, "00_quickstart_run"))
FIGURES = os.path.join(OUT, "figures")
if not os.path.exists(os.path.join(RUN_DIR, "config.json")):
  raise SystemExit(f"No run in {RUN_DIR}: run notebooks/00_quickstart.py first, or set "
                   f"VPL_RUN_DIR to a workdir of experiments.main.")

# %%
run = analysis.load_run(RUN_DIR)
print("restored steps:", run.steps, "skipped:", run.skipped)
scores = run.evaluate()
for name, s in scores.items():
  saved = run.results["methods"][name]["heldout_accuracy"] if run.results else None
  print(f"{name}: held-out accuracy {s['heldout_accuracy']:.3f} (results.json: {saved})")

# %% [markdown]
# Latent space of held-out users (posterior means from their context pairs), coloured by
# the group that generated their labels.

# %%
latent = [n for n in run.models if "active_units" in scores[n]]  # latent methods
for name in latent:
  print(analysis_plots.latent_space(run.latents(name), os.path.join(
      FIGURES, f"01_latent_space_{name}.png"), title=f"{name}: held-out users' E[z]"))

# %% [markdown]
# Reward maps: the true reward of one held-out user per group, and each method's reward
# for that user (z from their context pairs: dots preferred, crosses not).

# %%
if run.task is not None and run.task.true_reward is not None and run.heldout.feature_dim == 2:
  path = os.path.join(FIGURES, "01_reward_maps.png")
  plotting.reward_maps(run.task, run.heldout, run.context_idx, run.method_models(), path)
  print(path)

# %% [markdown]
# Accuracy against questions asked (`Run.adaptation`, the protocol of `vpl/adapt.py`): each
# held-out user's pairs are split once into a pool of candidate questions and fixed targets,
# and every budget is scored on the same targets. Budget 0 is the population prediction; a
# single reward does not use the answers, a latent method should climb towards the oracle,
# faster when it chooses its questions (`info_gain`) than at random.

# %%
budgets = [0, 1, 4] if TINY else [0, 1, 2, 4, 8, 16]
by_method = {f"{name}: random": run.adaptation(name, "random", budgets) for name in run.models}
if "vpl" in run.models:
  by_method["vpl: info_gain"] = run.adaptation("vpl", "info_gain", budgets)
for name, by_budget in by_method.items():
  print(name, {n: round(r["accuracy"], 3) for n, r in by_budget.items()})
refs = {}
if run.results and run.results.get("oracle_accuracy") is not None:
  refs = {"oracle": run.results["oracle_accuracy"], "BTL ceiling": run.results["btl_ceiling"]}
print(analysis_plots.accuracy_vs_questions(by_method, os.path.join(
    FIGURES, "01_accuracy_vs_questions.png"), refs))
