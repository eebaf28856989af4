"""Personal behaviour: IQL policies on each method's rewards in the walled multi-goal maze.

Command:  python -m experiments.main --workdir=runs/policy2 --config=experiments/configs/policy.py:goals=2
          python -m experiments.main --workdir=runs/policy4 --config=experiments/configs/policy.py:goals=4
          python -m experiments.seeds --workdir=runs/policy2_v2 --config=experiments/configs/policy.py:goals=2
Runtime:  about 2 minutes per seed on the 2-core CPU shared with other jobs: reward models,
          then four IQL policies of 20,000 steps, 15-44 s each.
Expected: (3 seeds) 2 goals: success oracle 1.00, VPL 1.00, MaxMin 1.00 in both groups,
          BTL 0.00 (its policy stays in the centre); 4 goals: oracle 1.00, VPL 0.94-1.00
          per group and seed, MaxMin 0.96-1.00, BTL 0.00. Tables: docs/policy.md.
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
