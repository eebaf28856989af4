"""vpl/data/pairs.py: pair identities, withheld shared pairs, and unseen-item targets."""

import numpy as np
import pytest

from conftest import edited
from vpl import experiment, seeding
from vpl.data import pairs, sources
from vpl.data.comparisons import UserComparisons


def _users(pairs_UxKx2x1, mask=None):
  """Users whose pair k compares items a = x[..., 0, :] and b = x[..., 1, :]."""
  x = np.asarray(pairs_UxKx2x1, np.float32)
  users, k = x.shape[:2]
  mask = np.ones((users, k), bool) if mask is None else np.asarray(mask)
  return UserComparisons(a=x[:, :, 0], b=x[:, :, 1], label=np.ones((users, k), np.float32),
                         mask=mask, user_id=np.arange(users), group=np.zeros(users, int))


def test_pair_ids_identify_pairs_in_either_order_across_datasets():
  one = _users([[[[1], [2]], [[3], [4]]]])
  two = _users([[[[2], [1]], [[5], [6]]], [[[3], [4]], [[0], [0]]]], mask=[[1, 1], [1, 0]])
  (i1, i2), (f1, f2) = pairs.pair_ids(one, two)
  assert i1[0, 0] == i2[0, 0] and f1[0, 0] != f2[0, 0]  # (1, 2) and (2, 1)
  assert i1[0, 1] == i2[1, 0] and i2[0, 1] not in (i1[0, 0], i1[0, 1])
  assert i2[1, 1] == -1  # padding


def test_unseen_targets_are_those_no_training_user_labelled():
  train = _users([[[[1], [2]], [[3], [4]]]])
  evaluated = _users([[[[2], [1]], [[7], [8]], [[3], [4]]]])
  targets = np.array([[1, 1, 0]], bool)
  np.testing.assert_array_equal(pairs.unseen_targets(train, evaluated, targets),
                                [[False, True, False]])


def test_withhold_shared_removes_only_shared_pairs_from_training_users():
  # Pair (1, 2) is labelled by three users, (3, 4) by two, the rest by one each.
  train = _users([[[[1], [2]], [[3], [4]], [[9], [9.5]]], [[[2], [1]], [[5], [6]], [[7], [8]]]])
  heldout = _users([[[[3], [4]], [[1], [2]], [[0], [0.5]]]])
  kept, report = pairs.withhold_shared(train, heldout, 0.5, np.random.default_rng(0))
  assert report["shared_pairs"] == 2 and report["withheld_pairs"] == 1
  (ids_train, ids_heldout), _ = pairs.pair_ids(train, heldout)
  (ids_kept, _), _ = pairs.pair_ids(kept, heldout)
  gone = set(ids_train[train.mask].tolist()) - set(ids_kept[kept.mask].tolist())
  assert len(gone) == 1 and gone <= set(ids_heldout[0, :2].tolist())
  assert report["training_labels_removed"] == train.mask.sum() - kept.mask.sum()
  assert kept.mask[:, 0].all()  # real pairs first after compaction
  with pytest.raises(ValueError, match="eval.unseen_fraction = 1"):
    pairs.withhold_shared(train, heldout, 1.0, np.random.default_rng(0))


def test_shared_pool_task_scores_unseen_items(tiny_config):
  c = edited(tiny_config, **{"data.source": "ufp", "data.kwargs": dict(
      num_types=2, num_users=60, pairs_per_user=12, pool_pairs=80, dim=8)})
  exp = sources.build(c)
  assert exp.info["withheld"]["withheld_pairs"] > 0
  (train_ids, eval_ids), _ = pairs.pair_ids(exp.train, exp.evaluated)
  seen = set(train_ids[exp.train.mask].tolist())
  unseen = exp.unseen_mask
  assert unseen.any() and (unseen <= exp.target_mask).all()
  assert not set(eval_ids[unseen].tolist()) & seen
  assert set(eval_ids[exp.target_mask & ~unseen].tolist()) <= seen
  # Without withholding almost every held-out target was labelled in training.
  none = sources.build(edited(c, **{"eval.unseen_fraction": 0.0}))
  assert none.unseen_mask.sum() < unseen.sum() and "withheld" not in none.info
  # The same config always withholds the same pairs (the seed's 'unseen' stream).
  again = sources.build(c)
  np.testing.assert_array_equal(again.train.mask, exp.train.mask)
  assert seeding.derive(c.seed, "unseen") != seeding.derive(c.seed + 1, "unseen")


def test_training_users_left_too_small_are_dropped_and_counted(tiny_config):
  # 8 pairs each, and training needs 4 + 4: any withheld pair drops its user.
  c = edited(tiny_config, **{"data.source": "ufp", "data.kwargs": dict(
      num_types=2, num_users=60, pairs_per_user=8, pool_pairs=40, dim=8)})
  exp = sources.build(c)
  dropped = exp.info["withheld"]["training_users_dropped"]
  assert dropped > 0 and (exp.train.pairs_per_user >= 8).all()
  assert exp.train.num_users + dropped + exp.evaluated.num_users == 60


def test_results_report_unseen_items(tiny_config, tmp_path):
  c = edited(tiny_config, methods=("btl",), **{
      "data.source": "ufp", "data.kwargs": dict(num_types=2, num_users=60, pairs_per_user=12,
                                                pool_pairs=80, dim=8),
      "train.num_steps": 20, "train.steps_per_call": 10, "train.checkpoint_every": 10,
      "eval.reward_maps": False})
  results = experiment.train_and_evaluate(c, str(tmp_path))
  btl = results["methods"]["btl"]
  assert 0 <= btl["unseen_items_accuracy"] <= 1 and btl["num_unseen_targets"] > 0
  assert results["methods"]["oracle"]["unseen_items_accuracy"] == 1.0
  assert results["data"]["withheld"]["withheld_pairs"] > 0
