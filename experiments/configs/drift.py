"""Per-user drift: does a recency-weighted context follow users who change their mind?

Command:  python -m experiments.seeds --workdir=runs/drift --config=experiments/configs/drift.py
Keys:     task=drift_didactic | drift_ufp4; recency=exp:H | latest:N (vs the unweighted context).
Runtime:  TBD
Expected: TBD
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

TASKS = ("drift_didactic", "drift_ufp4")


def get_config(arg: str = "task=drift_didactic"):
  f = args.parse(arg, "drift.py", task=args.Key("drift_didactic", TASKS),
                 recency=args.Key("exp:4"))
  preset = tasks.preset(f["task"])
  # 64 answers per user: the latest 16 are the targets, all 48 earlier ones train and are the
  # context (so the unweighted context mixes answers from before and after the switch).
  return configs.with_overrides(default.get_config(), {
      "methods": ("btl", "vpl"), "data.source": preset.generator,
      "data.kwargs": dict(preset.kwargs), "data.heldout_fraction": 0.25,
      "eval.split": "temporal", "eval.num_context": 48,
      "model.context_recency": f["recency"], "eval.selection.enabled": False,
      "eval.reward_maps": False})
