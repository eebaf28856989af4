"""Vectorised decoding of serialised Examples: equal to TFDS's one-by-one decoding."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from vpl.data import records

FEATURES = tfds.features.FeaturesDict({
    "user_id": tfds.features.Scalar(np.int64), "flag": tfds.features.Scalar(np.bool_),
    "group": tfds.features.Scalar(np.int32),
    "a": tfds.features.Tensor(shape=(3,), dtype=np.float32),
    "pref": tfds.features.Tensor(shape=(2,), dtype=np.float32)})
SPECS = {k: (np.dtype(FEATURES[k].np_dtype), tuple(FEATURES[k].shape)) for k in FEATURES.keys()}


def _examples(n: int, seed: int = 0) -> list[dict]:
  rng = np.random.default_rng(seed)
  # user_id spans varints of 1 to 10 bytes (negative ids take 10), so offsets differ by row.
  ids = [0, 1, 127, 128, 300, 2**40, -1, -5] + list(rng.integers(-2**62, 2**62, n - 8))
  return [dict(user_id=ids[i], flag=bool(i % 2), group=int(rng.integers(0, 200)),
               a=rng.normal(size=3).astype(np.float32),
               pref=rng.random(2).astype(np.float32)) for i in range(n)]


def test_decode_equals_tfds_one_by_one():
  raw = [FEATURES.serialize_example(e) for e in _examples(40)]
  assert len({len(r) for r in raw}) > 1  # the layouts differ in their varints' widths
  got = records.decode(raw, SPECS, list(SPECS))
  for k in SPECS:
    want = np.asarray([FEATURES.deserialize_example_np(r)[k] for r in raw], SPECS[k][0])
    assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
    np.testing.assert_array_equal(got[k], want, err_msg=k)
  some = records.decode(raw[3:5], SPECS, ["a"])
  assert list(some) == ["a"]
  np.testing.assert_array_equal(some["a"], got["a"][3:5])
  assert records.decode([], SPECS, ["a"])["a"].shape == (0, 3)


def test_other_layouts_are_left_to_tfds():
  raw = [FEATURES.serialize_example(e) for e in _examples(10)]
  fewer = tfds.features.FeaturesDict({"user_id": tfds.features.Scalar(np.int64),
                                      "a": tfds.features.Tensor(shape=(3,), dtype=np.float32)})
  odd = fewer.serialize_example(dict(user_id=3, a=np.zeros(3, np.float32)))
  assert records.decode(raw + [odd], SPECS, ["a"]) is None  # one feature count differs
  assert records.decode([raw[0][:-3]], SPECS, ["a"]) is None  # truncated
  wide = {**SPECS, "a": (np.dtype(np.float32), (4,))}
  assert records.decode(raw, wide, ["a"]) is None  # another shape than the file's


def test_record_files_read_rows_across_files_in_any_order(tmp_path):
  from array_record.python import array_record_module
  paths, counts, want = [], [3, 0, 4], []
  for f, count in enumerate(counts):
    paths.append(str(tmp_path / f"part-{f}"))
    writer = array_record_module.ArrayRecordWriter(paths[-1], "group_size:1")
    for i in range(count):
      want.append(f"file {f} row {i}".encode())
      writer.write(want[-1])
    writer.close()
  files = records.RecordFiles(paths, counts)
  assert len(files) == 7 and files[4] == want[4]
  rows = [6, 0, 3, 3, 2, 5]
  assert files.__getitems__(rows) == [want[r] for r in rows]
  assert files.__getitems__(sorted(rows)) == [want[r] for r in sorted(rows)]
  assert files.__getitems__([]) == []
  with pytest.raises(IndexError, match="asked of 7 records"):
    files.__getitems__([7])
