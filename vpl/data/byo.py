"""Bring your own comparisons: CSV, JSONL, Parquet or NPZ files, one row per comparison.

Fields of a row (the same in every format):
  user_id    who answered (integers, or names that are mapped to integer codes);
  a, b       the features (or embedding) of the two options, same width in every row;
  label      1 if `a` was preferred, 0 if `b`, or P(a preferred) in [0, 1];
  group      optional: the user's group (integer >= 0, or a name), the same for all its rows;
  timestamp  optional: a number ordering a user's answers in time (enables the temporal split).

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
import re
from typing import Callable, Optional

import numpy as np

from vpl.data.rows import OPTIONAL, REQUIRED, Rows, validate_rows

FORMATS = ("csv", "jsonl", "parquet", "npz")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
               ".pq": "parquet", ".npz": "npz"}
_FIELDS = "user_id, a_<feature>..., b_<feature>..., label[, group][, timestamp]"


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
  kind = file_format(path, format)
  columns, where = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet,
                    "npz": _read_npz}[kind](path)
  return _to_rows(columns, path, where, kind)


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
    raise ValueError(f"{path}: the file is empty ({found}); write a header line `{_FIELDS}` "
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
  import pyarrow.parquet as pq  # Only for Parquet files.
  table = pq.read_table(path)
  dup = _duplicates(table.column_names)
  if dup:
    raise ValueError(f"{path}: the column(s) {dup} appear more than once; each field is one "
                     f"column. Rename or remove the copies.")
  if table.num_rows == 0:
    raise ValueError(f"{path}: the file is empty (0 rows); write one row per comparison.")
  return {name: table.column(name) for name in table.column_names}, lambda i: f"row {i}"


def _read_npz(path: str):
  with np.load(path, allow_pickle=False) as npz:
    columns = {name: npz[name] for name in npz.files}
  if not columns or all(v.size == 0 for v in columns.values()):
    raise ValueError(f"{path}: the file is empty; save arrays user_id [N], a [N, D], b [N, D], "
                     f"label [N] (np.savez).")
  return columns, lambda i: f"row {i}"


# --- conversion of columns to validated rows.

def _cell_error(path, where, i, field, value, what, fix):
  return ValueError(f"{path}: {where(i)}, field {field} = {value!r}: {what}. {fix}")


def _numbers(values, path: str, where, field: str, fix: str) -> np.ndarray:
  """A float64 vector from per-row values, or an error at the first value that is not one."""
  try:
    out = np.asarray(values, dtype=np.float64)
    if out.ndim == 1:
      return out
  except (ValueError, TypeError):
    pass
  for i, v in enumerate(values):
    try:
      float(v)
      if isinstance(v, (list, tuple, dict)) or v is None:
        raise TypeError
    except (ValueError, TypeError):
      what = "a missing value" if v in ("", None) else "not a number"
      raise _cell_error(path, where, i, field, v, what, fix) from None
  raise ValueError(f"{path}: field {field} does not hold one number per row; {fix}")


def _matrix(values, path: str, where, field: str) -> np.ndarray:
  """`[N, D]` float64 from a per-row list column (lists, an array, or a pyarrow column)."""
  if hasattr(values, "combine_chunks"):  # pyarrow list column
    import pyarrow.compute as pc
    col = values.combine_chunks()
    if col.null_count:
      i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
      raise _cell_error(path, where, i, field, None, "a missing value",
                        "Give every row its features.")
    widths = pc.list_value_length(col).to_numpy()
    if (widths != widths[0]).any():
      i = int(np.flatnonzero(widths != widths[0])[0])
      raise ValueError(f"{path}: {where(i)}, field {field} has {widths[i]} features but "
                       f"{where(0)} has {widths[0]}; every row needs the same width (pad or "
                       f"re-embed).")
    flat = col.flatten()
    if flat.null_count:
      k = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
      raise _cell_error(path, where, k // widths[0], f"{field}[{k % widths[0]}]", None,
                        "a missing value", "Impute it or remove the row.")
    return flat.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(col), widths[0])
  if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
    if values.ndim != 2:
      raise ValueError(f"{path}: array {field} has shape {values.shape}; expected [rows, "
                       f"features].")
    return values.astype(np.float64)
  width = None
  for i, v in enumerate(values):
    if not isinstance(v, (list, tuple)):
      raise _cell_error(path, where, i, field, v, "not a list of numbers",
                        "Write the option's features as a list, e.g. [0.1, 2.0].")
    if width is None:
      width = len(v)
    elif len(v) != width:
      raise ValueError(f"{path}: {where(i)}, field {field} has {len(v)} features but "
                       f"{where(0)} has {width}; every row needs the same width (pad or "
                       f"re-embed).")
  out = np.empty((len(values), width), np.float64)
  for d in range(width):
    out[:, d] = _numbers([v[d] for v in values], path, where, f"{field}[{d}]",
                         "Impute it or remove the row.")
  return out


def _plain(values) -> np.ndarray:
  """Per-row scalars as a numpy array (pyarrow columns converted, nulls as None)."""
  if hasattr(values, "to_pylist"):
    return np.array(values.to_pylist(), dtype=object)
  return np.asarray(values) if isinstance(values, np.ndarray) else np.array(values, dtype=object)


def _codes(values, path: str, where, field: str, fix: str
           ) -> tuple[np.ndarray, Optional[tuple[str, ...]]]:
  """Integer ids as given, or names mapped to codes 0.. (sorted); errors on missing values."""
  values = _plain(values)
  missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) or
                      (isinstance(v, str) and not v.strip()) for v in values.tolist()])
  if missing.any():
    i = int(np.flatnonzero(missing)[0])
    raise _cell_error(path, where, i, field, values[i], "a missing value", fix)
  text = [str(v).strip() for v in values.tolist()]
  if all(re.fullmatch(r"-?\d+(\.0*)?", t) for t in text):
    return np.array([int(float(t)) for t in text], np.int64), None
  names = tuple(sorted(set(text)))
  index = {n: k for k, n in enumerate(names)}
  return np.array([index[t] for t in text], np.int64), names


def _features(columns: dict, path: str, where, side: str
              ) -> tuple[np.ndarray, tuple[str, ...]]:
  if side in columns:
    x = _matrix(columns[side], path, where, side)
    return x, tuple(str(d) for d in range(x.shape[1]))
  names = [c[2:] for c in columns if c.startswith(f"{side}_")]
  if not names:
    raise ValueError(f"{path}: no features for option {side}: give a `{side}` list field, or "
                     f"columns `{side}_0`, `{side}_1`, ... (see vpl/data/byo.py).")
  x = np.stack([_numbers(_plain(columns[f"{side}_{n}"]), path, where, f"{side}_{n}",
                         "Impute it or remove the row.") for n in names], axis=1)
  return x, tuple(names)


def _to_rows(columns: dict, path: str, where: Callable[[int], str], kind: str) -> Rows:
  wide = {c for c in columns if re.match(r"[ab]_.", c)}
  unknown = sorted(set(columns) - set(REQUIRED) - set(OPTIONAL) - wide)
  if unknown:
    raise ValueError(f"{path}: unknown field(s) {unknown}; a row holds {_FIELDS} (see "
                     f"vpl/data/byo.py). Rename or remove them.")
  for name in ("user_id", "label"):
    if name not in columns:
      raise ValueError(f"{path}: no {name!r} field; every comparison needs {_FIELDS}.")
  a, names_a = _features(columns, path, where, "a")
  b, names_b = _features(columns, path, where, "b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"{path}: option a has {a.shape[1]} features per row but b has "
                     f"{b.shape[1]}; both options need the same features (pad or re-embed).")
  if names_a != names_b and set(names_a) == set(names_b) and "a" not in columns:
    b = np.stack([b[:, names_b.index(n)] for n in names_a], axis=1)  # match a's order
  elif names_a != names_b:
    raise ValueError(f"{path}: option a has features {list(names_a)} but b has "
                     f"{list(names_b)}; both need the same features (a_x with b_x).")
  user_id, user_names = _codes(columns["user_id"], path, where, "user_id",
                               "Every comparison needs the id of the user who made it; fill "
                               "it in or remove the row.")
  arrays = dict(user_id=user_id, a=a.astype(np.float32), b=b.astype(np.float32))
  # Checked in float64, so a value too large for float32 is reported as itself, not inf.
  for name, x in (("a", a), ("b", b)):
    bad = ~np.isfinite(x) | (np.abs(x) > np.finfo(np.float32).max)
    if bad.any():
      i, d = np.argwhere(bad)[0]
      raise _cell_error(path, where, int(i), f"{name}_{names_a[d]}", float(x[i, d]),
                        "features must be finite float32 numbers",
                        f"Impute or remove the {int(bad.any(1).sum())} such row(s).")
  arrays["label"] = _numbers(_plain(columns["label"]), path, where, "label",
                             "Give 1 (a preferred), 0 (b preferred) or P(a preferred)."
                             ).astype(np.float32)
  group_names = None
  if "group" in columns:
    arrays["group"], group_names = _codes(columns["group"], path, where, "group",
                                          "Fill in the user's group, or drop the column.")
    arrays["group"] = arrays["group"].astype(np.int32)
  if "timestamp" in columns:
    arrays["timestamp"] = _numbers(_plain(columns["timestamp"]), path, where, "timestamp",
                                   "Give a number (e.g. seconds since 1970), or drop the "
                                   "column.")
  for field, x in arrays.items():
    if len(x) != len(user_id):
      raise ValueError(f"{path}: {field} has {len(x)} rows but user_id has {len(user_id)}; "
                       f"every field needs one entry per comparison.")
  validate_rows(arrays, path, where)
  _check_group_per_user(arrays, path, where)
  info = dict(origin=path, format=kind)
  if user_names is not None:
    info["user_names"] = list(user_names)
  return Rows(path, arrays, names_a, group_names, {}, info)


def _check_group_per_user(arrays: dict, path: str, where) -> None:
  if "group" not in arrays:
    return
  user, group = arrays["user_id"], arrays["group"]
  ids, inverse = np.unique(user, return_inverse=True)
  first = np.full(len(ids), -1)
  first[inverse[::-1]] = np.arange(len(user))[::-1]  # each user's first row
  bad = np.flatnonzero(group != group[first[inverse]])
  if bad.size:
    i = int(bad[0])
    raise ValueError(f"{path}: {where(i)}, field group = {group[i]} but user {user[i]} has "
                     f"group {group[first[inverse[i]]]} at {where(int(first[inverse[i]]))}; a "
                     f"user belongs to one group. Fix the group or split the user id.")


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
           + ["%d" if k == "group" else "%.17g" for k in extra])
    np.savetxt(path, np.stack([c.astype(np.float64) for c in cols], axis=1), fmt=fmt,
               delimiter=",", header=",".join(header), comments="")
  elif kind == "jsonl":
    with open(path, "w") as f:
      for i in range(len(a)):
        row = dict(user_id=int(arrays["user_id"][i]), a=a[i].tolist(), b=b[i].tolist(),
                   label=float(arrays["label"][i]))
        row.update({k: (int if k == "group" else float)(arrays[k][i]) for k in extra})
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
