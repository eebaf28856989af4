"""The headline experiment: `didactic`, two groups at 0.51 / 0.49, BTL against VPL.

Command:  python -m experiments.main --workdir=runs/headline
Runtime:  about 12 s wall on the 2-core CPU, compile included.
Expected: (seed 0) oracle 1.000, VPL 0.994, BTL 0.667 against its ceiling 0.674; on the
          pairs where the groups disagree, BTL gives the minority 0.483 (below chance: the
          51/49 dilemma) and VPL 0.992. Labels are noiseless (temperature 0), so every such
          pair's pooled vote is exactly 51/49.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.methods = ("btl", "vpl")

  c.data = ml_collections.ConfigDict()
  c.data.task = "didactic"
  # Keyword arguments of the task's generator in vpl/data/synthetic.py.
  c.data.kwargs = ml_collections.ConfigDict(dict(
      shares=(0.51, 0.49), num_users=1000, pairs_per_user=64, temperature=0.0))
  c.data.heldout_fraction = 0.2

  c.model = ml_collections.ConfigDict()
  c.model.hidden = (64, 64)
  c.model.embed_dim = 64
  c.model.latent_dim = 8
  c.model.pooling = "mean"  # or "attention"
  c.model.num_heads = 4
  c.model.learned_prior = False

  c.loss = ml_collections.ConfigDict()
  c.loss.beta = 1.0
  c.loss.beta_schedule = "cyclical"  # constant | warmup | cyclical
  c.loss.warmup_steps = 500
  c.loss.cycles = 4
  c.loss.free_bits = 0.0
  c.loss.target_mode = "disjoint"  # disjoint | context | both

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 3e-3
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 1e-4
  c.optim.grad_clip = 1.0

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 3000
  c.train.steps_per_call = 250
  c.train.checkpoint_every = 1000
  c.train.batch_sets = 64
  c.train.num_context = 8
  c.train.num_targets = 8

  c.eval = ml_collections.ConfigDict()
  c.eval.num_context = 8
  c.eval.reward_maps = True

  c.lock()
  return c
