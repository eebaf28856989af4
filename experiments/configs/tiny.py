"""A tiny `didactic` run for tests and smoke checks: the default, shrunk.

Command:  python -m experiments.main --workdir=runs/tiny --config=experiments/configs/tiny.py
Runtime:  about 8 s on the 2-core CPU, compile included.
Expected: oracle accuracy 1.0 (noiseless labels); VPL above BTL on held-out accuracy
          (seed 0: 0.75 against 0.69; seeds 0-7: VPL 0.74-0.90, BTL 0.64-0.69); BTL at
          its ceiling (0.69). Too short to be a result: it shows that everything runs end
          to end, and is what tests/test_experiment.py runs.
"""

from experiments.configs import default


def get_config(arg=None):
  del arg
  c = default.get_config()
  c.unlock()
  c.data.kwargs = dict(shares=(0.51, 0.49), num_users=120, pairs_per_user=24, temperature=0.0)
  c.model.hidden = (32, 32)
  c.model.embed_dim = 32
  c.model.latent_dim = 4
  c.train.num_steps = 200
  c.train.steps_per_call = 50
  c.train.checkpoint_every = 100
  c.train.batch_sets = 16
  c.train.num_context = 4
  c.train.num_targets = 4
  c.eval.num_context = 4
  c.eval.reward_maps = True
  c.lock()
  return c
