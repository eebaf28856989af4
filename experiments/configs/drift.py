"""Per-user drift: does a recency-weighted context follow users who change their mind?

Command:  python -m experiments.seeds --workdir=runs/drift_atoms_latest --config=experiments/configs/drift.py
Keys:     task=drift_didactic | drift_ufp4; recency=exp:H | latest:N (vs the unweighted context);
          order=time (VPL trains on windows of consecutive answers) | random (unordered sets).
Runtime:  41-56 s per seed measured on the 2-core CPU shared with other jobs (compile included).
Expected: results.json's `drift` section, VPL on each user's latest 16 answers (seeds 0-2,
          with the atom prior of users' latest windows): 0.914 / 0.925 / 0.910 with the latest
          8 answers as context, against 0.598 / 0.587 / 0.605 with all 48 earlier answers
          unweighted; BTL 0.667 / 0.663 / 0.668. Without the atom prior
          (`--config.model.atom_prior=False`): 0.913 / 0.918 / 0.903 against 0.673 / 0.660 /
          0.657. Earlier recipes and orders: docs/stability_dynamics.md.
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

TASKS = ("drift_didactic", "drift_ufp4")


def get_config(arg: str = "task=drift_didactic"):
  f = args.parse(arg, "drift.py", task=args.Key("drift_didactic", TASKS),
                 recency=args.Key("latest:8"), order=args.Key("time", ("time", "random")))
  preset = tasks.preset(f["task"])
  # 64 answers per user: the latest 16 are the targets, all 48 earlier ones train and are the
  # context (so the unweighted context mixes answers from before and after the switch).
  # VPL's atom prior (model.atom_prior): with windows in time order each training user's atom
  # is inferred from their latest window, their current preference (vpl/methods/vpl.py). With
  # unordered sets it would be inferred from all their answers, before and after their
  # switch (seed 0 then scored 0.695 on the latest answers against 0.913 without atoms), so
  # it is off for order=random.
  return configs.with_overrides(default.get_config(), {
      "methods": ("btl", "vpl"), "data.source": preset.generator,
      "data.kwargs": dict(preset.kwargs), "data.heldout_fraction": 0.25,
      "eval.split": "temporal", "eval.num_context": 48,
      "model.context_recency": f["recency"], "train.context_order": f["order"],
      "eval.selection.enabled": False, "model.atom_prior": f["order"] == "time",
      "eval.reward_maps": False})
