"""A comparisons file's columns turned into validated `Rows` (for vpl/data/byo.py).

Every problem raises a ValueError that names the file, the row, the field, the value and the
fix; names (users, groups) become integer codes with their names kept.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import numpy as np

from vpl.data.rows import OPTIONAL, REQUIRED, Rows, validate_rows

FIELDS = ("user_id, a_<feature>..., b_<feature>..., label[, group][, timestamp][, condition]"
          "[, pair_id]")


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
    import pyarrow as pa
    if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
      for k, v in enumerate(flat.to_pylist()):
        if not isinstance(v, (int, float)):
          raise _cell_error(path, where, k // widths[0], f"{field}[{k % widths[0]}]", v,
                            f"a {flat.type} value, not a number",
                            "Store the features as numbers (a list<float> column).")
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
    ids = [int(t.split(".")[0]) for t in text]  # exact: no float rounding of long ids
    big = [i for i, v in enumerate(ids) if not -2**63 <= v < 2**63]
    if big:
      raise _cell_error(path, where, big[0], field, text[big[0]],
                        "an integer too large for a 64-bit id",
                        "Use ids below 2**63, or write them as names (e.g. prefix a letter: "
                        "names are mapped to integer codes).")
    return np.array(ids, np.int64), None
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


def to_rows(columns: dict, path: str, where: Callable[[int], str], kind: str) -> Rows:
  wide = {c for c in columns if re.match(r"[ab]_.", c)}
  unknown = sorted(set(columns) - set(REQUIRED) - set(OPTIONAL) - wide)
  if unknown:
    raise ValueError(f"{path}: unknown field(s) {unknown}; a row holds {FIELDS} (see "
                     f"vpl/data/byo.py). Rename or remove them.")
  for name in ("user_id", "label"):
    if name not in columns:
      raise ValueError(f"{path}: no {name!r} field; every comparison needs {FIELDS}.")
  a, names_a = _features(columns, path, where, "a")
  b, names_b = _features(columns, path, where, "b")
  if a.shape[1] == 0 or b.shape[1] == 0:
    raise ValueError(f"{path}: option {'a' if a.shape[1] == 0 else 'b'} has no features "
                     f"(empty lists in every row); give each option at least one feature.")
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
  group_names, info_names = None, {}
  if "group" in columns:
    arrays["group"], group_names = _codes(columns["group"], path, where, "group",
                                          "Fill in the user's group, or drop the column.")
    arrays["group"] = arrays["group"].astype(np.int32)
  for name in ("condition", "pair_id"):
    if name in columns:
      arrays[name], names = _codes(columns[name], path, where, name,
                                   f"Fill in the {name}, or drop the column.")
      if names is not None:
        info_names[name] = list(names)
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
  info.update({f"{name}_names": names for name, names in info_names.items()})
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
