"""A tiny `didactic` run for tests and smoke checks: the default, shrunk.

Command:  python -m experiments.main --workdir=runs/tiny --config=experiments/configs/tiny.py
Runtime:  about 8 s on the 2-core CPU, compile included.
Expected: oracle accuracy 1.0 (noiseless labels); VPL above BTL on held-out accuracy
          (seed 0: 0.944 against 0.677; seeds 0-7: VPL 0.852-0.965, BTL 0.623-0.692); BTL
          near its ceiling (0.652-0.692). Too short to be a result: it shows that everything runs end
          to end, and is what tests/test_experiment.py runs.
"""

from experiments.configs import default
from vpl import configs
from vpl.data import tasks


def get_config(arg=None):
  del arg
  return configs.with_overrides(default.get_config(), {
      "data.kwargs": tasks.preset("didactic_tiny").kwargs,
      "model.hidden": (32, 32), "model.embed_dim": 32, "model.latent_dim": 4,
      "train.num_steps": 200, "train.steps_per_call": 50, "train.checkpoint_every": 100,
      "train.batch_sets": 16, "train.num_context": 4, "train.num_targets": 4,
      "eval.num_context": 4, "eval.reward_maps": True})
