# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 03 Interview a new user
#
# A trained run serves a person it has never seen: `vpl.adapt.interview` asks them a few
# questions (pairs to compare), chosen one at a time by a strategy over the method's
# posterior (`info_gain` for VPL: the answer most informative about z), and returns their
# representation and reward function. Here the "person" is simulated: a user of one group of
# the `didactic` task, answering with their group's true reward.
# Settings: `VPL_RUN_DIR` (default: the run of 00_quickstart, `OUT/00_quickstart_run`, trained
# here if missing), `VPL_NOTEBOOK_OUT` (default `runs/notebooks`; figures to `OUT/figures/`),
# `VPL_NOTEBOOK_TINY=1` (the tiny config).

# %%
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.configs import default, tiny  # noqa: E402
from vpl import adapt, analysis, experiment  # noqa: E402

TINY = os.environ.get("VPL_NOTEBOOK_TINY") == "1"
OUT = os.environ.get("VPL_NOTEBOOK_OUT", "runs/notebooks")
RUN_DIR = os.environ.get("VPL_RUN_DIR", os.path.join(OUT, "00_quickstart_run"))
FIGURES = os.path.join(OUT, "figures")
if not os.path.exists(os.path.join(RUN_DIR, "results.json")):
  experiment.train_and_evaluate(tiny.get_config() if TINY else default.get_config(), RUN_DIR)
run = analysis.load_run(RUN_DIR)
task = run.task

# %% [markdown]
# The simulated user belongs to group 1 (the minority at 51/49); they prefer a over b when
# their group's true reward says so. The candidate questions are 32 random pairs of states;
# the user is then scored on 500 fresh pairs they were never asked about.

# %%
rng = np.random.default_rng(0)
GROUP = 1
truth = lambda s: task.true_reward(s, GROUP)
answer = lambda a, b: float(truth(a) > truth(b))
cand_a, cand_b = rng.uniform(-1, 1, (2, 32, 2)).astype(np.float32)
test_a, test_b = rng.uniform(-1, 1, (2, 500, 2)).astype(np.float32)
test_y = truth(test_a) > truth(test_b)


def test_accuracy(reward_fn) -> float:
  return float(((reward_fn(test_a) > reward_fn(test_b)) == test_y).mean())


# %%
budgets = [0, 1, 2, 4] if TINY else [0, 1, 2, 4, 8]
rows = {}
for strategy in ("random", "info_gain"):
  for n in budgets:
    rep, reward_fn = adapt.interview(run, "vpl", cand_a, cand_b, answer, n, strategy=strategy)
    rows[(strategy, n)] = (test_accuracy(reward_fn), rep)
print("| strategy | " + " | ".join(f"{n} q." for n in budgets) + " |")
print("| --- |" + " --- |" * len(budgets))
for strategy in ("random", "info_gain"):
  print(f"| {strategy} | " + " | ".join(f"{rows[(strategy, n)][0]:.3f}" for n in budgets)
        + " |")
rep = rows[("info_gain", budgets[-1])][1]
print("asked:", rep["asked"].tolist(), "answers:", rep["answers"].tolist())
print("posterior mean z:", np.round(rep["mu"], 2), "variance:", np.round(np.exp(rep["log_var"]),
                                                                          2))

# %% [markdown]
# The user's true reward beside what VPL inferred after the interview, with the questions
# asked (dot: preferred, cross: the other).

# %%
_, reward_fn = adapt.interview(run, "vpl", cand_a, cand_b, answer, budgets[-1])
axis = np.linspace(-1, 1, 60, dtype=np.float32)
grid = np.stack(np.meshgrid(axis, axis), -1)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
for ax, (title, values) in zip(axes, [("true reward, group 1", truth(grid)),
                                      (f"VPL after {budgets[-1]} questions", reward_fn(grid))]):
  ax.imshow(values, origin="lower", extent=(-1, 1, -1, 1), cmap="viridis")
  ax.set_title(title, fontsize=9), ax.set_xticks([]), ax.set_yticks([])
won = rep["answers"] > 0.5
asked_a, asked_b = cand_a[rep["asked"]], cand_b[rep["asked"]]
preferred = np.where(won[:, None], asked_a, asked_b)
other = np.where(won[:, None], asked_b, asked_a)
axes[1].scatter(*preferred.T, s=14, c="white", edgecolors="black", linewidths=0.4)
axes[1].scatter(*other.T, s=14, c="red", marker="x")
os.makedirs(FIGURES, exist_ok=True)
path = os.path.join(FIGURES, "03_interview.png")
fig.tight_layout(), fig.savefig(path, dpi=110)
print(path)
