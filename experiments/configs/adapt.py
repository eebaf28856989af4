"""Asking a new user: every method trained once, then each held-out user asked 0-16 questions.

Command:  python -m experiments.main --workdir=runs/adapt_didactic --config=experiments/configs/adapt.py:task=didactic
          python -m experiments.adapt_seeds --workdir=runs/adapt_ufp4_seeds --config=experiments/configs/adapt.py:task=ufp4
          python -m experiments.main --workdir=runs/adapt_didactic_noisy --config=experiments/configs/adapt.py:task=didactic,temperature=0.1
          (real or your own data: --config=experiments/configs/real.py:dataset=movielens100k
          --config.adapt.enabled=True, or byo.py:path=FILE; the answers are the users'
          recorded labels, the pool their recorded pairs, and users with fewer than
          adapt.min_targets + 16 pairs are left out and counted)
Tasks:    didactic, navigation2, navigation10, pets, ufp2, ufp4, unimodal (presets of
          vpl/data/tasks.py), each with 96 pairs per user so that every held-out user has a
          pool of 64 candidate pairs and 32 fixed targets; the methods, MaxMin's K and PReF's
          J as in compare.py (navigation10 also takes navigation.py's ten-goal settings).
Runtime:  to be measured for the full configs (training as compare.py, plus the protocol:
          6 budgets x every method and strategy; results.json's adaptation_info.seconds
          records the protocol's time per method and strategy). The tiny config with btl,
          vpl, pref and maxmin and adapt enabled (tests/test_adapt.py's run) took 30 s end
          to end on the 2-core CPU, shared with other jobs.
Expected: results.json's `adaptation[method][strategy][str(budget)]` with `accuracy`, `nll`,
          `ece`, `brier`, `posterior_spread` and `bayes_oracle_accuracy` (the Bayes oracle
          given the same asked pairs), `random` for every method; adaptation.png (accuracy
          against questions) and reliability.png. Budget 0 is the population prediction;
          personalising methods should climb from near BTL towards the oracle as questions
          are answered, chosen questions at or above random ones. Figures to be measured.
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
      "adapt.enabled": True, **ten_goals})
