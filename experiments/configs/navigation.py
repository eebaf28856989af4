"""Multi-goal navigation: each group's reward is minus the distance to its own goal.

Command:  python -m experiments.main --workdir=runs/nav2 --config=experiments/configs/navigation.py:goals=2
          python -m experiments.main --workdir=runs/nav10 --config=experiments/configs/navigation.py:goals=10
          (goals=3 and goals=4 exist for choosing MaxMin's K from data: docs/methods.md)
Runtime:  about 15 s (2 goals) and 3 minutes (10 goals: 30,000 steps) on the 2-core CPU.
Expected: BTL learns one centroid (a reward peaked between the goals) and sits at its
          ceiling; VPL recovers each user's goal from their context pairs, near the oracle.
          Ten goals need more context pairs to tell the goals apart (16 here).
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

# Ten goals need more context pairs to tell them apart, and a wider latent.
TEN_GOALS = {"model.latent_dim": 16, "train.num_steps": 5000, "train.num_context": 16,
             "train.num_targets": 16, "eval.num_context": 16}
# goals=10 trains longer: VPL's accuracy on validation users (seed 0) was still rising at
# 5,000 steps: 0.955, 0.978 at 15,000, 0.984 at 30,000 (Bayes oracle 0.993; docs/results.md,
# 'Multi-goal navigation'). goals=3 and 4 (MaxMin's K) keep 5,000.
TEN_GOALS_STEPS = 30000


def get_config(arg: str = "goals=2"):
  goals = args.parse(arg, "navigation.py", goals=args.Key(2, (2, 3, 4, 10), int))["goals"]
  preset = tasks.preset(f"navigation{goals}")
  return configs.with_overrides(default.get_config(), {
      "data.source": preset.generator, "data.kwargs": preset.kwargs,
      **(TEN_GOALS if goals > 2 else {}),
      **({"train.num_steps": TEN_GOALS_STEPS} if goals == 10 else {})})
