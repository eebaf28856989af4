"""Best-of-16 on the embedding tasks: what each method's pick is worth to each held-out user.

Command:  python -m experiments.seeds --workdir=runs/bon_ufp4_atoms --config=experiments/configs/best_of_n.py:task=ufp4
          python -m experiments.seeds --workdir=runs/bon_pets_atoms --config=experiments/configs/best_of_n.py:task=pets
Runtime:  about 3.5-9 minutes per task for 3 seeds on the 2-core CPU shared with other jobs
          (five reward models per seed, then best-of-16 for 200 held-out users x 64 prompts).
Expected: (3 seeds) VPL's regret per group and seed is 0-3% (ufp4) and 4-11% (pets; 4.5%
          and 7.0% per group over seeds) of BTL's, MaxMin's 2-6% and 25-32%; PReF's is
          7-9% (ufp4) and 0.07-0.11 on pets, about a third of BTL's. Accuracy on unseen items
          predicts regret across methods (Pearson -0.987 over both tasks). docs/policy.md.
"""

from experiments.configs import args, compare
from vpl import configs

TASKS = ("pets", "ufp4")


def get_config(arg: str = "task=ufp4"):
  task = args.parse(arg, "best_of_n.py", task=args.Key(choices=TASKS))["task"]
  return configs.with_overrides(compare.get_config(f"task={task}"), {
      "methods": ("btl", "dpl_mv", "maxmin", "pref", "vpl"), "eval.selection.enabled": False,
      "eval.reward_maps": False, "best_of_n.enabled": True, "best_of_n.num_candidates": 16})
