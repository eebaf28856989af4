"""Every random stream of a run, derived from the run's seed by name.

A run has one integer seed (`config.seed`). Each use of randomness asks for its own stream,
`derive(seed, 'split')`, `derive(seed, 'vpl', 'init')`, ..., a 31-bit integer hashed from the
seed and the names. Streams of one seed never share a number with each other, nor with the
streams of another seed (where offsets like `seed + 1` would make seed s's context draw equal
seed s+1's split), and adding a stream changes no other.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

# The streams a run draws, listed so tests can check that no two coincide.
STREAMS = (
    ("data",),          # the synthetic generator
    ("split",),         # held-out users
    ("validation",),    # validation users carved from the training users
    ("context",),       # each evaluated user's context pairs
    ("unseen",),        # shared pairs withheld from training users (unseen-items score)
    ("selection",),     # prompts and candidates of the egalitarian selection report
    ("adapt",),         # each evaluated user's candidate pool and targets (vpl/adapt.py)
    ("adapt", "predict"),  # VPL's samples of q(z) for predictions while adapting
    # Each strategy's draws (vpl/strategies.py), the same for every method.
    *(("adapt", "choose", s) for s in ("random", "info_gain", "variance", "dopt", "entropy")),
    # Policies (vpl/policy/): offline data, policy users, their contexts, IQL, reference
    # states of the reward scaling, evaluation episodes; best-of-N prompts.
    *(("policy", s) for s in ("data", "users", "context", "train", "ref", "eval")),
    ("best_of_n",),
    ("pref", "calibration"),  # PReF's calibration users (vpl/methods/pref_prior.py)
    ("pref", "prior"),        # their context pairs
    ("feedback_loop",),       # users' kinds, answers and candidates (vpl/feedback_loop.py)
)


def derive(seed: int, *names: str) -> int:
  """The integer seed of stream `names` of run seed `seed` (in [0, 2**31))."""
  if not names:
    raise ValueError("derive(seed) needs a stream name, e.g. derive(seed, 'split').")
  digest = hashlib.sha256(json.dumps([int(seed), *map(str, names)]).encode()).digest()
  return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rng(seed: int, *names: str) -> np.random.Generator:
  """A numpy generator for stream `names`."""
  return np.random.default_rng(derive(seed, *names))


def step_keys(method_key, step):
  """`(batch key, loss key)` of training step `step` from a method's step-stream key.

  The in-memory trainer and the streaming reader both draw a step's batch with these, so
  they pick the same pairs.
  """
  import jax  # Imported here: the data layer imports this module without starting JAX.
  k_batch, k_loss = jax.random.split(jax.random.fold_in(method_key, step))
  return k_batch, k_loss
