"""Where XLA's CPU code stands against numpy's sgemm, one ingredient of a train step at a time.

  python -m benchmarks.matmul
  XLA_FLAGS=--xla_cpu_use_onednn=true python -m benchmarks.matmul   # another XLA CPU backend

The control-size decoder (benchmarks/throughput.py) is an MLP on 8,192 rows (a and b of
4,096 comparisons) with 256-wide layers. Its step is made of three matmul kinds per layer:
the forward x W, the input gradient dy W^T and the weight gradient x^T dy (contracting over
the 8,192 rows). Each is timed jitted and in numpy (float32, same shapes, interleaved so both
see the same machine state), and so is the MLP's whole forward + backward with GELU (this
project's activation), LeakyReLU (the official code's) and no activation, to separate the
matmuls from the elementwise work, on all rows at once and in blocks of rows (`--blocks`,
model.decoder_blocks). Prints one JSON line per row, each with its share of numpy's sgemm
(benchmarks/sgemm.py) measured in the same run.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.sgemm import sgemm_gflops

FLAGS = flags.FLAGS
flags.DEFINE_integer("rows", 8192, "Rows of the activations (a and b of 4,096 comparisons).")
flags.DEFINE_integer("width", 256, "Layer width.")
flags.DEFINE_integer("repeats", 7, "Timed repeats of 10 calls; the best is kept.")
flags.DEFINE_list("blocks", ["1", "8", "16"], "The MLP rows run on the rows split into this many "
                  "blocks (model.decoder_blocks); the same function.")


def best_seconds(fn, args, repeats):
  """Best time of one call over `repeats` x 10 calls (after a warm-up call)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(10):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / 10)
  return best


def matmul_rows(m, k, repeats):
  rng = np.random.default_rng(0)
  x, dy = (rng.normal(size=(m, k)).astype(np.float32) for _ in range(2))
  w = rng.normal(size=(k, k)).astype(np.float32)
  kinds = {"forward x W": lambda x, w, dy: x @ w,
           "input gradient dy W^T": lambda x, w, dy: dy @ w.T,
           "weight gradient x^T dy": lambda x, w, dy: x.T @ dy}
  flops = 2 * m * k * k
  for name, fn in kinds.items():
    host = (x, w, dy)
    device = tuple(jnp.asarray(v) for v in host)
    jitted = jax.jit(fn)
    numpy_s = best_seconds(fn, host, repeats)
    jax_s = best_seconds(jitted, device, repeats)
    yield dict(row=name, shape=f"{m}x{k}x{k}", numpy_gflops=round(flops / numpy_s / 1e9, 1),
               jax_gflops=round(flops / jax_s / 1e9, 1))


def mlp_rows(m, k, repeats):
  rng = np.random.default_rng(0)
  sizes = [34, k, k, k, 1]  # the control decoder: [s, z] (2 + 32) -> 3 x 256 -> 1
  params = [jnp.asarray(rng.normal(size=(i, o)).astype(np.float32) / np.sqrt(i))
            for i, o in zip(sizes[:-1], sizes[1:])]
  x = jnp.asarray(rng.normal(size=(m, sizes[0])).astype(np.float32))
  flops = 3 * 2 * m * sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))  # forward + backward
  activations = {"gelu (tanh form, this project's)": jax.nn.gelu,
                 "leaky_relu 0.2 (the official code's)": lambda v: jax.nn.leaky_relu(v, 0.2),
                 "none (matmuls only)": lambda v: v}
  for blocks in map(int, FLAGS.blocks):
    for name, act in activations.items():
      if blocks > 1 and act is activations["none (matmuls only)"]:
        continue  # XLA re-associates a blocked chain of linear maps: not the same FLOPs
      def loss(params, x, act=act, blocks=blocks):
        total = 0.0
        for h in jnp.array_split(x, blocks):
          for w in params[:-1]:
            h = act(h @ w)
          total = total + (h @ params[-1]).sum()
        return total
      seconds = best_seconds(jax.jit(jax.grad(loss)), (params, x), repeats)
      yield dict(row=f"MLP forward + backward, {name}", shape=f"{m}x34-{k}-{k}-{k}-1",
                 blocks=blocks, ms=round(1000 * seconds, 2),
                 jax_gflops=round(flops / seconds / 1e9, 1))
      if blocks == 1:
        continue

      def block_loss(params, h, act=act):
        for w in params[:-1]:
          h = act(h @ w)
        return (h @ params[-1]).sum()

      def fused_grad(params, x, blocks=blocks):
        """Each block's backward pass right after its forward pass, in a lax.scan (how
        vpl/models/decoder_blocks.py trains VPL's decoder): the same gradient."""
        def body(grads, h):
          return jax.tree.map(jnp.add, grads, jax.grad(block_loss)(params, h)), None
        zeros = jax.tree.map(jnp.zeros_like, params)
        return jax.lax.scan(body, zeros, x.reshape(blocks, -1, x.shape[-1]))[0]
      seconds = best_seconds(jax.jit(fused_grad), (params, x), repeats)
      yield dict(row=f"MLP forward + backward, {name}, each block's backward at once",
                 shape=f"{m}x34-{k}-{k}-{k}-1", blocks=blocks, ms=round(1000 * seconds, 2),
                 jax_gflops=round(flops / seconds / 1e9, 1))


def main(argv):
  del argv
  flags_in_use = os.environ.get("XLA_FLAGS", "")
  rows = [*matmul_rows(FLAGS.rows, FLAGS.width, FLAGS.repeats),
          *mlp_rows(FLAGS.rows, FLAGS.width, FLAGS.repeats)]
  sgemm = sgemm_gflops()
  for row in rows:
    print(json.dumps(dict(row, fraction_of_sgemm=round(row["jax_gflops"] / sgemm, 3),
                          sgemm_gflops=round(sgemm, 1), xla_flags=flags_in_use,
                          device=jax.devices()[0].device_kind)))


if __name__ == "__main__":
  app.run(main)
