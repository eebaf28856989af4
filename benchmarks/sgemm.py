"""The machine's matmul peak that the benchmarks compare against: numpy's float32 sgemm."""

import time

import numpy as np


def sgemm_gflops() -> float:
  """numpy float32 matmul GFLOP/s: the best of 2048^3 and 4096x256x256 (several repeats)."""
  rng = np.random.default_rng(0)
  best = 0.0
  for m, k, n, reps in ((2048, 2048, 2048, 3), (4096, 256, 256, 50)):
    x = rng.normal(size=(m, k)).astype(np.float32)
    y = rng.normal(size=(k, n)).astype(np.float32)
    x @ y  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
      x @ y
    best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
  return best
