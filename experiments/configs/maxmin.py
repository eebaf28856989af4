"""MaxMin-RLHF against BTL on `didactic`: EM mixture of rewards and egalitarian selection.

Command:  python -m experiments.main --workdir=runs/maxmin_80_20 --config=experiments/configs/maxmin.py:shares=0.8/0.2
          python -m experiments.main --workdir=runs/maxmin_51_49 --config=experiments/configs/maxmin.py:shares=0.51/0.49
Runtime:  about 13 s wall per run on the 2-core CPU, compile included (BTL about 4 s, MaxMin's
          EM about 5 s: 3 restarts, each 1 round of 500 steps when k-means starts it right).
Expected: (seeds 0-2) 0.8/0.2: MaxMin held-out accuracy 0.990 against BTL 0.821 (ceiling
          0.866); BTL gives the minority 0.112 on divergent pairs, MaxMin 0.992. In
          results["selection"], the worst group's mean SPO-scaled true reward of the chosen
          candidates is 0.514 under MaxMin's max-min rule against 0.459 under BTL's argmax
          (unscaled: 0.276 against 0.046). 0.51/0.49: MaxMin 0.991, BTL 0.673 (ceiling 0.676).
"""

from experiments.configs import args, default
from vpl import configs


def get_config(arg: str = "shares=0.8/0.2"):
  shares = args.parse(arg, "maxmin.py", shares=args.Key((0.8, 0.2), parse=args.shares))["shares"]
  return configs.with_overrides(default.get_config(), {
      "methods": ("btl", "maxmin"),
      "data.kwargs": dict(shares=shares, num_users=1000, pairs_per_user=64, temperature=0.0)})
