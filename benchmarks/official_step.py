"""Step time of the official VPL code (PyTorch) at the control size, for a same-session comparison.

This script runs the official reward models, not this project's: it imports `VAEModel` and
`MLPModel` from a checkout of the official code (github.com/WEIRDLabUW/vpl, package
`pref_learn.models`) and times the training step of its `pref_learn/train.py` (zero_grad,
forward, backward, Adam step) on random batches of the control experiment's shape:
256 sets x 16 pairs of 2-D states, segments of one state, hidden 256, latent 32. It imports no
JAX and nothing of this project, so it runs in any environment with torch:

  python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
  git clone https://github.com/WEIRDLabUW/vpl /tmp/official
  /tmp/torchenv/bin/python benchmarks/official_step.py --official_path=/tmp/official

Run `python -m benchmarks.throughput --sizes=control` right before or after it on the same
machine: only then are the two step times a comparison. Prints one JSON line per model.
"""

import argparse
import json
import sys
import time


def time_step(model, batch, steps, repeats, torch):
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

  def run(n):
    for _ in range(n):
      optimizer.zero_grad()
      loss, _ = model(*batch)
      loss.backward()
      optimizer.step()

  run(3)  # warm-up
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    run(steps)
    best = min(best, (time.perf_counter() - start) / steps)
  return 1000 * best


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--official_path", required=True,
                      help="Checkout of the official VPL code (the folder holding pref_learn/).")
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
  parser.add_argument("--steps", type=int, default=20, help="Steps per timed repeat.")
  parser.add_argument("--repeats", type=int, default=3, help="Timed repeats; the best is kept.")
  args = parser.parse_args()
  sys.path.insert(0, args.official_path)
  import torch  # pylint: disable=import-outside-toplevel
  from pref_learn.models.mlp import MLPModel  # pylint: disable=import-outside-toplevel
  from pref_learn.models.vae import VAEModel  # pylint: disable=import-outside-toplevel
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  sets, pairs, segment, state_dim, hidden, latent = 256, 16, 1, 2, 256, 32
  s1 = torch.randn(sets, pairs, segment, state_dim)
  s2 = torch.randn(sets, pairs, segment, state_dim)
  labels = (torch.rand(sets, pairs, 1) < 0.5).float()
  models = {
      "btl": MLPModel(state_dim, hidden),
      "vpl": VAEModel(encoder_input=pairs * (2 * state_dim * segment + 1),
                      decoder_input=state_dim + latent, latent_dim=latent, hidden_dim=hidden,
                      annotation_size=pairs, size_segment=segment),
  }
  for name, model in models.items():
    ms = time_step(model, (s1, s2, labels), args.steps, args.repeats, torch)
    print(json.dumps(dict(system="official", method=name, size="control",
                          ms_per_step=round(ms, 2), torch=torch.__version__,
                          threads=torch.get_num_threads())))


if __name__ == "__main__":
  main()
