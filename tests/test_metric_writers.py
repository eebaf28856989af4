"""Training metrics: metrics.jsonl always; TensorBoard event files holding the same scalars."""

import json
import os
import sys

import numpy as np
import pytest

from conftest import edited
from vpl import methods, metric_writers, train


def test_jsonl_only_by_default(tiny_config, tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  writer = metric_writers.create(tiny_config, path, "vpl")
  assert [type(w) for w in writer.writers] == [metric_writers.JsonlWriter]
  writer.write(5, dict(loss=0.25))
  writer.write(10, dict(loss=0.125, kl=1.0))
  writer.close()
  assert [json.loads(x) for x in open(path)] == [
      dict(method="vpl", step=5, loss=0.25), dict(method="vpl", step=10, loss=0.125, kl=1.0)]
  assert metric_writers.create(tiny_config, None, "vpl").writers == []
  assert not os.path.exists(tmp_path / metric_writers.TENSORBOARD_DIR)


def test_missing_tensorboardx_names_the_extra(tiny_config, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import raises ImportError
  config = edited(tiny_config, **{"metrics.tensorboard": True})
  with pytest.raises(ValueError, match=r"pip install -e '\.\[tensorboard\]'"):
    metric_writers.create(config, str(tmp_path / "metrics.jsonl"), "btl")


def test_tensorboard_events_hold_the_logged_scalars(tiny_config, tmp_path):
  pytest.importorskip("tensorboardX")
  config = edited(tiny_config, **{"metrics.tensorboard": True, "train.num_steps": 4,
                                  "train.steps_per_call": 2, "train.checkpoint_every": 4})
  from vpl.experiment import build_task
  data = build_task(config).data
  metrics_path = str(tmp_path / "metrics.jsonl")
  train.fit(methods.make_method("btl", config), config, data,
            ckpt_dir=str(tmp_path / "ckpt"), metrics_path=metrics_path)
  rows = [json.loads(x) for x in open(metrics_path)]
  assert [r["step"] for r in rows] == [2, 4]

  logdir = tmp_path / metric_writers.TENSORBOARD_DIR / "btl"
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(logdir))
  events = metric_writers.read_tensorboard_scalars(str(logdir))
  assert set(events) == set(rows[0]) - {"method", "step"}  # loss, nll, grad_norm, steps_per_s
  for tag, points in events.items():
    assert [s for s, _ in points] == [2, 4], tag
    # Event files store float32.
    np.testing.assert_allclose([v for _, v in points], [r[tag] for r in rows], rtol=1e-6,
                               err_msg=tag)
