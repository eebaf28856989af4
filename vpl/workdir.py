"""One run per workdir: an exclusive lock held for the life of a run.

`lock(workdir, process)` takes `workdir/.lock.<process>` with `fcntl.flock`. The kernel drops
the lock when its holder exits in any way (an exception, Ctrl-C, SIGKILL), so a lock file left
by a dead process is stale by construction: the next run takes it and logs whose it was. A
second run started while the first is alive gets `WorkdirBusy`, naming the holder's pid, host
and start time. Each process of a multi-host run locks its own file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from typing import Iterator


class WorkdirBusy(RuntimeError):
  """Another live process holds the workdir."""


def _holder(path: str) -> dict:
  try:
    with open(path) as f:
      return json.loads(f.read() or "{}")
  except (OSError, ValueError):
    return {}


@contextlib.contextmanager
def lock(workdir: str, process: int = 0) -> Iterator[str]:
  """Holds `workdir`'s lock for process `process` inside the `with` block; yields its path."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, f".lock.{process}")
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      h = _holder(path)
      raise WorkdirBusy(
          f"{workdir} is in use by another run: pid {h.get('pid', '?')} on host "
          f"{h.get('host', '?')} since {h.get('started', '?')} ({path}). Wait for it to "
          f"finish or stop it, or use another --workdir.") from None
    previous = _holder(path)
    if previous:
      logging.info("%s: the previous run (pid %s on %s) has ended; taking its lock.",
                   workdir, previous.get("pid"), previous.get("host"))
    me = dict(pid=os.getpid(), host=socket.gethostname(),
              started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    try:
      yield path
    finally:
      os.ftruncate(fd, 0)  # a clean exit leaves an empty (free) lock file
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)
