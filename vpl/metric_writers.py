"""Where training metrics go: `metrics.jsonl` always, TensorBoard event files optionally.

A writer takes one row of scalars per jitted training call. The JSONL file is what notebooks
and `vpl.analysis` read; TensorBoard (`config.metrics.tensorboard = True`) is for watching
runs live, and needs `tensorboardX` (the `tensorboard` extra: `pip install -e '.[tensorboard]'`;
no TensorFlow). Only process 0 writes, so a multi-process run logs each step once.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Protocol

import jax
import ml_collections

TENSORBOARD_DIR = "tensorboard"


class MetricWriter(Protocol):
  def write(self, step: int, scalars: dict[str, float]) -> None: ...
  def close(self) -> None: ...


class JsonlWriter:
  """Appends `{"method", "step", **scalars}` lines to a JSONL file."""

  def __init__(self, path: str, method: str):
    self.path, self.method = path, method

  def write(self, step: int, scalars: dict[str, float]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(dict(method=self.method, step=step, **scalars)) + "\n")

  def close(self) -> None:
    pass


class TensorBoardWriter:
  """Scalars as TensorBoard events in `logdir`, tagged by name (one logdir per method)."""

  def __init__(self, logdir: str):
    try:
      from tensorboardX import SummaryWriter
    except ImportError as e:
      raise ValueError(
          "metrics.tensorboard = True needs tensorboardX (no TensorFlow): install the extra "
          "with `pip install -e '.[tensorboard]'`, or set --config.metrics.tensorboard=False."
      ) from e
    self.logdir = logdir
    self._writer = SummaryWriter(logdir)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    for tag, value in scalars.items():
      if isinstance(value, (int, float)):  # lists (e.g. MaxMin's cluster sizes): JSONL only
        self._writer.add_scalar(tag, value, step)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MultiWriter:
  """Sends every row to each of several writers."""

  def __init__(self, writers: list):
    self.writers = writers

  def write(self, step: int, scalars: dict[str, float]) -> None:
    for w in self.writers:
      w.write(step, scalars)

  def close(self) -> None:
    for w in self.writers:
      w.close()


def create(config: ml_collections.ConfigDict, metrics_path: Optional[str],
           method: str) -> MultiWriter:
  """The writers a training run of `method` uses.

  Args:
    config: the run's config; `metrics.tensorboard` turns on event files (configs without a
      `metrics` group write JSONL only).
    metrics_path: the JSONL file (`WORKDIR/metrics.jsonl`); None writes nothing. Event files
      go to `WORKDIR/tensorboard/<method>/`.
    method: the method's name (a JSONL field, and the TensorBoard run name).

  Returns:
    A writer; on processes other than 0 it writes nothing.
  """
  if metrics_path is None or jax.process_index() != 0:
    return MultiWriter([])
  writers = [JsonlWriter(metrics_path, method)]
  group = config.get("metrics")
  if group is not None and group.get("tensorboard", False):
    writers.append(TensorBoardWriter(os.path.join(
        os.path.dirname(os.path.abspath(metrics_path)), TENSORBOARD_DIR, method)))
  return MultiWriter(writers)


def read_tensorboard_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar in the event files of `logdir`: `{tag: [(step, value), ...]}`.

  Parses the TFRecord framing (length, CRC, payload, CRC) and decodes each payload with
  tensorboardX's Event proto; for tests and notebooks that check what was logged.
  """
  import struct

  from tensorboardX.proto import event_pb2

  out: dict[str, list[tuple[int, float]]] = {}
  for name in sorted(os.listdir(logdir)):
    if not name.startswith("events.out.tfevents"):
      continue
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      payload = data[pos + 12:pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
  return out
