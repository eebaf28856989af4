"""Training throughput of BTL and VPL at the official VPL code's control size.

Size: 3x256 MLPs, latent 32, 16 pairs per set, 256 sets per batch; VPL encodes each set's
16 pairs and scores the same 16 pairs (the official training), so both methods process
256 x 16 = 4,096 comparisons per step. The loop timed is the one `vpl.train.fit` runs
(`vpl.train.prepare`): batches drawn on device, `steps_per_call` steps per jitted call.

  python -m benchmarks.throughput                       # CPU / default device
  python -m benchmarks.throughput --methods=vpl --repeats=5

Prints compile time, ms/step, comparisons/s and peak memory (device peak where the backend
reports it, else the process's peak resident memory) as a table and as JSON lines.
"""

import json
import resource
import time

import jax
import numpy as np
from absl import app, flags

from experiments.configs import default
from vpl import configs, methods, train
from vpl.data.comparisons import UserComparisons

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["btl", "vpl"], "Methods to time.")
flags.DEFINE_integer("feature_dim", 16, "Width of each option's features.")
flags.DEFINE_integer("steps_per_call", 20, "Train steps per jitted call.")
flags.DEFINE_integer("repeats", 3, "Timed calls after the warm-up call.")
flags.DEFINE_integer("users", 512, "Users in the random training pool.")
flags.DEFINE_integer("pairs_per_user", 64, "Pairs per user in the pool.")


def control_size_config():
  # The official code's architecture (r = MLP([s, z])), so the timings compare like with like.
  return configs.with_overrides(default.get_config(), {
      "model.hidden": (256, 256, 256), "model.embed_dim": 256, "model.latent_dim": 32,
      "model.decoder": "concat", "train.batch_sets": 256, "train.num_context": 16,
      "train.num_targets": 16, "loss.target_mode": "context",
      "train.steps_per_call": FLAGS.steps_per_call})


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


def time_method(name, config, data):
  method = methods.make_method(name, config)
  prep = train.prepare(method, config, data)
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
  comparisons = config.train.batch_sets * config.train.num_context
  memory, memory_kind = peak_memory_mb()
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  return dict(method=name, device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
              params=int(params), compile_s=round(compile_s, 2),
              ms_per_step=round(ms_per_step, 2),
              comparisons_per_s=round(comparisons / ms_per_step * 1000),
              peak_memory_mb=round(memory), memory_kind=memory_kind)


def main(argv):
  del argv
  config = control_size_config()
  data = random_pool(FLAGS.users, FLAGS.pairs_per_user, FLAGS.feature_dim)
  rows = [time_method(name, config, data) for name in FLAGS.methods]
  print("| method | device | params | compile s | ms/step | comparisons/s | peak MB |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for r in rows:
    print(f"| {r['method']} | {r['device']} x{r['num_devices']} | {r['params']:,} | "
          f"{r['compile_s']} | {r['ms_per_step']} | {r['comparisons_per_s']:,} | "
          f"{r['peak_memory_mb']} ({r['memory_kind']}) |")
  for r in rows:
    print(json.dumps(r))


if __name__ == "__main__":
  app.run(main)
