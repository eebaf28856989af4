"""MaxMin-RLHF against BTL on `didactic`: EM mixture of rewards and egalitarian selection.

Command:  python -m experiments.main --workdir=runs/maxmin_80_20 --config=experiments/configs/maxmin.py:shares=0.8/0.2
          python -m experiments.main --workdir=runs/maxmin_51_49 --config=experiments/configs/maxmin.py:shares=0.51/0.49
Runtime:  TBD
Expected: TBD
"""

from experiments.configs import default


def get_config(arg: str = "shares=0.8/0.2"):
  shares = tuple(float(s) for s in dict(
      kv.split("=") for kv in arg.split(","))["shares"].split("/"))
  c = default.get_config()
  c.unlock()
  c.methods = ("btl", "maxmin")
  c.data.kwargs = dict(shares=shares, num_users=1000, pairs_per_user=64, temperature=0.0)
  c.lock()
  return c
