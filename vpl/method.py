"""The interface every reward-learning method implements.

A method is plain functions, so the trainer and evaluator treat all methods alike:
- `make_model(feature_dim, rngs)`: a Flax NNX module;
- `sample_batch(key, pool)`: a training batch drawn on device from the training pool
  (`a`, `b` `[U, K, D]`, `label`, `mask` `[U, K]`, `valid_flat` `[P]` flat indices of real pairs);
- `loss(model, batch, key, step)`: `(scalar, metrics)`;
- `predict(model, context, targets)`: `(logits [B, T], aux)` for users given by their context
  pairs (`a`, `b`, `label` `[B, N, ...]`); methods with one reward for everyone ignore it.
  Latent methods put the user representation in aux (`mu`, `log_var` for Gaussian posteriors).
Optional hooks of the one trainer (`vpl.train.fit`):
- `bind(data) -> Method`: the method for these training users (per-user parameters);
- `initialize(model, data) -> info`: sets initial values of a fresh run in place (PReF's SVD);
- `finalize(model) -> model`: after training and after a restore; a pure function of the
  trained parameters (PReF's prior of a new user), so a restored model is exactly the trained
  one.
`fit` replaces the gradient loop for methods not trained by gradient steps alone (MaxMin's
EM; it drives `vpl.train`'s step and `Session` itself), with `restore(config, feature_dim,
ckpt_dir, step=None) -> (model, step)` for `vpl.analysis.load_run`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
from flax import nnx

Batch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  make_model: Callable[[int, nnx.Rngs], nnx.Module]
  sample_batch: Callable[[jax.Array, Batch], Batch]
  loss: Callable[[nnx.Module, Batch, jax.Array, jax.Array], tuple[jax.Array, dict]]
  predict: Callable[[nnx.Module, Batch, Batch], tuple[jax.Array, dict]]
  batch_axis_size: int  # size of the batch axis that is split across devices
  batch_axis_source: str = "train.batch_sets"  # the config field(s) that set it
  # Pairs every training user must have for sample_batch, and the config fields that set it.
  min_pairs_per_user: int = 1
  min_pairs_source: str = "sampling a pair"

  bind: Optional[Callable[[Any], "Method"]] = None
  initialize: Optional[Callable[[nnx.Module, Any], dict]] = None
  finalize: Optional[Callable[[nnx.Module], nnx.Module]] = None
  fit: Optional[Callable[..., tuple[nnx.Module, dict]]] = None
  # With an own `fit` and its own checkpoint layout: `restore(config, feature_dim, ckpt_dir,
  # step=None) -> (model, step)` rebuilds the trained model for analysis (vpl.analysis).
  restore: Optional[Callable[..., tuple[nnx.Module, int]]] = None
