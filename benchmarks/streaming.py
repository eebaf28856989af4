"""Streaming against in-memory training: throughput at the default size, and scaling.

  python -m benchmarks.streaming                           # default size, then 1e5 and 1e6
  python -m benchmarks.streaming --sizes=100000,1000000,10000000 --data_dir=/big/disk

Default size: the default config's VPL (experiments/configs/default.py: didactic, 1,000
users x 64 pairs, 2-D states, 64 sets x 16 pairs a step, 250 steps per jitted call), trained
in memory and then streamed from the same task's TFDS array_record files, back to back in
one process, `--repeats` times. A first jitted call compiles (untimed, its result dropped);
then all `--steps` are timed. Each mode prints one JSON line with `mode` ("memory" |
"streaming"), `comparisons_per_s` (pairs in the timed batches / seconds), `ms_per_step` and
`cpu_s` (CPU seconds of all the process's threads over the timed steps: what reading adds,
less sensitive than wall time to other jobs on the machine); the streaming line adds
`ratio`, its throughput over the memory run just before it. A `decode` line then times
reading 20,000 of its rows (one array_record call) and decoding their a, b and label
vectorised, against TFDS decoding 2,000 of them one by one (microseconds a row).

Scaling: for each of `--sizes` comparisons, a `pets` data set (64-d features, 100 pairs per
user) is built in `--data_dir` (kept for reruns), and one pass over the training rows (steps
= training comparisons / comparisons per step) is trained by a fresh process per mode, so
`peak_rss_mib` (the process's VmHWM) is that run's alone. The streaming process opens the
files and the user index and never loads the evaluated users (the experiment loads them for
scoring; docs/data.md). Rows print `mode`, `comparisons`, `steps`, `wall_s` (the timed
steps), `compile_s`, `peak_rss_mib` and, once built, `build_s`.
"""

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

from experiments.configs import default
from vpl import configs, methods, train
from vpl.data import records, sources, streaming, tfds_builders

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["100000", "1000000"], "Comparisons of the scaling rows (64-d).")
flags.DEFINE_integer("steps", 3000, "Steps of the default-size runs (the default config's).")
flags.DEFINE_integer("repeats", 2, "Memory/streaming pairs at the default size.")
flags.DEFINE_string("data_dir", "", "Where data sets are built (default: a temporary folder).")
flags.DEFINE_bool("default_size", True, "Run the default-size rows.")
flags.DEFINE_integer("memory_max_comparisons", 3_000_000, "Scaling sizes above this run the "
                     "streaming row only (the in-memory path holds the whole data set: 3.4 GB "
                     "of peak RSS at 10^6 comparisons).")
flags.DEFINE_string("child", "", "Internal: 'mode:comparisons' runs one scaling row.")

PAIRS_PER_USER = 100
DIM = 64
# Scaling rows: 50 steps a jitted call, so a pass is whole calls to within 50 steps and a
# chunk of 64-d batches is 26 MiB (at the default 250 it would be 132 MiB).
STEPS_PER_CALL = 50


def peak_rss_mib() -> float:
  """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is missing)."""
  try:
    for line in open("/proc/self/status"):
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def comparisons_per_step(method, config, data) -> int:
  """Pairs in one step's batch (every `label` leaf: context and targets)."""
  pool = data.index_pool() if isinstance(data, streaming.StreamingData) else train.make_pool(
      data)
  shapes = jax.eval_shape(method.sample_batch, jax.random.key(0), pool)
  leaves = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return sum(int(np.prod(x.shape)) for path, x in leaves if path[-1].key == "label")


def timed_fit(method, config, data) -> dict:
  """Trains `config.train.num_steps` steps (whole jitted calls) and times them all.

  Compilation is done first by one call at the last chunk's steps, whose state is then
  dropped: a streamed run's reader restarts at step 0, so no chunk read during compilation
  is counted as free.
  """
  t = config.train
  start = time.perf_counter()
  prep = train.prepare(method, config, data)
  last = jax.device_put(np.int32(t.num_steps - t.steps_per_call), prep.state["step"].sharding)
  warm, _ = prep.run(dict(prep.state, step=last), prep.pool, prep.method_key,
                     num_steps=t.steps_per_call)
  jax.block_until_ready(warm)
  ready, cpu = time.perf_counter(), time.process_time()
  state, step = prep.state, 0
  while step < t.num_steps:
    state, _ = prep.run(state, prep.pool, prep.method_key, num_steps=t.steps_per_call)
    step = int(jax.block_until_ready(state)["step"])
  end, cpu = time.perf_counter(), time.process_time() - cpu
  per_step = comparisons_per_step(method, config, data)
  return dict(steps=t.num_steps, comparisons_per_step=per_step,
              comparisons_per_s=round(t.num_steps * per_step / (end - ready)),
              ms_per_step=round(1e3 * (end - ready) / t.num_steps, 3),
              wall_s=round(end - ready, 2), cpu_s=round(cpu, 2),
              compile_s=round(ready - start, 2))


def default_rows(data_dir: str) -> None:
  c = default.get_config()
  tfds_builders.build(tfds_builders.make_config(c.data.source, c.data.kwargs.to_dict(), c.seed),
                      data_dir)
  c = configs.with_overrides(c, {"methods": ("vpl",), "train.num_steps": FLAGS.steps,
                                 "streaming.data_dir": data_dir})
  memory, disk = sources.build(c).train, streaming.build(c).train
  method = methods.make_method("vpl", c)
  for repeat in range(FLAGS.repeats):
    mem = timed_fit(method, c, memory)
    print(json.dumps(dict(mode="memory", size="default", repeat=repeat, **mem)), flush=True)
    got = timed_fit(method, c, disk)
    print(json.dumps(dict(mode="streaming", size="default", repeat=repeat, **got,
                          ratio=round(got["comparisons_per_s"] / mem["comparisons_per_s"], 3))),
          flush=True)


def decode_row(data_dir: str, num_rows: int = 20000, tfds_rows: int = 2000) -> None:
  """Reading and decoding the default data set's rows: vectorised against TFDS one by one."""
  c = default.get_config()
  opened = tfds_builders.open_dataset(data_dir, tfds_builders.make_config(
      c.data.source, c.data.kwargs.to_dict(), c.seed))
  rows = np.sort(np.random.default_rng(0).choice(opened.num_rows, num_rows, replace=False))
  fields = ("a", "b", "label")
  specs = {k: (opened.dtypes[k], tuple(opened.metadata["shapes"][k])) for k in fields}
  start = time.perf_counter()
  raw = opened.source.__getitems__(rows.tolist())
  read = time.perf_counter()
  records.decode(raw, specs, fields)
  decoded = time.perf_counter()
  for r in raw[:tfds_rows]:
    opened.features.deserialize_example_np(r)
  one_by_one = time.perf_counter()
  us = lambda seconds, n: round(1e6 * seconds / n, 2)
  print(json.dumps(dict(mode="decode", rows=num_rows, read_us_per_row=us(read - start, num_rows),
                        vectorised_us_per_row=us(decoded - read, num_rows),
                        tfds_us_per_row=us(one_by_one - decoded, tfds_rows))), flush=True)


def scaling_config(comparisons: int, data_dir: str):
  num_users = comparisons // PAIRS_PER_USER
  return configs.with_overrides(default.get_config(), {
      "methods": ("vpl",), "data.source": "pets",
      "data.kwargs": dict(num_users=num_users, pairs_per_user=PAIRS_PER_USER, dim=DIM),
      "eval.unseen_fraction": 0.0, "streaming.data_dir": data_dir,
      "train.steps_per_call": STEPS_PER_CALL, "train.checkpoint_every": STEPS_PER_CALL})


def training_users(config) -> streaming.StreamingData:
  """The training users `streaming.build` streams, without loading the evaluated ones."""
  d = config.data
  opened = tfds_builders.open_dataset(
      config.streaming.data_dir, tfds_builders.make_config(d.source, d.kwargs.to_dict(),
                                                           config.seed))
  kept = np.arange(len(opened.index["user_id"]))
  for seed in sources.split_seeds(config.seed, config.eval.split):
    kept, _ = streaming.split_positions(opened.index, kept, d.heldout_fraction, seed)
  return streaming.StreamingData(opened, kept)


def child_row(spec: str) -> None:
  mode, comparisons = spec.split(":")
  c = scaling_config(int(comparisons), FLAGS.data_dir)
  data = training_users(c) if mode == "streaming" else sources.build(c).train
  method = methods.make_method("vpl", c)
  per_step = comparisons_per_step(method, c, data)
  spc = c.train.steps_per_call
  # One pass: as many steps as the training split has comparisons, in whole jitted calls.
  steps = spc * math.ceil(int(data.pairs_per_user.sum()) / per_step / spc)
  c = configs.with_overrides(c, {"train.num_steps": steps})
  row = timed_fit(method, c, data)
  print(json.dumps(dict(mode=mode, comparisons=int(comparisons),
                        training_comparisons=int(data.pairs_per_user.sum()), **row,
                        peak_rss_mib=round(peak_rss_mib(), 1))), flush=True)


def scaling_rows(data_dir: str) -> None:
  for size in FLAGS.sizes:
    c = scaling_config(int(size), data_dir)
    d = c.data
    config = tfds_builders.make_config(d.source, d.kwargs.to_dict(), c.seed)
    info = os.path.join(tfds_builders.dataset_dir(data_dir, config), "dataset_info.json")
    built = not os.path.exists(info)  # Built now (and timed), not found from a rerun.
    start = time.perf_counter()
    tfds_builders.build(config, data_dir)
    build_s = round(time.perf_counter() - start, 1)
    for mode in ("memory", "streaming"):
      if mode == "memory" and int(size) > FLAGS.memory_max_comparisons:
        print(json.dumps(dict(mode=mode, comparisons=int(size), skipped=(
            f"over --memory_max_comparisons={FLAGS.memory_max_comparisons}"))), flush=True)
        continue
      out = subprocess.run(
          [sys.executable, "-m", "benchmarks.streaming", f"--child={mode}:{size}",
           f"--data_dir={data_dir}"], capture_output=True, text=True, check=False)
      if out.returncode:
        raise RuntimeError(f"{mode} at {size} comparisons failed:\n{out.stderr[-3000:]}")
      row = json.loads(out.stdout.strip().splitlines()[-1])
      print(json.dumps(dict(row, build_s=build_s) if built else row), flush=True)


def main(argv):
  del argv
  if FLAGS.child:
    return child_row(FLAGS.child)
  data_dir = FLAGS.data_dir or tempfile.mkdtemp()
  if FLAGS.default_size:
    default_rows(data_dir)
    decode_row(data_dir)
  scaling_rows(data_dir)


if __name__ == "__main__":
  app.run(main)
