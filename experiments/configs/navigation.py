"""Multi-goal navigation: each group's reward is minus the distance to its own goal.

Command:  python -m experiments.main --workdir=runs/nav2 --config=experiments/configs/navigation.py:goals=2
          python -m experiments.main --workdir=runs/nav10 --config=experiments/configs/navigation.py:goals=10
Runtime:  about 15 s (2 goals) and 25 s (10 goals) on the 2-core CPU.
Expected: BTL learns one centroid (a reward peaked between the goals) and sits at its
          ceiling; VPL recovers each user's goal from their context pairs, near the oracle.
          Ten goals need more context pairs to tell the goals apart (16 here).
"""

from experiments.configs import default


def get_config(arg: str = "goals=2"):
  goals = int(dict(kv.split("=") for kv in arg.split(","))["goals"])
  c = default.get_config()
  c.unlock()
  c.data.task = "navigation"
  c.data.kwargs = dict(num_goals=goals, num_users=1000, pairs_per_user=64, temperature=0.0)
  if goals > 2:
    c.model.latent_dim = 16
    c.train.num_steps = 5000
    c.train.num_context = 16
    c.train.num_targets = 16
    c.eval.num_context = 16
  c.lock()
  return c
