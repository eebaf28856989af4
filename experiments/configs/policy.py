"""Personal behaviour: IQL policies on each method's rewards in the walled multi-goal maze.

Command:  python -m experiments.main --workdir=runs/policy2 --config=experiments/configs/policy.py:goals=2
          python -m experiments.main --workdir=runs/policy4 --config=experiments/configs/policy.py:goals=4
          python -m experiments.seeds --workdir=runs/policy2_seeds --config=experiments/configs/policy.py:goals=2
Runtime:  see docs/policy.md (reward models, then four IQL policies of 20,000 steps each,
          on the 2-core CPU).
Expected: the oracle's and VPL's policies take each held-out user to their own goal
          (success near 1 in every group); BTL's policy serves one goal or none; MaxMin's
          matches VPL when its clusters are the goals (docs/policy.md has the measured
          tables).
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks


def get_config(arg: str = "goals=2"):
  goals = args.parse(arg, "policy.py", goals=args.Key(2, (2, 4), int))["goals"]
  preset = tasks.preset(f"maze{goals}")
  return configs.with_overrides(default.get_config(), {
      "data.source": preset.generator, "data.kwargs": preset.kwargs,
      "methods": ("btl", "vpl", "maxmin"), "maxmin.num_clusters": goals,
      "eval.selection.enabled": False, "policy.enabled": True})
