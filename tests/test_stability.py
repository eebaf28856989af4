"""vpl/stability.py and vpl/data/reasking.py: statistics by hand, exact shares, files."""

import numpy as np
import pytest

from vpl import stability
from vpl.data import byo, reasking, tasks
from vpl.data.rows import Rows


def _toy_rows():
  # user 0 (genuine): q0 asked a-first then b-first, prefers a both times; q1 asked a-first
  #   twice, prefers b both times.
  # user 1 (coin): q0 a-first: a, b-first: b (picks first twice = position), a-first: b.
  # user 2: no re-asked question.
  user = [0, 0, 0, 0, 1, 1, 1, 2]
  pair = [0, 0, 1, 1, 5, 5, 5, 9]
  cond = [0, 1, 0, 0, 0, 1, 0, 1]
  label = [1, 1, 0, 0, 1, 0, 0, 1]
  n = len(user)
  arrays = dict(user_id=np.array(user), a=np.zeros((n, 1), np.float32),
                b=np.ones((n, 1), np.float32), label=np.array(label, np.float32),
                condition=np.array(cond), pair_id=np.array(pair))
  return Rows("toy", arrays, ("x",))


def test_statistics_by_hand():
  s = stability.user_statistics(_toy_rows())
  np.testing.assert_array_equal(s["user_id"], [0, 1, 2])
  np.testing.assert_array_equal(s["reasked"], [2, 1, 0])
  # user 0: 2 answer pairs, both agree (one across conditions, one within).
  assert s["consistency"][0] == 1.0 and s["cross_agreement"][0] == 1.0
  assert s["within_agreement"][0] == 1.0
  # first shown chosen: q0 a-first->a yes, b-first->a no, q1 a-first->b no (x2): 1 of 4.
  assert s["first_rate"][0] == 0.25
  # user 1: answers a, b, b -> pairs (a,b) no, (a,b) no, (b,b) yes: 1/3; the two cross
  # pairs (1st-2nd, 2nd-3rd) disagree and agree: 1/2; within (1st-3rd) disagrees: 0.
  assert s["consistency"][1] == pytest.approx(1 / 3)
  assert s["cross_agreement"][1] == 0.5 and s["within_agreement"][1] == 0.0
  assert s["first_rate"][1] == pytest.approx(2 / 3)
  assert np.isnan(s["consistency"][2]) and s["first_rate"][2] == 0.0
  # q5 of user 1 was asked in both orders but not always answered by position.
  assert not s["questions"]["follows_position"].any()


def test_classify_thresholds():
  stats = dict(user_id=np.arange(4), consistency=np.array([0.9, 0.5, 0.3, np.nan]),
               first_rate=np.array([0.5, 0.5, 0.95, 0.5]))
  np.testing.assert_array_equal(stability.classify(stats), [0, 1, 2, 0])


def test_missing_fields_are_named():
  rows = _toy_rows()
  arrays = {k: v for k, v in rows.arrays.items() if k != "pair_id"}
  with pytest.raises(ValueError, match="no 'pair_id' field"):
    stability.user_statistics(Rows("toy", arrays, ("x",)))


@pytest.fixture(scope="module")
def reasked():
  preset = tasks.preset("didactic_tiny")
  task = tasks.generate(preset.generator, preset.kwargs, 0)
  return task, *reasking.reask(task, np.random.default_rng(0), non_attitude_users=0.3,
                               constructed_users=0.1, constructed_questions=0.25,
                               reask_share=0.5, asks=3)


def test_generator_shares_are_exact(reasked):
  task, rows, truth = reasked
  u = task.data.num_users
  assert (truth["user_kind"] == 1).sum() == round(0.3 * u)
  assert (truth["user_kind"] == 2).sum() == round(0.1 * u)
  x = rows.arrays
  for i, uid in enumerate(truth["user_id"]):
    k = int(task.data.mask[i].sum())
    mine = x["user_id"] == uid
    pairs, counts = np.unique(x["pair_id"][mine], return_counts=True)
    assert len(pairs) == k
    assert (counts == 3).sum() == round(0.5 * k) and (counts == 1).sum() == k - round(0.5 * k)
    if truth["user_kind"][i] == 0:
      kinds = np.array([truth["question_kind"][int(uid), int(p)] for p in pairs])
      assert (kinds == 2).sum() == round(0.25 * k) and (kinds == 1).sum() == 0
    for p in pairs[counts == 3]:  # conditions alternate
      c = x["condition"][mine & (x["pair_id"] == p)]
      assert c[0] != c[1] and c[0] == c[2]


def test_detector_finds_the_truth_on_noiseless_data(reasked):
  _, rows, truth = reasked
  stats = stability.user_statistics(rows)
  kind = stability.classify(stats)
  report = stability.detector_report(kind, truth["user_kind"][np.argsort(truth["user_id"])])
  for name in ("non_attitude", "constructed"):
    assert report[name]["precision"] >= 0.9 and report[name]["recall"] >= 0.9, report


def test_condition_and_pair_id_survive_a_file(tmp_path, reasked):
  _, rows, _ = reasked
  for fmt in ("csv", "jsonl", "parquet", "npz"):
    path = str(tmp_path / f"reasked.{fmt}")
    byo.write(path, rows.arrays)
    back = byo.load(path)
    for field in ("condition", "pair_id", "label", "user_id"):
      np.testing.assert_array_equal(back.arrays[field], rows.arrays[field], err_msg=fmt)


def test_named_conditions_become_codes(tmp_path):
  path = tmp_path / "named.csv"
  path.write_text("user_id,a_0,b_0,label,condition,pair_id\n"
                  "1,0,1,1,a_first,q7\n1,0,1,0,b_first,q7\n")
  rows = byo.load(str(path))
  np.testing.assert_array_equal(rows.arrays["condition"], [0, 1])
  assert rows.info["condition_names"] == ["a_first", "b_first"]
  assert rows.info["pair_id_names"] == ["q7"]
