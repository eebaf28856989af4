"""Reading and decoding serialised `tf.train.Example` records a chunk at a time, with no
Python loop over records.

`RecordFiles` reads many records of a split's array_record files in one call per file (in
C++); finding each row's file is one `searchsorted`, where TFDS's data source looks up
every key in Python (about half the read time for a 50,000-row chunk here).

TFDS decodes array_record examples one at a time in Python (about 100 us a row on the 2-core
CPU; docs/data.md, 'Streaming'). Here a chunk's records are concatenated into one byte
buffer and parsed in lockstep: every record of a data set holds the same features in the
same order, and only the varint lengths (and hence the offsets) differ between records, so
each protobuf field is read for all records at once with numpy, one position per record.
Float features are then a gather of their payload bytes viewed as float32; integer
features are decoded as packed varints, also for all records at once.

`decode` returns None when the records do not share that layout (another writer, a missing
optional field, a reordered map); the caller then decodes them one by one with TFDS.

Wire format (tensorflow/core/example/{example,feature}.proto): Example {1: Features};
Features {1: map<string, Feature>}, each map entry {1: key, 2: Feature}; Feature {1:
BytesList | 2: FloatList | 3: Int64List}, each list {1: packed values}.
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence

import numpy as np
from array_record.python import array_record_module

_LEN = 0x0A  # field 1, length-delimited
_VALUE = 0x12  # field 2, length-delimited (the map entry's value)
_FLOAT_LIST, _INT64_LIST = 0x12, 0x1A  # Feature's fields 2 and 3
_MAX_VARINT = 10


class _Mismatch(Exception):
  """The records do not share one layout (decoded one by one instead)."""


def _varint(buf_N: np.ndarray, pos_R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The varint at each of `pos_R` in `buf_N`: `(value [R] uint64, position after it)`."""
  value = np.zeros(len(pos_R), np.uint64)
  width = np.zeros(len(pos_R), np.int64)
  done = np.zeros(len(pos_R), bool)
  for k in range(_MAX_VARINT):
    byte = buf_N[pos_R + k].astype(np.uint64)
    live = ~done
    value |= np.where(live, (byte & np.uint64(0x7F)) << np.uint64(7 * k), np.uint64(0))
    width += live
    done |= byte < 0x80
    if done.all():
      return value, pos_R + width
  raise _Mismatch("varint longer than 10 bytes")


def _expect(buf_N: np.ndarray, pos_R: np.ndarray, tag: int) -> np.ndarray:
  if not (buf_N[pos_R] == tag).all():
    raise _Mismatch(f"tag {tag:#x}")
  return pos_R + 1


def _same(x_R: np.ndarray) -> int:
  if not (x_R == x_R[0]).all():
    raise _Mismatch("lengths differ")
  return int(x_R[0])


def _fields(buf_N: np.ndarray, start_R: np.ndarray, end_R: np.ndarray
            ) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
  """Each feature's `(list tag, payload start [R], payload end [R])`, read in lockstep."""
  pos = _expect(buf_N, start_R, _LEN)
  size, pos = _varint(buf_N, pos)
  if not (pos + size.astype(np.int64) == end_R).all():
    raise _Mismatch("trailing bytes")
  out = {}
  while (pos < end_R).any():
    if not (pos < end_R).all():
      raise _Mismatch("records hold different numbers of features")
    pos = _expect(buf_N, pos, _LEN)  # map entry
    size, pos = _varint(buf_N, pos)
    entry_end = pos + size.astype(np.int64)
    pos = _expect(buf_N, pos, _LEN)  # key
    key_len, pos = _varint(buf_N, pos)
    width = _same(key_len)
    key_RK = buf_N[pos[:, None] + np.arange(width)]
    if not (key_RK == key_RK[:1]).all():
      raise _Mismatch("keys differ")
    key = key_RK[0].tobytes().decode()
    pos = _expect(buf_N, pos + width, _VALUE)
    _, pos = _varint(buf_N, pos)  # Feature's length
    kind = _same(buf_N[pos])
    _, pos = _varint(buf_N, pos + 1)  # list's length
    pos = _expect(buf_N, pos, _LEN)  # packed values
    size, pos = _varint(buf_N, pos)
    out[key] = (kind, pos, pos + size.astype(np.int64))
    if not (out[key][2] == entry_end).all():
      raise _Mismatch(f"feature {key} is not one packed list")
    pos = entry_end
  return out


def _floats(buf_N: np.ndarray, start_R: np.ndarray, end_R: np.ndarray, size: int
            ) -> np.ndarray:
  if not (end_R - start_R == 4 * size).all():
    raise _Mismatch("float list of another size")
  # Rows of a sliding window over the buffer: one copy of 4 * size bytes per record (about
  # 10x faster than indexing every byte).
  bytes_RB = np.lib.stride_tricks.sliding_window_view(buf_N, 4 * size)[start_R]
  return bytes_RB.view("<f4").reshape(len(start_R), size)


def _ints(buf_N: np.ndarray, start_R: np.ndarray, end_R: np.ndarray, size: int
          ) -> np.ndarray:
  out = np.empty((len(start_R), size), np.int64)
  pos = start_R
  for j in range(size):
    value, pos = _varint(buf_N, pos)
    out[:, j] = value.view(np.int64)  # Int64List holds two's complement int64
  if not (pos == end_R).all():
    raise _Mismatch("int list of another size")
  return out


def decode(records: Sequence[bytes], specs: dict[str, tuple[np.dtype, tuple[int, ...]]],
           fields: Sequence[str]) -> Optional[dict[str, np.ndarray]]:
  """The `fields` of serialised Examples, each stacked `[len(records), *shape]`.

  Args:
    records: serialised `tf.train.Example`s, as array_record returns them.
    specs: each field's numpy dtype and shape (the TFDS features).
    fields: which to decode.

  Returns:
    `{field: array}`, or None when the records do not share one layout.
  """
  num = len(records)
  if num == 0:
    return {k: np.zeros((0,) + tuple(specs[k][1]), specs[k][0]) for k in fields}
  length_R = np.fromiter(map(len, records), np.int64, num)
  # Padding: a varint read near the end of the last record never indexes past the buffer.
  buf_N = np.frombuffer(b"".join(records) + bytes(_MAX_VARINT), np.uint8)
  end_R = np.cumsum(length_R)
  start_R = end_R - length_R
  try:
    found = _fields(buf_N, start_R, end_R)
    out = {}
    for name in fields:
      dtype, shape = np.dtype(specs[name][0]), tuple(specs[name][1])
      kind, start, end = found[name]
      size = int(np.prod(shape, dtype=np.int64))
      if kind == _FLOAT_LIST and dtype.kind == "f":
        x = _floats(buf_N, start, end, size)
      elif kind == _INT64_LIST and dtype.kind in "biu":
        x = _ints(buf_N, start, end, size)
        x = x != 0 if dtype.kind == "b" else x
      else:
        raise _Mismatch(f"feature {name} of list tag {kind:#x} and dtype {dtype}")
      out[name] = x.astype(dtype, copy=False).reshape((num,) + shape)
    return out
  except (_Mismatch, KeyError, IndexError):
    return None


class RecordFiles:
  """Random access to the records of whole array_record files, in file order.

  `__getitems__(rows)` returns the serialised records of `rows` (global row numbers), in
  that order; `len()` is the number of records. Readers open lazily; one reader per file is
  shared by the reading threads (array_record reads are thread-safe).
  """

  def __init__(self, paths: Sequence[str], counts: Sequence[int]):
    self._paths = list(paths)
    self._ends = np.cumsum(np.asarray(counts, np.int64))
    self._readers: list = [None] * len(self._paths)
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return int(self._ends[-1]) if len(self._ends) else 0

  def _reader(self, i: int):
    with self._lock:
      if self._readers[i] is None:
        # The options TFDS's data source reads with: no read-ahead for random access.
        self._readers[i] = array_record_module.ArrayRecordReader(
            self._paths[i], options="readahead_buffer_size:0", file_reader_buffer_size=32768)
      return self._readers[i]

  def __getitem__(self, row: int) -> bytes:
    return self.__getitems__([row])[0]

  def __getitems__(self, rows: Sequence[int]) -> list[bytes]:
    rows = np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
      raise IndexError(f"rows {rows.min()}..{rows.max()} asked of {len(self)} records.")
    file = np.searchsorted(self._ends, rows, side="right")
    order = np.argsort(file, kind="stable")  # the identity when rows are sorted
    out: list[bytes] = []
    for f in np.unique(file):
      first = self._ends[f - 1] if f else 0
      out += self._reader(int(f)).read((rows[file == f] - first).tolist())
    if (order == np.arange(len(rows))).all():
      return out
    back = [b""] * len(rows)
    for i, record in zip(order.tolist(), out):
      back[i] = record
    return back
