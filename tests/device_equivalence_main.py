"""Trains the tiny config briefly on every CPU device there is; prints a JSON summary.

Run by tests/test_device_equivalence.py twice, once with
XLA_FLAGS=--xla_force_host_platform_device_count=4 and once with 1 device:

  python tests/device_equivalence_main.py OUT.npz

writes every method's final parameters (and VPL's with model.decoder_blocks = 4, as
"vpl_blocks") to OUT.npz and prints one JSON line on stdout:
{"device_count", "methods": {name: {"loss": [per call], "state_devices"}},
 "indivisible_error": the ValueError for a batch of 6 sets, or null if it trained}.
"""

import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(out_path: str) -> None:
  import jax
  import numpy as np
  from flax import nnx

  from experiments.configs import tiny
  from vpl import configs, methods, train
  from vpl.experiment import build_task

  config = tiny.get_config()
  config.unlock()
  config.train.num_steps = 40
  config.train.steps_per_call = 20
  config.train.checkpoint_every = 40
  config.lock()
  task = build_task(config)
  summary = dict(device_count=jax.device_count(), methods={})
  arrays = {}
  # "vpl_blocks": VPL with its decoder in 4 blocks, each block's backward at once
  # (vpl/models/decoder_blocks.py), its strided blocks spanning the sharded batch.
  runs = {name: config for name in config.methods}
  runs["vpl_blocks"] = configs.with_overrides(config, {"model.decoder_blocks": 4})
  for name, config_of in runs.items():
    method = methods.make_method(name.removesuffix("_blocks"), config_of)
    with tempfile.TemporaryDirectory() as workdir:
      metrics_path = os.path.join(workdir, "metrics.jsonl")
      model, _ = train.fit(method, config_of, task.data,
                           ckpt_dir=os.path.join(workdir, "ckpt"), metrics_path=metrics_path)
      losses = [json.loads(line)["loss"] for line in open(metrics_path)]
    prep = train.prepare(method, config_of, task.data)
    summary["methods"][name] = dict(
        loss=losses, state_devices=len(jax.tree.leaves(prep.state)[0].sharding.device_set))
    flat = nnx.to_flat_state(nnx.state(model))
    arrays.update({f"{name}/" + "/".join(map(str, path)): np.asarray(v.get_value())
                   for path, v in flat})

  config.unlock()
  config.train.batch_sets = 6
  config.lock()
  try:
    train.prepare(methods.make_method("vpl", config), config, task.data)
    summary["indivisible_error"] = None
  except ValueError as e:
    summary["indivisible_error"] = str(e)

  np.savez(out_path, **arrays)
  print(json.dumps(summary))


if __name__ == "__main__":
  main(sys.argv[1])
