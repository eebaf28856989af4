"""Streaming from array_record: the same batches, parameters and results as in memory."""

import dataclasses
import os

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import assert_trees_equal, edited
from vpl import methods, seeding, train
from vpl.data import sources, streaming, tfds_builders
from vpl.experiment import train_and_evaluate

SHORT = {"train.num_steps": 20, "train.steps_per_call": 10, "train.checkpoint_every": 10}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """The tiny config's data set, built once."""
  from experiments.configs import tiny
  c = tiny.get_config()
  path = str(tmp_path_factory.mktemp("tfds"))
  tfds_builders.build(
      tfds_builders.make_config(c.data.source, c.data.kwargs.to_dict(), c.seed), path)
  return path


@pytest.fixture
def config(tiny_config, data_dir):
  return edited(tiny_config, **SHORT, **{"streaming.enabled": True,
                                         "streaming.data_dir": data_dir})


def _in_memory(config):
  return sources.build(edited(config, **{"streaming.enabled": False}))


def _assert_same_evaluation(mem, disk):
  """The same evaluated users, field by field, and the same context and target choice."""
  for f in dataclasses.fields(mem.evaluated):
    np.testing.assert_array_equal(getattr(disk.evaluated, f.name),
                                  getattr(mem.evaluated, f.name), err_msg=f.name)
  np.testing.assert_array_equal(disk.context_idx, mem.context_idx)
  np.testing.assert_array_equal(disk.target_mask, mem.target_mask)


def test_evaluated_users_match_memory(config):
  for split in ("users", "validation"):
    c = edited(config, **{"eval.split": split})
    mem, disk = _in_memory(c), streaming.build(c)
    _assert_same_evaluation(mem, disk)
    ids = disk.train.opened.index["user_id"][disk.train.users]
    np.testing.assert_array_equal(ids, mem.train.user_id)
    np.testing.assert_array_equal(disk.train.pairs_per_user, mem.train.pairs_per_user)
    assert disk.shares == mem.shares and disk.task.true_reward is None


def test_index_pool_points_at_the_training_pairs(config):
  mem, disk = _in_memory(config), streaming.build(config)
  pool = disk.train.index_pool()
  assert pool["a"].shape == mem.train.mask.shape and pool["a"].dtype == np.int32
  np.testing.assert_array_equal(pool["mask"], mem.train.mask)
  np.testing.assert_array_equal(pool["valid_flat"], train.make_pool(mem.train)["valid_flat"])
  rows = disk.train.opened.read(pool["a"][pool["mask"]], ["a", "b", "label"])
  for k in ("a", "b", "label"):
    np.testing.assert_array_equal(rows[k], getattr(mem.train, k)[mem.train.mask], err_msg=k)


@pytest.mark.parametrize("name,extra", [("btl", {}), ("vpl", {}),
                                        ("vpl", {"train.min_context": 2})])
def test_reader_draws_the_in_memory_batches(config, name, extra):
  c = edited(config, **extra)
  mem, disk = _in_memory(c), streaming.build(c)
  method = methods.make_method(name, c)
  key = train.step_key(c, name)
  reader = disk.train.reader(method.sample_batch, key, num_steps=20, steps_per_call=10)
  chunk = reader.load(10)  # steps 10..19
  pool = train.make_pool(mem.train)
  for i, step in enumerate(range(10, 20)):
    want = method.sample_batch(seeding.step_keys(key, step)[0], pool)
    assert_trees_equal(jax.tree.map(lambda x: x[i], chunk), want)


def _params(model):
  return nnx.to_pure_dict(nnx.state(model))


def test_fit_streaming_equals_memory_and_resumes(config, tmp_path):
  """Same seed => bit-identical parameters; a streaming run stopped and resumed, too."""
  mem = _in_memory(config)
  disk = streaming.build(config)
  for name in ("btl", "vpl"):
    method = methods.make_method(name, config)
    want, _ = train.fit(method, config, mem.train, ckpt_dir=str(tmp_path / f"mem_{name}"))

    def stop(step):
      if step == 10:
        raise KeyboardInterrupt

    ckpt = str(tmp_path / f"disk_{name}")
    if name == "vpl":
      with pytest.raises(KeyboardInterrupt):
        train.fit(method, config, disk.train, ckpt_dir=ckpt, on_chunk=stop)
    got, info = train.fit(method, config, disk.train, ckpt_dir=ckpt)
    assert info["final_step"] == 20
    assert info["resumed_from"] == (10 if name == "vpl" else None)
    assert_trees_equal(_params(got), _params(want))


def test_experiment_streaming_equals_memory(config, tmp_path):
  c = edited(config, methods=("btl",))
  want = train_and_evaluate(edited(c, **{"streaming.enabled": False}), str(tmp_path / "mem"))
  got = train_and_evaluate(c, str(tmp_path / "disk"))
  for name in ("btl", "oracle", "bayes_oracle"):
    a, b = dict(want["methods"][name]), dict(got["methods"][name])
    a.pop("train_seconds"), b.pop("train_seconds")
    # The unseen-items score needs the training pairs, which stay on disk when streaming.
    a.pop("unseen_items_accuracy"), a.pop("num_unseen_targets")
    assert "unseen_items_accuracy" not in b
    assert a == b, name
  assert got["data"]["streaming"].startswith(c.streaming.data_dir)
  assert not os.path.exists(tmp_path / "disk" / "reward_maps.png")  # no generator to draw


class _Counting:
  """A data source that counts the rows read through it."""

  def __init__(self, source):
    self.source, self.rows, self.largest = source, 0, 0

  def __len__(self):
    return len(self.source)

  def __getitems__(self, rows):
    self.rows += len(rows)
    self.largest = max(self.largest, len(rows))
    return self.source.__getitems__(rows)


def test_memory_stays_bounded(config):
  """Only the evaluated users and one chunk's rows at a time are read, never the split."""
  disk = streaming.build(config)
  opened = disk.train.opened
  counting = _Counting(opened.source)
  opened = dataclasses.replace(opened, source=counting)
  heldout_users = np.setdiff1d(np.arange(len(opened.index["user_id"])), disk.train.users)
  streaming.load_users(opened, heldout_users)
  assert counting.rows == streaming.user_counts(opened.index)[heldout_users].sum() == 24 * 24
  counting.rows = 0
  data = dataclasses.replace(disk.train, opened=opened)
  method = methods.make_method("vpl", config)
  reader = data.reader(method.sample_batch, jax.random.key(0), num_steps=20, steps_per_call=10)
  reader.load(0)
  # One chunk: 10 steps x 16 sets x (4 context + 4 targets) pairs, fewer once deduplicated.
  assert counting.largest == reader.max_rows_per_chunk <= 10 * 16 * 8
  assert counting.rows < data.pairs_per_user.sum()  # less than the training split


def test_streaming_errors(config):
  with pytest.raises(ValueError, match="streaming.data_dir is empty"):
    streaming.build(edited(config, **{"streaming.data_dir": ""}))
  with pytest.raises(ValueError, match="streaming splits by users"):
    streaming.build(edited(config, **{"eval.split": "temporal"}))
  disk = streaming.build(config)
  em = methods.make_method("maxmin", config)
  with pytest.raises(ValueError, match="maxmin trains with its own loop"):
    em.fit(em, config, disk.train, ckpt_dir="unused")
  pref = methods.make_method("pref", config)
  with pytest.raises(ValueError, match="pref keeps one weight row per training user"):
    train.fit(pref, config, disk.train, ckpt_dir="unused")
  greedy = dataclasses.replace(methods.make_method("btl", config), min_pairs_per_user=100)
  with pytest.raises(ValueError, match="fewer pairs than"):
    train.prepare(greedy, config, disk.train)
  pets = edited(config, **{"data.source": "pets"})
  with pytest.raises(ValueError, match="set eval.unseen_fraction = 0 to stream it"):
    streaming.build(pets)
  reader = disk.train.reader(methods.make_method("btl", config).sample_batch,
                             jax.random.key(0), num_steps=20, steps_per_call=10)
  with pytest.raises(ValueError, match="steps_per_call steps at a time"):
    reader.chunk(0, 5)


@pytest.fixture(scope="module")
def real_config(tmp_path_factory):
  """Ecdat's rows built as a data set: filtered and standardised per run."""
  from experiments.configs import real
  path = str(tmp_path_factory.mktemp("tfds_real"))
  tfds_builders.build(tfds_builders.named_config("ecdat_train"), path)
  return edited(real.get_config("dataset=ecdat_train"), **SHORT, **{
      "streaming.enabled": True, "streaming.data_dir": path})


def test_real_rows_stream_as_in_memory(real_config, tmp_path):
  """Same users kept, same standardisation, same evaluated users and parameters."""
  for split in ("users", "validation"):
    c = edited(real_config, **{"eval.split": split})
    mem, disk = _in_memory(c), streaming.build(c)
    _assert_same_evaluation(mem, disk)
    np.testing.assert_array_equal(disk.train.user_id, mem.train.user_id)
    np.testing.assert_array_equal(disk.train.pairs_per_user, mem.train.pairs_per_user)
    assert disk.shares == mem.shares and disk.task is None
    for k in ("rows", "num_pairs", "num_users", "feature_names", "filters", "split"):
      assert disk.info[k] == mem.info[k], k
    for k in ("mean", "std"):
      np.testing.assert_allclose(disk.info["standardization"][k],
                                 mem.info["standardization"][k], rtol=1e-12, err_msg=k)
  pool = disk.train.index_pool()
  rows = disk.train.read(pool["a"][pool["mask"]], ["a", "b"])
  for k in ("a", "b"):  # the standardised training features, to the bit
    np.testing.assert_array_equal(rows[k], getattr(mem.train, k)[mem.train.mask], err_msg=k)
  for name in ("btl", "vpl"):
    method = methods.make_method(name, c)
    want, _ = train.fit(method, c, mem.train, ckpt_dir=str(tmp_path / f"mem_{name}"))
    got, _ = train.fit(method, c, disk.train, ckpt_dir=str(tmp_path / f"disk_{name}"))
    assert_trees_equal(_params(got), _params(want))
