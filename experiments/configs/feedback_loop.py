"""Feedback loops (echo chambers): best-of-N under VPL's personal reward, with shrinkage.

Command:  python -m experiments.feedback_loop --workdir=runs/feedback_loop_v3
Keys:     task=ufp4 (default) | ufp2. Simulation settings: --config.feedback.* (no retraining).
Runtime:  about 60 s for seeds 0-2 from scratch on the 2-core CPU.
Expected: (seeds 0-2, DIR/feedback_loop.json's summary) after 10 rounds, constructed users'
          drift from their genuine preference is 0.845 / 0.876 / 0.618 without shrinkage
          and 0.151 / 0.164 / 0.173 with s = 1 (ratio 0.18 / 0.19 / 0.28); genuine users'
          accuracy costs 0.013 / 0.019 / 0.012 (stability weights: genuine 0.91-0.94,
          constructed 0.000-0.001). docs/stability_dynamics.md.
"""

import ml_collections

from experiments.configs import args, compare
from vpl import configs


def get_config(arg: str = "task=ufp4"):
  task = args.parse(arg, "feedback_loop.py", task=args.Key("ufp4", ("ufp2", "ufp4")))["task"]
  c = configs.with_overrides(compare.get_config(f"task={task}"), {
      "methods": ("vpl",), "eval.selection.enabled": False, "eval.reward_maps": False})
  with c.unlocked():
    # vpl/feedback_loop.py: rounds of best-of-N shown to held-out users; see its docstring.
    f = c.feedback = ml_collections.ConfigDict()
    f.rounds = 10
    f.strengths = (0.0, 1.0)  # s, the shrinkage knob: 0 = fully personal
    f.constructed_share = 0.5  # share of held-out users whose preference is constructed
    f.lean = 0.5  # how far a constructed user's first expressed preference leans to its group
    f.position_share = 0.5  # share of a constructed user's questions answered by position
    f.eta = 0.2  # how far a round's shown items move a constructed user
    f.temperature = 0.25  # Bradley-Terry temperature of every answer
    f.num_questions = 16  # each asked in both orders per round (the context: 32 answers)
    f.num_prompts = 16
    f.num_candidates = 16
    f.use_certainty = False  # also weigh users by 1 - posterior variance
    f.stability = "mixture"  # mixture (stable vs coin) | consistency (2 x agreement - 1)
    f.population_users = 256  # training users whose posterior means give r_pop
    f.reference_items = 512  # items every reward is z-scored over
  c.lock()
  return c
