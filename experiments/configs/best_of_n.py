"""Best-of-16 on the embedding tasks: what each method's pick is worth to each held-out user.

Command:  python -m experiments.seeds --workdir=runs/bon_ufp4 --config=experiments/configs/best_of_n.py:task=ufp4
          python -m experiments.seeds --workdir=runs/bon_pets --config=experiments/configs/best_of_n.py:task=pets
Runtime:  a few minutes per seed on the 2-core CPU (five reward models, then best-of-16).
Expected: VPL's and MaxMin's regret per group a small fraction of BTL's (BTL picks for the
          centroid, which costs most in the group it leans away from); the ordering of held-out
          reward accuracy follows the ordering of regret. Measured: docs/policy.md.
"""

from experiments.configs import args, compare
from vpl import configs

TASKS = ("pets", "ufp4")


def get_config(arg: str = "task=ufp4"):
  task = args.parse(arg, "best_of_n.py", task=args.Key(choices=TASKS))["task"]
  return configs.with_overrides(compare.get_config(f"task={task}"), {
      "methods": ("btl", "dpl_mv", "maxmin", "pref", "vpl"), "eval.selection.enabled": False,
      "eval.reward_maps": False, "best_of_n.enabled": True, "best_of_n.num_candidates": 16})
