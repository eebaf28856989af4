"""Per-user drift: does a recency-weighted context follow users who change their mind?

Command:  python -m experiments.seeds --workdir=runs/drift --config=experiments/configs/drift.py
Keys:     task=drift_didactic | drift_ufp4; recency=exp:H | latest:N (vs the unweighted context);
          order=time (VPL trains on windows of consecutive answers) | random (unordered sets).
Runtime:  about 40 s per seed on the 2-core CPU (40.3 s measured for seed 0, shared CPU).
Expected: results.json's `drift` section: (seeds 0-2, exp:4) VPL on each user's latest 16
          answers 0.769 / 0.773 / 0.783 with the recency-weighted context against 0.652 /
          0.644 / 0.650 with all 48 earlier answers unweighted (gain 0.117 / 0.128 / 0.133);
          latest:8 (seed 0) 0.777. BTL reads no context: 0.666 either way.
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

TASKS = ("drift_didactic", "drift_ufp4")


def get_config(arg: str = "task=drift_didactic"):
  f = args.parse(arg, "drift.py", task=args.Key("drift_didactic", TASKS),
                 recency=args.Key("exp:4"), order=args.Key("time", ("time", "random")))
  preset = tasks.preset(f["task"])
  # 64 answers per user: the latest 16 are the targets, all 48 earlier ones train and are the
  # context (so the unweighted context mixes answers from before and after the switch).
  return configs.with_overrides(default.get_config(), {
      "methods": ("btl", "vpl"), "data.source": preset.generator,
      "data.kwargs": dict(preset.kwargs), "data.heldout_fraction": 0.25,
      "eval.split": "temporal", "eval.num_context": 48,
      "model.context_recency": f["recency"], "train.context_order": f["order"],
      "eval.selection.enabled": False,
      "eval.reward_maps": False})
