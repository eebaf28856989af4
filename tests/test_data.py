"""vpl/data: validation errors, from_flat, the splits, and the synthetic generators."""

import numpy as np
import pytest

from vpl import seeding
from vpl.data import synthetic, tasks
from vpl.data.comparisons import (UserComparisons, check_enough_pairs, from_flat,
                                  split_context_target, split_users)


def _arrays(users=2, pairs=3, dim=2, seed=0):
  rng = np.random.default_rng(seed)
  return dict(a=rng.normal(size=(users, pairs, dim)).astype(np.float32),
              b=rng.normal(size=(users, pairs, dim)).astype(np.float32),
              label=rng.integers(0, 2, (users, pairs)).astype(np.float32),
              mask=np.ones((users, pairs), bool), user_id=np.arange(users) + 100,
              group=np.zeros(users, np.int32))


def _make(**changes):
  return UserComparisons(**{**_arrays(), **changes})


# --- UserComparisons validation: each bad input names its field and value. ---

@pytest.mark.parametrize("name", ["a", "b"])
def test_nan_features_raise_naming_field_position_and_user(name):
  x = _arrays()[name]
  x[1, 2, 0] = np.nan
  with pytest.raises(ValueError, match=rf"UserComparisons\.{name}\[1, 2, 0\] = nan \(user "
                                       rf"101\).*finite"):
    _make(**{name: x})


def test_infinite_feature_raises():
  a = _arrays()["a"]
  a[0, 1, 1] = np.inf
  with pytest.raises(ValueError, match=r"UserComparisons\.a\[0, 1, 1\] = inf"):
    _make(a=a)


def test_non_finite_features_in_padding_are_allowed():
  arrays = _arrays()
  arrays["mask"][1, 2] = False
  arrays["a"][1, 2] = np.nan
  data = UserComparisons(**arrays)
  np.testing.assert_array_equal(data.pairs_per_user, [3, 2])


def test_shape_mismatches_raise():
  with pytest.raises(ValueError, match=r"UserComparisons\.a has shape \(2, 3, 2\) but b has "
                                       r"shape \(2, 3, 3\)"):
    _make(b=np.zeros((2, 3, 3), np.float32))
  with pytest.raises(ValueError, match=r"UserComparisons\.label has shape \(2, 4\); expected "
                                       r"\(2, 3\)"):
    _make(label=np.zeros((2, 4), np.float32))
  with pytest.raises(ValueError, match=r"UserComparisons\.mask has shape \(3,\)"):
    _make(mask=np.ones(3, bool))
  with pytest.raises(ValueError, match=r"UserComparisons\.user_id has shape \(3,\); "
                                       r"expected \(2,\)"):
    _make(user_id=np.arange(3))
  with pytest.raises(ValueError, match=r"UserComparisons\.a must be \[users, pairs, "
                                       r"features\]; got shape \(6, 2\)"):
    _make(a=np.zeros((6, 2), np.float32), b=np.zeros((6, 2), np.float32))


@pytest.mark.parametrize("bad", [1.5, -0.25, np.nan])
def test_labels_outside_unit_interval_raise(bad):
  label = _arrays()["label"]
  label[0, 1] = bad
  with pytest.raises(ValueError, match=rf"UserComparisons\.label\[0, 1\] = {bad} \(user "
                                       rf"100\): labels must lie in \[0, 1\]"):
    _make(label=label)


def test_label_of_padding_is_not_checked():
  arrays = _arrays()
  arrays["mask"][0, 1] = False
  arrays["label"][0, 1] = 7.0
  UserComparisons(**arrays)


def test_duplicate_user_ids_raise():
  with pytest.raises(ValueError, match=r"UserComparisons\.user_id has duplicates"):
    _make(user_id=np.array([5, 5]))


# --- from_flat ---

def test_from_flat_round_trip():
  rng = np.random.default_rng(0)
  user = np.array([7, 3, 7, 9, 3, 7, 7])  # 4, 2 and 1 pairs, interleaved
  group = np.array([{3: 1, 7: 0, 9: 1}[u] for u in user])
  a = rng.normal(size=(7, 3)).astype(np.float32)
  b = rng.normal(size=(7, 3)).astype(np.float32)
  label = np.array([1, 0, 0.25, 1, 1, 0, 0.5], np.float32)
  data = from_flat(a, b, label, user, group)
  np.testing.assert_array_equal(data.user_id, [3, 7, 9])
  np.testing.assert_array_equal(data.group, [1, 0, 1])
  np.testing.assert_array_equal(data.pairs_per_user, [2, 4, 1])
  assert data.a.shape == (3, 4, 3)
  # Padding: zero features, label 0.5, mask False.
  assert not data.mask[2, 1:].any() and (data.label[2, 1:] == 0.5).all()
  assert (data.a[2, 1:] == 0).all()
  # Every row comes back, in its original order within each user.
  for row, uid in enumerate(data.user_id):
    keep = data.mask[row]
    np.testing.assert_array_equal(data.a[row, keep], a[user == uid])
    np.testing.assert_array_equal(data.b[row, keep], b[user == uid])
    np.testing.assert_array_equal(data.label[row, keep], label[user == uid])


def test_from_flat_mismatches_raise():
  a = np.zeros((4, 2))
  with pytest.raises(ValueError, match=r"from_flat: a has shape \(4, 2\) and b \(4, 3\)"):
    from_flat(a, np.zeros((4, 3)), np.zeros(4), np.arange(4))
  with pytest.raises(ValueError, match=r"from_flat: label has shape \(3,\); expected \(4,\)"):
    from_flat(a, a, np.zeros(3), np.arange(4))
  with pytest.raises(ValueError, match=r"from_flat: user_id has shape \(5,\)"):
    from_flat(a, a, np.zeros(4), np.arange(5))
  with pytest.raises(ValueError, match=r"from_flat: group differs"):
    from_flat(a, a, np.zeros(4), np.array([0, 0, 1, 1]), group=np.array([0, 1, 2, 2]))
  with pytest.raises(ValueError, match=r"UserComparisons\.label\[0, 1\] = 2\.0"):
    from_flat(a, a, np.array([0, 2, 0, 0]), np.array([0, 0, 1, 1]))


# --- splits ---

@pytest.fixture(scope="module")
def task():
  return synthetic.didactic(shares=(0.6, 0.3, 0.1), num_users=50, pairs_per_user=12,
                            temperature=0.0, seed=3)


def test_split_users_is_disjoint_complete_and_keeps_every_group(task):
  train, heldout = split_users(task.data, 0.2, seed=0)
  train_ids, heldout_ids = set(train.user_id), set(heldout.user_id)
  assert not train_ids & heldout_ids
  assert train_ids | heldout_ids == set(task.data.user_id)
  for g in range(3):
    assert (train.group == g).any() and (heldout.group == g).any()
  assert heldout.num_users == pytest.approx(0.2 * 50, abs=3)
  # The users' rows travel whole: the same pairs under the same id.
  row = int(np.flatnonzero(task.data.user_id == heldout.user_id[0])[0])
  np.testing.assert_array_equal(heldout.a[0], task.data.a[row])
  np.testing.assert_array_equal(heldout.true_pref[0], task.data.true_pref[row])
  # Deterministic in the seed.
  np.testing.assert_array_equal(split_users(task.data, 0.2, seed=0)[1].user_id,
                                heldout.user_id)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_users_rejects_bad_fraction(task, fraction):
  with pytest.raises(ValueError, match=rf"heldout_fraction = {fraction}"):
    split_users(task.data, fraction, seed=0)


def test_split_context_target_never_overlaps():
  arrays = _arrays(users=4, pairs=8, seed=1)
  arrays["mask"][1, 6:] = False  # user 1 has 6 real pairs
  data = UserComparisons(**arrays)
  context_idx, target_mask = split_context_target(data, 5, seed=0)
  assert context_idx.shape == (4, 5)
  for u in range(4):
    ctx = set(context_idx[u])
    assert len(ctx) == 5
    assert all(data.mask[u, i] for i in ctx)  # context pairs are real
    assert not any(target_mask[u, i] for i in ctx)  # and never targets
    # Every other real pair is a target.
    assert set(np.flatnonzero(target_mask[u])) == set(np.flatnonzero(data.mask[u])) - ctx
  assert target_mask[1].sum() == 1


def test_too_few_pairs_for_the_context_raises():
  arrays = _arrays(users=3, pairs=6)
  arrays["mask"][2, 3:] = False  # user 102 has 3 pairs
  data = UserComparisons(**arrays)
  with pytest.raises(ValueError, match=r"1 user\(s\) have fewer pairs than a context of 3 "
                                       r"plus one target needs \(4\); e\.g\. user 102 has 3"):
    split_context_target(data, 3, seed=0)
  split_context_target(data, 2, seed=0)
  with pytest.raises(ValueError, match=r"fewer pairs than train.num_context needs \(6\); "
                                       r"e\.g\. user 102 has 3"):
    check_enough_pairs(data, 6, "train.num_context")
  # No user at all (a filter dropped everyone) is an error too, not an empty pool that fails
  # later inside the sampler.
  with pytest.raises(ValueError, match=r"No user is left to train on, and "
                                       r"train.num_context needs 6 pairs per user"):
    check_enough_pairs(data.select_users(np.zeros(0, int)), 6, "train.num_context")


# --- synthetic tasks ---

@pytest.mark.parametrize("make", [
    lambda: synthetic.didactic(num_users=40, pairs_per_user=16, temperature=0.0, seed=1),
    lambda: synthetic.navigation(num_goals=3, num_users=30, pairs_per_user=16,
                                 temperature=0.0, seed=1),
])
def test_noiseless_labels_agree_with_the_oracle(make):
  data = make().data
  np.testing.assert_array_equal(data.label, (data.true_pref > 0.5).astype(np.float32))


@pytest.mark.parametrize("make", [
    lambda: synthetic.didactic(shares=(0.51, 0.49), num_users=40, pairs_per_user=16, seed=2),
    lambda: synthetic.navigation(num_goals=4, num_users=40, pairs_per_user=16, seed=2),
])
def test_divergent_marks_pairs_where_groups_disagree(make):
  task = make()
  data = task.data
  diffs = np.stack([task.true_reward(data.a, k) - task.true_reward(data.b, k)
                    for k in range(task.num_groups)])
  want = (diffs > 0).any(0) & (diffs < 0).any(0)
  np.testing.assert_array_equal(data.divergent, want)
  assert 0 < want.mean() < 1  # both kinds of pair occur
  # The user's own preference comes from their group's reward: P(a) > 0.5 iff r(a) > r(b).
  own = np.take_along_axis(diffs, data.group[None, :, None], axis=0)[0]
  np.testing.assert_array_equal(data.true_pref > 0.5, own > 0)


def test_group_shares_are_respected():
  task = synthetic.didactic(shares=(0.51, 0.49), num_users=400, pairs_per_user=2, seed=0)
  np.testing.assert_array_equal(np.bincount(task.data.group), [204, 196])
  task = synthetic.navigation(num_goals=10, num_users=1000, pairs_per_user=2, seed=0)
  np.testing.assert_array_equal(np.bincount(task.data.group), [100] * 10)
  # Rounding: 7 users at (0.5, 0.3, 0.2) is 3.5, 2.1, 1.4: the largest remainder gets the spare.
  task = synthetic.didactic(shares=(0.5, 0.3, 0.2), num_users=7, pairs_per_user=2, seed=0)
  np.testing.assert_array_equal(np.bincount(task.data.group), [4, 2, 1])
  assert task.shares == (0.5, 0.3, 0.2) and task.num_groups == 3


def test_pooled_preference_is_the_share_weighted_mean():
  task = synthetic.didactic(shares=(0.7, 0.3), num_users=20, pairs_per_user=8,
                            temperature=0.1, seed=4)
  data = task.data
  diffs = np.stack([task.true_reward(data.a, k) - task.true_reward(data.b, k)
                    for k in range(2)])
  pref = 1 / (1 + np.exp(-diffs / 0.1))
  np.testing.assert_allclose(data.pooled_pref, 0.7 * pref[0] + 0.3 * pref[1], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(data.true_pref, np.where(data.group[:, None] == 0, pref[0],
                                                      pref[1]), rtol=1e-5, atol=1e-6)


def test_noisy_labels_follow_their_probabilities():
  data = synthetic.didactic(num_users=200, pairs_per_user=64, temperature=0.5, seed=5).data
  agree = (data.label == (data.true_pref > 0.5)).mean()
  assert 0.5 < agree < 0.99  # noisy, but informative
  # The labels are Bernoulli(true_pref) draws: their sum is within 4 standard deviations.
  p = data.true_pref.astype(np.float64)
  z = (data.label.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
  assert abs(z) < 4


def test_generators_are_deterministic_in_the_seed():
  make = lambda seed: synthetic.navigation(num_users=10, pairs_per_user=4, seed=seed).data
  first, again, other = make(0), make(0), make(1)
  for name, x in first.arrays().items():
    np.testing.assert_array_equal(x, again.arrays()[name])
  assert not np.array_equal(first.a, other.a)


@pytest.mark.parametrize("shares, message", [
    ((0.6, 0.6), r"shares = \(0\.6, 0\.6\): give one positive share per group, summing to 1"),
    ((1.2, -0.2), r"shares = \(1\.2, -0\.2\)"),
    ((0.999, 0.001), r"num_users = 20 leaves a group of shares \(0\.999, 0\.001\) empty"),
])
def test_bad_shares_raise(shares, message):
  with pytest.raises(ValueError, match=message):
    synthetic.didactic(shares=shares, num_users=20, pairs_per_user=2)


def test_bad_generator_arguments_raise():
  with pytest.raises(ValueError, match=r"shares has 2 entries but num_goals = 3"):
    synthetic.navigation(num_goals=3, shares=(0.5, 0.5), num_users=20, pairs_per_user=2)
  with pytest.raises(ValueError, match=r"temperature = -1"):
    synthetic.didactic(temperature=-1, num_users=20, pairs_per_user=2)
  with pytest.raises(ValueError, match=r"data.source = 'labyrinth' is not a synthetic task; "
                                       r"choose one of \['didactic', 'drift', 'maze', "
                                       r"'navigation', 'pets', 'ufp', 'unimodal'\]"):
    tasks.generate("labyrinth", {}, 0)


def test_generate_passes_arguments_and_draws_from_the_data_stream():
  task = tasks.generate("navigation", dict(num_goals=3, num_users=9, pairs_per_user=5), 0)
  assert task.name == "navigation" and task.num_groups == 3
  assert task.data.a.shape == (9, 5, 2)
  same = tasks.GENERATORS["navigation"](num_goals=3, num_users=9, pairs_per_user=5,
                                        seed=seeding.derive(0, "data"))
  np.testing.assert_array_equal(task.data.a, same.data.a)
