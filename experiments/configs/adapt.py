"""Asking a new user: every method trained once, then each held-out user asked 0-16 questions.

Command:  python -m experiments.main --workdir=runs/adapt_didactic --config=experiments/configs/adapt.py:task=didactic
          python -m experiments.adapt_seeds --workdir=runs/adapt_ufp4_v2 --config=experiments/configs/adapt.py:task=ufp4
          python -m experiments.main --workdir=runs/adapt_didactic_noisy --config=experiments/configs/adapt.py:task=didactic,temperature=0.1
          (real or your own data: --config=experiments/configs/real.py:dataset=movielens100k
          --config.adapt.enabled=True, or byo.py:path=FILE; the answers are the users'
          recorded labels, the pool their recorded pairs, and users with fewer than
          adapt.min_targets + 16 pairs are left out and counted)
Tasks:    didactic, navigation2, navigation10, pets, ufp2, ufp4, unimodal (presets of
          vpl/data/tasks.py), each with 96 pairs per user so that every held-out user has a
          pool of 64 candidate pairs and 32 fixed targets; the methods, MaxMin's K and PReF's
          J as in compare.py (navigation10 also takes navigation.py's ten-goal settings).
Runtime:  (2-core CPU shared with other jobs; training included) ufp4 280 s and
          navigation10 482 s for 3 seeds, didactic at temperature=0.1 141 s (earlier
          recipe); the questions take 1-11 s per method and strategy.
Expected: (seeds 0-2, docs/results.md 'Asking a new user') results.json's
          `adaptation[method][strategy][str(budget)]` = accuracy, nll, ece, brier,
          posterior_spread, bayes_oracle_accuracy; adaptation.png and reliability.png.
          ufp4: VPL 0.954 / 0.993 at 4 / 8 random questions, 0.994 at 4 information-gain
          ones; PReF 0.928 at 16 random, 0.932 at 8 D-optimal; MaxMin 0.989 from 2
          entropy-chosen questions. navigation10: VPL 0.952 at 4 information-gain questions
          against 0.928 at 8 random. (Earlier recipe: VPL's posterior spread shrinks with
          every answer, ufp4 1, 0.630, 0.445, 0.276, 0.158, 0.085; didactic,temperature=0.1:
          VPL ECE 0.011, NLL within 0.009 nats of the Bayes oracle's.)
"""

from experiments.configs import args, compare, default, navigation
from vpl import configs
from vpl.data import tasks

TASKS = tuple(name for name in tasks.PRESETS if not name.endswith("_tiny"))
PAIRS_PER_USER = 96  # pool of 64 candidates + 32 targets per held-out user


def get_config(arg: str = "task=didactic"):
  f = args.parse(arg, "adapt.py", task=args.Key(choices=TASKS),
                 temperature=args.Key(None, parse=float))
  preset = tasks.preset(f["task"])
  kwargs = dict(preset.kwargs, pairs_per_user=PAIRS_PER_USER)
  if f["temperature"] is not None:
    if f["temperature"] < 0:
      raise ValueError(f"adapt.py:temperature={f['temperature']}; use >= 0 (0 = noiseless).")
    kwargs["temperature"] = f["temperature"]
  ten_goals = navigation.TEN_GOALS if f["task"] == "navigation10" else {}
  return configs.with_overrides(default.get_config(), {
      "methods": compare.METHODS, "data.source": preset.generator, "data.kwargs": kwargs,
      "maxmin.num_clusters": preset.num_groups, "pref.num_bases": max(preset.num_groups, 2),
      # VPL's encoder multiplies one Gaussian factor per answered pair with the prior, so its
      # posterior narrows with every answer (a mean over the answers cannot: docs/results.md,
      # 'Asking a new user', measured both ways).
      "model.pooling": "bayes", "adapt.enabled": True, **ten_goals})
