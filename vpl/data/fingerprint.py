"""A run's data identity: what it was trained on, so a resume on other data is refused.

`of_experiment(input_files, exp)` records each input file (path, size, SHA-256 of its bytes)
and a SHA-256 of the arrays built from them: the training users (for a streamed run, the
names and sizes of the built data set's files, and its user index) and the evaluated users with their context and target
split. `difference(saved, now)` says in words what changed, file first, so the error can say
which file and what to do.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional, Sequence

import numpy as np

_CHUNK = 1 << 20


def file_fingerprint(path: str) -> dict:
  """`{path, size, sha256}` of a file's bytes (a directory: of every file below it)."""
  h = hashlib.sha256()
  size = 0
  paths = [path]
  if os.path.isdir(path):
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files)
  for p in paths:
    if p != path:
      h.update(os.path.relpath(p, path).encode())
    with open(p, "rb") as f:
      while block := f.read(_CHUNK):
        h.update(block)
        size += len(block)
  return dict(path=os.path.abspath(path), size=size, sha256=h.hexdigest())


def arrays_sha256(arrays: dict[str, Any]) -> str:
  """SHA-256 over the names, dtypes, shapes and bytes of `arrays` (None entries skipped)."""
  h = hashlib.sha256()
  for name in sorted(arrays):
    x = arrays[name]
    if x is None:
      continue
    x = np.ascontiguousarray(x)
    h.update(f"{name}:{x.dtype.str}:{x.shape};".encode())
    h.update(x.tobytes())
  return h.hexdigest()


def of_experiment(input_files: Sequence[str], exp) -> dict:
  """The fingerprint of `exp` (a `vpl.data.sources.ExperimentData`) and its input files."""
  train = exp.train
  if hasattr(train, "arrays"):
    train_hash = arrays_sha256(train.arrays())
  else:  # streamed: the built data set's files (names and sizes) and its user index
    listing = sorted((os.path.relpath(os.path.join(root, f), train.opened.path),
                      os.path.getsize(os.path.join(root, f)))
                     for root, _, files in os.walk(train.opened.path) for f in files)
    train_hash = arrays_sha256(dict(
        files=np.frombuffer(repr(listing).encode(), np.uint8),
        users=np.asarray(train.users), **{f"index_{k}": np.asarray(v)
                                          for k, v in train.opened.index.items()}))
  evaluated = dict(exp.evaluated.arrays(), context_idx=exp.context_idx,
                   target_mask=exp.target_mask, unseen_mask=exp.unseen_mask)
  return dict(files=[file_fingerprint(p) for p in input_files], train=train_hash,
              evaluated=arrays_sha256(evaluated))


def difference(saved: dict, now: dict) -> Optional[str]:
  """What changed between two fingerprints, in words; None when they are the same."""
  before = {f["path"]: f for f in saved.get("files", [])}
  after = {f["path"]: f for f in now.get("files", [])}
  for path in sorted(set(before) | set(after)):
    old, new = before.get(path), after.get(path)
    if old is None or new is None:
      return f"the input files changed: {path} was {'added' if old is None else 'removed'}"
    if old["sha256"] != new["sha256"]:
      return (f"the input file {path} changed (size {old['size']} -> {new['size']} bytes, "
              f"sha256 {old['sha256'][:12]}... -> {new['sha256'][:12]}...)")
  for part, what in (("train", "training"), ("evaluated", "evaluated")):
    if saved.get(part) != now.get(part):
      return (f"the {what} data built from the config differs from what this run was "
              f"trained on (the input files are unchanged, so the code that generates or "
              f"loads the data has changed)")
  return None
