"""Host memory of streaming training against the size of the training split.

  python -m benchmarks.streaming_memory

Builds a pets data set of 2,000 users x 32 pairs (D = 64) as TFDS array_record files in a
temporary folder, trains VPL 100 steps from it with `streaming.enabled`, and prints the
split's size, one chunk's size and the host's peak allocations (tracemalloc) from the end of
the first chunk: chunks in flight, their decoded records and a checkpoint save, never the
split. docs/data.md quotes its output. (tests/test_streaming.py checks the structural bound:
the reader never asks the file for more than one chunk's rows at a time.)
"""

import tempfile
import time
import tracemalloc

from absl import app

from experiments.configs import tiny
from vpl import configs, methods, train
from vpl.data import streaming, tfds_builders


def main(argv):
  del argv
  tmp = tempfile.mkdtemp()
  kwargs = dict(num_users=2000, pairs_per_user=32, dim=64)
  tfds_builders.build(tfds_builders.make_config("pets", kwargs, 0), tmp)
  c = configs.with_overrides(tiny.get_config(), {
      "data.source": "pets", "data.kwargs": kwargs, "train.num_steps": 100,
      "eval.unseen_fraction": 0.0, "train.steps_per_call": 10, "train.checkpoint_every": 50,
      "streaming.enabled": True, "streaming.data_dir": tmp})
  disk = streaming.build(c)
  split_bytes = int(disk.train.pairs_per_user.sum()) * (2 * 64 * 4 + 4)  # a, b, label
  method = methods.make_method("vpl", c)

  def trace(step):  # From the end of the first chunk: compilation is over, reading goes on.
    if step == 10:
      tracemalloc.start()

  start = time.perf_counter()
  train.fit(method, c, disk.train, ckpt_dir=tmp + "/ckpt", on_chunk=trace)
  seconds = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  chunk_bytes = 10 * 16 * 8 * (2 * 64 * 4 + 4)  # steps x sets x pairs x (a, b, label)
  print(f"training split: {disk.train.num_users} users, {disk.train.pairs_per_user.sum()} "
        f"pairs, {split_bytes / 2**20:.1f} MiB of a, b, label; one chunk "
        f"{chunk_bytes / 2**20:.2f} MiB; streaming fit of 100 steps ({seconds:.1f} s): host "
        f"peak after the first chunk {peak / 2**20:.1f} MiB (tracemalloc)")


if __name__ == "__main__":
  app.run(main)
