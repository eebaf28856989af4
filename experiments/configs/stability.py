"""Personalising to what is stable: re-asked questions, the position-bias tower, VPL's KL.

Command:  python -m experiments.main --workdir=runs/stability_ufp4 --config=experiments/configs/stability.py:task=ufp4
          python -m experiments.seeds --workdir=runs/stability_ufp4_seeds --config=experiments/configs/stability.py:task=ufp4
          (task=didactic likewise; `bias=false` turns the tower off, `drop=true` leaves
          the answers the consistency analysis flags out of training, `pooling=bayes` and
          `free_bits=0` change VPL's encoder and KL, `shrinkage=S` sets eval.shrinkage;
          `clean=false` skips the clean twin.)
Data:     the task preset's users re-asked (vpl/data/reasking.py): 30% non-attitude users
          (a coin at every asking), 20% of every other user's questions answered by the
          option shown first, half of each user's questions asked 3 times in all (2
          re-asks), the order alternating. The clean twin (WORKDIR/clean) trains the same
          methods on the same users without the noise.
Runtime:  ufp4 about 170 s per seed, didactic about 150 s, on the 2-core CPU shared with a run
          (BTL and VPL, twice: re-asked and clean; 3 seeds: 509 s and 456 s).
Expected: (seeds 0-2; docs/stability.md) the `stability` section: non-attitude users found
          with precision 1.000 and recall 0.983-1.000, answers given by position with
          0.997-1.000 / 1.000; the tower's first-shown rate 0.554-0.581 against the true
          0.564-0.572; VPL on genuine users 0.961-0.980 against 0.996-0.999 clean (didactic)
          and 0.710-0.712 against 0.952-0.962 (ufp4); VPL's mean KL for non-attitude users
          1.0-1.3 times genuine users' (the issue asks below 0.25: not met).
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

TASKS = ("didactic", "didactic_tiny", "ufp2", "ufp4", "pets")


def get_config(arg: str = "task=ufp4"):
  f = args.parse(arg, "stability.py", task=args.Key(choices=TASKS),
                 bias=args.Key(True, parse=args.boolean),
                 clean=args.Key(True, parse=args.boolean),
                 pooling=args.Key("mean", choices=("mean", "attention", "bayes")),
                 free_bits=args.Key(1.0, parse=float),
                 shrinkage=args.Key(0.0, parse=float),
                 drop=args.Key(False, parse=args.boolean),
                 reliability=args.Key("reask", choices=("reask", "none")))
  preset = tasks.preset(f["task"])
  return configs.with_overrides(default.get_config(), {
      "methods": ("btl", "vpl"), "data.source": preset.generator,
      "data.kwargs": dict(preset.kwargs),
      "data.reask.enabled": True, "data.reask.non_attitude_users": 0.3,
      "data.reask.constructed_questions": 0.2, "data.reask.first_bias": 1.0,
      "data.reask.reask_share": 0.5, "data.reask.asks": 3,
      "data.reask.clean_baseline": f["clean"],
      "data.drop_unstable": f["drop"], "model.condition_bias": f["bias"],
      "model.reliability": f["reliability"],
      "model.pooling": f["pooling"],
      "loss.free_bits": f["free_bits"], "eval.shrinkage": f["shrinkage"],
      "eval.reward_maps": False})
