"""vpl/data/embedding_tasks.py: pets, ufp and unimodal generate what their docstrings say."""

import numpy as np
import pytest

from vpl.data import tasks


@pytest.mark.parametrize("num_types", [2, 4])
def test_ufp_keeps_only_pairs_that_divide_the_types(num_types):
  task = tasks.GENERATORS["ufp"](num_types=num_types, num_users=40, pairs_per_user=8,
                             pool_pairs=400, seed=0)
  d = task.data
  assert task.name == f"ufp{num_types}" and task.num_groups == num_types
  assert d.a.shape == (40, 8, 64)
  assert d.divergent.all()
  signs = np.sign(d.group_pref - 0.5)  # [U, K, G]
  assert ((signs.max(-1) > 0) & (signs.min(-1) < 0)).all()
  rep = task.filter_report
  assert rep["kept"] + rep["dropped_all_types_agree"] == 400
  # Independent attributes: every type agrees on a pair with chance 2 / 2^G.
  assert rep["dropped_all_types_agree"] == pytest.approx(400 * 2 / 2**num_types, rel=0.25)


def test_ufp_can_keep_the_pairs_every_type_agrees_on():
  task = tasks.GENERATORS["ufp"](num_types=2, num_users=40, pairs_per_user=8, pool_pairs=400,
                                 drop_agreeing=False, seed=0)
  assert task.filter_report["dropped_all_types_agree"] == 0
  assert task.filter_report["kept"] == 400
  # About half of the pairs divide two independent types; the others are kept now.
  assert 0.3 < task.data.divergent.mean() < 0.7


def test_labels_follow_each_users_linear_reward():
  task = tasks.GENERATORS["ufp"](num_types=4, num_users=30, pairs_per_user=6,
                             pool_pairs=200, seed=1)
  d = task.data
  for u in range(d.num_users):
    g = d.group[u]
    diff = task.true_reward(d.a[u], g) - task.true_reward(d.b[u], g)
    np.testing.assert_array_equal(d.label[u], (diff > 0).astype(np.float32))
    np.testing.assert_array_equal(d.true_pref[u], d.label[u])


def test_users_label_distinct_pairs_of_one_shared_pool():
  d = tasks.GENERATORS["pets"](num_users=50, pairs_per_user=10, pool_pairs=60,
                          seed=0).data
  rows = {r.tobytes() for r in d.a.reshape(-1, d.a.shape[-1])}
  assert len(rows) <= 60  # the pool is shared across users
  for u in range(d.num_users):
    assert len({r.tobytes() for r in d.a[u]}) == 10  # no pair twice for one user


def test_pets_types_disagree_on_the_predicted_fraction():
  task = tasks.GENERATORS["pets"](controversy=0.5, num_users=200, pairs_per_user=20,
                             pool_pairs=4000, seed=0)
  assert task.data.divergent.mean() == pytest.approx(2 / np.pi * np.arctan(0.5), abs=0.03)
  assert task.filter_report["dropped_all_types_agree"] == 0


def test_unimodal_has_one_group_and_btl_ceiling_equals_oracle():
  d = tasks.GENERATORS["unimodal"](num_users=20, pairs_per_user=5, seed=0).data
  assert (d.group == 0).all() and not d.divergent.any()
  np.testing.assert_array_equal(d.pooled_pref, d.true_pref)


def test_llm_width_embeddings_and_seeded():
  one = tasks.GENERATORS["ufp"](num_types=2, dim=768, num_users=10, pairs_per_user=4,
                            pool_pairs=100, seed=3)
  two = tasks.GENERATORS["ufp"](num_types=2, dim=768, num_users=10, pairs_per_user=4,
                            pool_pairs=100, seed=3)
  assert one.data.a.shape == (10, 4, 768)
  np.testing.assert_array_equal(one.data.a, two.data.a)
  np.testing.assert_array_equal(one.data.label, two.data.label)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_types=4, dim=3), "dim = 3"),
    (dict(num_types=2, shares=(0.2, 0.3, 0.5)), "num_types = 2"),
    (dict(num_types=4, pool_pairs=10, pairs_per_user=20), "raise pool_pairs"),
    (dict(num_types=2, temperature=-1.0), "temperature"),
])
def test_bad_arguments_name_the_field(kwargs, match):
  with pytest.raises(ValueError, match=match):
    tasks.GENERATORS["ufp"](num_users=10, **{"pairs_per_user": 4, **kwargs})
