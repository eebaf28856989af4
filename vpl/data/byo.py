"""Bring your own comparisons: CSV, JSONL, Parquet or NPZ files, one row per comparison.

Fields of a row (the same in every format):
  user_id    who answered (integers, or names that are mapped to integer codes);
  a, b       the features (or embedding) of the two options, same width in every row;
  label      1 if `a` was preferred, 0 if `b`, or P(a preferred) in [0, 1];
  group      optional: the user's group (integer >= 0, or a name), the same for all its rows;
  timestamp  optional: a number ordering a user's answers in time (enables the temporal split);
  condition  optional: how the question was put (e.g. which option was shown first), a code
             or a name;
  pair_id    optional: the question's id, the same each time it is asked (a code or a name);
             `vpl/stability.py` reads condition and pair_id; training ignores them.

How a and b are laid out:
  CSV      one column per feature: `a_<name>` and `b_<name>` with the same names, e.g.
           `a_0, ..., a_{D-1}, b_0, ..., b_{D-1}` or `a_price, a_time, b_price, b_time`;
  JSONL    one JSON object per line; `a` and `b` are lists of numbers (or `a_<name>` keys);
  Parquet  `a` and `b` list columns (or `a_<name>` columns as in CSV);
  NPZ      arrays `user_id [N]`, `a [N, D]`, `b [N, D]`, `label [N]`, optional `group`,
           `timestamp [N]` (the format for large embedding arrays: no parsing).

Every problem raises a ValueError that names the file, the row (the line for CSV and JSONL),
the field, the value and the fix. Nothing is dropped: a row that cannot be used is an error.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Optional

import numpy as np

from vpl.data.byo_columns import FIELDS, to_rows
from vpl.data.rows import OPTIONAL, Rows

FORMATS = ("csv", "jsonl", "parquet", "npz")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
               ".pq": "parquet", ".npz": "npz"}


def file_format(path: str, format: str = "auto") -> str:
  """The format named, or the one the file's extension says."""
  if format != "auto":
    if format not in FORMATS:
      raise ValueError(f"format = {format!r}; choose one of {FORMATS} or 'auto'.")
    return format
  ext = os.path.splitext(path)[1].lower()
  if ext not in _EXTENSIONS:
    raise ValueError(f"{path}: cannot tell the format from the extension {ext!r}; use one of "
                     f"{sorted(_EXTENSIONS)} or pass format= one of {FORMATS}.")
  return _EXTENSIONS[ext]


def load(path: str, *, format: str = "auto") -> Rows:
  """Reads and validates a comparisons file (see the module doc for the layout)."""
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; give the path of a comparisons file "
                     f"({', '.join(FORMATS)}).")
  if os.path.isdir(path):
    raise ValueError(f"{path} is a directory; give the path of one comparisons file "
                     f"({', '.join(FORMATS)}) inside it.")
  kind = file_format(path, format)
  _check_magic(path, kind)
  try:
    columns, where = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet,
                      "npz": _read_npz}[kind](path)
  except UnicodeDecodeError:
    _raise_not_utf8(path)
  return to_rows(columns, path, where, kind)


_MAGIC = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive (an NPZ?)",
          b"PAR1": "a Parquet file", b"\x93NUMPY": "a NumPy .npy array",
          b"BZh": "bzip2-compressed", b"\xfd7zXZ": "xz-compressed"}


def _check_magic(path: str, kind: str) -> None:
  """Refuses a file whose first bytes are not the format its name (or `format=`) says."""
  with open(path, "rb") as f:
    head = f.read(8)
  what = next((w for m, w in _MAGIC.items() if head.startswith(m)), None)
  expected = {"parquet": "a Parquet file", "npz": "a zip archive (an NPZ?)"}.get(kind)
  if kind in ("parquet", "npz") and what != expected:
    looks = what or ("text" if all(32 <= c < 127 or c in (9, 10, 13) for c in head)
                     else f"bytes {head[:4]!r}")
    raise ValueError(f"{path}: read as {kind} but it is not {expected} (it starts with "
                     f"{looks}); rename it to its real extension or pass format=.")
  if kind in ("csv", "jsonl") and what is not None:
    raise ValueError(f"{path}: read as {kind} text but it is {what}; decompress or convert "
                     f"it first (e.g. `gunzip` a .gz file), or name it by its format.")


def _raise_not_utf8(path: str) -> None:
  """A text file that did not decode: the error names the line and byte (read on failure
  only, so a good file is read once)."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise ValueError(f"{path}: line {line} is not UTF-8 text (byte {raw[e.start]:#04x} at "
                     f"offset {e.start}); save the file as UTF-8 (e.g. `iconv -f latin1 -t "
                     f"utf-8`).") from None
  raise ValueError(f"{path}: the text does not decode as UTF-8; save the file as UTF-8.")


# --- readers: each returns (columns: name -> per-row values, where: row index -> location).

def _duplicates(names) -> list[str]:
  seen, dup = set(), []
  for n in names:
    if n in seen and n not in dup:
      dup.append(n)
    seen.add(n)
  return dup


def _read_csv(path: str):
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    records, lines = [], []
    for record in reader:
      if record:  # a blank line holds no comparison
        records.append(record)
        lines.append(reader.line_num)
  if header is None or not records:
    found = "no header" if header is None else "a header but no rows"
    raise ValueError(f"{path}: the file is empty ({found}); write a header line `{FIELDS}` "
                     f"and one row per comparison.")
  header = [h.strip() for h in header]
  dup = _duplicates(header)
  if dup:
    raise ValueError(f"{path}: line 1 names the column(s) {dup} more than once; each field is "
                     f"one column. Rename or remove the copies.")
  for record, line in zip(records, lines):
    if len(record) != len(header):
      raise ValueError(f"{path}: line {line} has {len(record)} fields but the header has "
                       f"{len(header)} ({', '.join(header)}); every row needs one value per "
                       f"column (check for stray commas, or missing features).")
  cells = np.array(records, dtype=str)
  return {h: cells[:, k] for k, h in enumerate(header)}, lambda i: f"line {lines[i]}"


def _read_jsonl(path: str):
  objects, lines = [], []
  with open(path) as f:
    for number, text in enumerate(f, start=1):
      if not text.strip():
        continue

      def no_duplicates(pairs, number=number):
        dup = _duplicates([k for k, _ in pairs])
        if dup:
          raise ValueError(f"{path}: line {number} gives the field(s) {dup} more than once; "
                           f"keep one.")
        return dict(pairs)

      try:
        obj = json.loads(text, object_pairs_hook=no_duplicates)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {number} is not JSON ({e.msg} at column {e.colno}); "
                         f"each line must be one object like "
                         f'{{"user_id": 3, "a": [0.1, 2.0], "b": [1.5, 0.0], "label": 1}}.')
      if not isinstance(obj, dict):
        raise ValueError(f"{path}: line {number} holds a {type(obj).__name__}, not an object; "
                         f"write one JSON object per comparison.")
      objects.append(obj)
      lines.append(number)
  if not objects:
    raise ValueError(f"{path}: the file is empty; write one JSON object per comparison.")
  names = list(dict.fromkeys(k for obj in objects for k in obj))
  columns = {}
  for name in names:
    values = []
    for obj, line in zip(objects, lines):
      if name not in obj:
        raise ValueError(f"{path}: line {line} has no field {name!r}, which line "
                         f"{lines[0] if name in objects[0] else '(another)'} has; give every "
                         f"row the same fields (null is not allowed either).")
      values.append(obj[name])
    columns[name] = values
  return columns, lambda i: f"line {lines[i]}"


def _read_parquet(path: str):
  import pyarrow as pa
  import pyarrow.parquet as pq  # Only for Parquet files.
  try:
    table = pq.read_table(path)
  except (pa.ArrowException, OSError) as e:
    raise ValueError(f"{path}: not a readable Parquet file ({e}); it may be truncated. "
                     f"Write it again (e.g. pandas DataFrame.to_parquet).") from None
  dup = _duplicates(table.column_names)
  if dup:
    raise ValueError(f"{path}: the column(s) {dup} appear more than once; each field is one "
                     f"column. Rename or remove the copies.")
  if table.num_rows == 0:
    raise ValueError(f"{path}: the file is empty (0 rows); write one row per comparison.")
  return {name: table.column(name) for name in table.column_names}, lambda i: f"row {i}"


def _read_npz(path: str):
  import zipfile
  import zlib
  columns = {}
  try:
    with np.load(path, allow_pickle=False) as npz:
      for name in npz.files:
        try:
          columns[name] = npz[name]
        except ValueError as e:
          if "allow_pickle" not in str(e):
            raise
          raise ValueError(f"{path}: array {name!r} is an object array, which would need "
                           f"pickle to read (refused); save numbers or strings, e.g. "
                           f"np.asarray(x, dtype=np.float32) or dtype=str.") from None
  except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
    raise ValueError(f"{path}: not a readable NPZ file ({type(e).__name__}: {e}); it may be "
                     f"truncated. Write it again with np.savez.") from None
  if not columns or all(v.size == 0 for v in columns.values()):
    raise ValueError(f"{path}: the file is empty; save arrays user_id [N], a [N, D], b [N, D], "
                     f"label [N] (np.savez).")
  return columns, lambda i: f"row {i}"


def write(path: str, arrays: dict[str, np.ndarray], *, format: str = "auto",
          feature_names: Optional[tuple[str, ...]] = None) -> None:
  """Writes flat rows (see `vpl.data.rows`) in the format of `path` that `load` reads back.

  CSV writes floats with 9 significant digits, enough to read float32 features back exactly.
  """
  kind = file_format(path, format)
  a, b = np.asarray(arrays["a"], np.float32), np.asarray(arrays["b"], np.float32)
  names = feature_names or tuple(str(d) for d in range(a.shape[1]))
  extra = [k for k in OPTIONAL if k in arrays]
  if kind == "npz":
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
  elif kind == "csv":
    header = (["user_id"] + [f"a_{n}" for n in names] + [f"b_{n}" for n in names]
              + ["label"] + extra)
    cols = ([np.asarray(arrays["user_id"], np.float64)] + list(a.T) + list(b.T)
            + [np.asarray(arrays["label"], np.float32)]
            + [np.asarray(arrays[k], np.float64) for k in extra])
    fmt = (["%d"] + ["%.9g"] * (2 * a.shape[1] + 1)
           + ["%d" if k in ("group", "condition", "pair_id") else "%.17g" for k in extra])
    np.savetxt(path, np.stack([c.astype(np.float64) for c in cols], axis=1), fmt=fmt,
               delimiter=",", header=",".join(header), comments="")
  elif kind == "jsonl":
    with open(path, "w") as f:
      for i in range(len(a)):
        row = dict(user_id=int(arrays["user_id"][i]), a=a[i].tolist(), b=b[i].tolist(),
                   label=float(arrays["label"][i]))
        row.update({k: (float if k == "timestamp" else int)(arrays[k][i]) for k in extra})
        f.write(json.dumps(row) + "\n")
  else:
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = {"user_id": pa.array(np.asarray(arrays["user_id"], np.int64)),
             "a": pa.array(list(a), type=pa.list_(pa.float32())),
             "b": pa.array(list(b), type=pa.list_(pa.float32())),
             "label": pa.array(np.asarray(arrays["label"], np.float32))}
    table.update({k: pa.array(np.asarray(arrays[k])) for k in extra})
    pq.write_table(pa.table(table), path)
