"""Training throughput of BTL and VPL, with FLOPs per step and the machine's matmul peak.

Sizes (`--sizes`):
  control  like for like with the official VPL code's control experiment: 2-D states, 256 sets
           x 16 pairs per step with targets = context (4,096 comparisons); BTL an MLP with 2
           hidden layers of 256 (the official `MLPModel`); VPL's decoder 3 hidden layers of
           256 on [s, z] (concat) with latent 32; LeakyReLU 0.2 between layers as in the
           official code (`--control_activation=gelu` for this project's default). VPL's
           encoder is the project's own permutation-invariant one, not the official encoder
           of the flattened set, in both layouts (`--encoders`): deepsets (one 256-wide
           layer per pair, mean-pooled, then the hidden layers once per set) and pairwise
           (the hidden layers on every pair).
  default  the default config's models (64-wide) on 2-D states, 64 sets x 8 context + 8
           target pairs.
  d768, d4096  the default size on LLM-width features (`--embedding_dims`), with the training
           pool's features kept in float32 and in bfloat16 (`data.device_dtype`).
The loop timed is the one `vpl.train.fit` runs (`vpl.train.prepare`): batches drawn on
device, `steps_per_call` steps per jitted call. FLOPs per step come from XLA's cost analysis
of one compiled step; `sgemm_gflops` is numpy's float32 matmul (2048^3 and 4096x256x256)
measured in the same run, the peak the step is compared against.

  python -m benchmarks.throughput                       # CPU / default device
  python -m benchmarks.throughput --methods=vpl --sizes=control --repeats=5

Prints a table and one JSON line per row (method, size, ms_per_step, flops_per_step,
gflops_per_s, sgemm_gflops, pool_mb: the training pool's bytes on device, peak_memory_mb:
the process's peak so far, ...).
"""

import json
import resource
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.sgemm import sgemm_gflops
from experiments.configs import default
from vpl import configs, methods, train
from vpl.data.comparisons import UserComparisons

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["btl", "vpl"], "Methods to time.")
flags.DEFINE_list("sizes", ["control", "default"], "Sizes to time: control, default.")
flags.DEFINE_list("encoders", ["deepsets", "pairwise"], "VPL encoder layouts to time "
                  "(model.encoder): deepsets, pairwise.")
flags.DEFINE_list("decoder_blocks", ["1", "16"], "model.decoder_blocks of the VPL control "
                  "rows: the sets go through the decoder in this many blocks.")
flags.DEFINE_string("control_activation", "leaky_relu", "model.activation of the control "
                    "rows: leaky_relu (slope 0.2) is the official code's; gelu this project's.")
flags.DEFINE_integer("feature_dim", 2, "Width of each option's features (2: the official "
                     "code's 2-D states).")
flags.DEFINE_list("embedding_dims", ["768", "4096"], "Extra rows at the default size with "
                  "this feature width (LLM embeddings), in float32 and bfloat16 pools.")
flags.DEFINE_integer("steps_per_call", 20, "Train steps per jitted call.")
flags.DEFINE_integer("repeats", 3, "Timed calls after the warm-up call.")
flags.DEFINE_integer("users", 512, "Users in the random training pool.")
flags.DEFINE_integer("pairs_per_user", 64, "Pairs per user in the pool.")


def size_config(size: str, method: str, encoder: str = "pairwise", dtype: str = "float32",
                blocks: int = 1):
  """The config of one benchmark row (see the module doc)."""
  if size == "default" or size.startswith("d"):
    return configs.with_overrides(default.get_config(), {
        "train.steps_per_call": FLAGS.steps_per_call, "model.encoder": encoder,
        "data.device_dtype": dtype})
  if size != "control":
    raise ValueError(f"--sizes has {size!r}; use control or default.")
  # The official architecture: BTL's MLPModel has 2 hidden layers, VPL's decoder 3.
  hidden = (256, 256) if method == "btl" else (256, 256, 256)
  return configs.with_overrides(default.get_config(), {
      "model.hidden": hidden, "model.embed_dim": 256, "model.latent_dim": 32,
      "model.decoder": "concat", "loss.nonlinear_l2": 0.0, "train.batch_sets": 256,
      "train.num_context": 16, "train.num_targets": 16, "loss.target_mode": "context",
      "train.steps_per_call": FLAGS.steps_per_call, "model.encoder": encoder,
      "model.activation": FLAGS.control_activation, "model.decoder_blocks": blocks})


def step_flops(prep) -> float:
  """FLOPs of one train step, from XLA's cost analysis of a one-step compile."""
  one = prep.run.lower(prep.state, prep.pool, prep.method_key, num_steps=1).compile()
  cost = one.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def random_pool(users, pairs, dim, seed=0):
  rng = np.random.default_rng(seed)
  a, b = (rng.normal(size=(users, pairs, dim)).astype(np.float32) for _ in range(2))
  return UserComparisons(a, b, (rng.random((users, pairs)) < 0.5).astype(np.float32),
                         np.ones((users, pairs), bool), np.arange(users),
                         np.zeros(users, np.int32))


def peak_memory_mb():
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20, "device peak"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def time_method(name, size, data, sgemm, encoder="pairwise", dtype="float32", blocks=1):
  config = size_config(size, name, encoder, dtype, blocks)
  method = methods.make_method(name, config)
  prep = train.prepare(method, config, data)
  # XLA's cost analysis counts a loop's body once, and decoder_blocks > 1 runs the decoder in
  # a lax.scan (vpl/models/decoder_blocks.py): the FLOPs are those of the same step in one piece.
  one_piece = config if blocks == 1 else size_config(size, name, encoder, dtype, 1)
  flops = step_flops(prep if blocks == 1 else train.prepare(
      methods.make_method(name, one_piece), one_piece, data))
  n = config.train.steps_per_call
  start = time.perf_counter()
  compiled = prep.run.lower(prep.state, prep.pool, prep.method_key, num_steps=n).compile()
  compile_s = time.perf_counter() - start
  state, _ = compiled(prep.state, prep.pool, prep.method_key)
  jax.block_until_ready(state)
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    state, metrics = compiled(state, prep.pool, prep.method_key)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  ms_per_step = 1000 * min(times) / n
  t = config.train
  # Pairs a step reads: batch_sets x num_context (VPL's disjoint targets are extra pairs).
  extra = t.num_targets if name == "vpl" and config.loss.target_mode != "context" else 0
  comparisons = t.batch_sets * (t.num_context + extra)
  memory, memory_kind = peak_memory_mb()
  pool_mb = sum(x.nbytes for x in jax.tree.leaves(prep.pool)) / 2**20
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  gflops = flops / ms_per_step / 1e6
  return dict(method=name, size=size, encoder=encoder if name == "vpl" else None,
              activation=config.model.activation,
              decoder_blocks=blocks if name == "vpl" else None,
              feature_dim=int(data.a.shape[-1]), pool_dtype=dtype,
              device=jax.devices()[0].device_kind,
              num_devices=jax.device_count(), params=int(params),
              compile_s=round(compile_s, 2), ms_per_step=round(ms_per_step, 2),
              comparisons_per_s=round(comparisons / ms_per_step * 1000),
              flops_per_step=int(flops), gflops_per_s=round(gflops, 1),
              sgemm_gflops=round(sgemm, 1), fraction_of_sgemm=round(gflops / sgemm, 3),
              pool_mb=round(pool_mb, 1), peak_memory_mb=round(memory),
              memory_kind=memory_kind)


def main(argv):
  del argv
  data = random_pool(FLAGS.users, FLAGS.pairs_per_user, FLAGS.feature_dim)
  sgemm = sgemm_gflops()
  rows = [time_method(name, size, data, sgemm, encoder, blocks=int(k)) for size in FLAGS.sizes
          for name in FLAGS.methods
          for encoder in (FLAGS.encoders if name == "vpl" else ["pairwise"])
          for k in (FLAGS.decoder_blocks if name == "vpl" and size == "control" else ["1"])]
  for dim in map(int, FLAGS.embedding_dims):  # the default models on LLM-width features
    wide = random_pool(FLAGS.users, FLAGS.pairs_per_user, dim)
    rows += [time_method(name, f"d{dim}", wide, sgemm, "pairwise", dtype)
             for name in FLAGS.methods for dtype in ("float32", "bfloat16")]
  print(f"numpy sgemm: {sgemm:.1f} GFLOP/s (measured in this run)")
  print("| method | size | encoder | blocks | pool | device | params | ms/step | GFLOP/step | "
        "GFLOP/s | of sgemm | comparisons/s | pool MB | peak MB |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  for r in rows:
    print(f"| {r['method']} | {r['size']} | {r['encoder'] or '-'} | "
          f"{r['decoder_blocks'] or '-'} | {r['pool_dtype']} | "
          f"{r['device']} x{r['num_devices']} | "
          f"{r['params']:,} | {r['ms_per_step']} | {r['flops_per_step'] / 1e9:.2f} | "
          f"{r['gflops_per_s']} | {r['fraction_of_sgemm']:.0%} | "
          f"{r['comparisons_per_s']:,} | {r['pool_mb']} | {r['peak_memory_mb']} "
          f"({r['memory_kind']}) |")
  for r in rows:
    print(json.dumps(r))


if __name__ == "__main__":
  app.run(main)
