"""Multi-process runs on JAX's own distributed runtime (`jax.distributed`).

One Python process runs per host (or per local process group); together they see every
device of every process as one 1-D 'data' mesh (`vpl.train.make_mesh`). Each process builds
the same data from the config's seed, so host arrays are identical everywhere and are put on
the global mesh replicated (`jax.device_put` with a replicated `NamedSharding` is valid for
host values that are the same on every process; `check_same_on_all_processes` asserts it).
Files are written by process 0 only (`is_primary`); orbax checkpoints are multi-process
aware and written once.

Nothing here reads flags: experiments/main.py turns its flags into `Launch`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Mapping, Optional

import jax
import numpy as np

AUTO, ON, OFF = "auto", "on", "off"


@dataclasses.dataclass(frozen=True)
class Launch:
  """How this process was started.

  Attributes:
    mode: 'auto' initialises `jax.distributed` when explicit addresses are given or the
      environment is a multi-process SLURM step (or a TPU pod slice that names its workers);
      'on' always initialises it (jax auto-detects the cluster: SLURM, TPU VMs, Open MPI);
      'off' never does.
    coordinator_address: 'host:port' of process 0; with num_processes and process_id.
    num_processes: processes in the run.
    process_id: this process's index in [0, num_processes).
  """
  mode: str = AUTO
  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None

  def __post_init__(self):
    if self.mode not in (AUTO, ON, OFF):
      raise ValueError(f"distributed mode = {self.mode!r}; choose 'auto', 'on' or 'off'.")
    explicit = (self.coordinator_address, self.num_processes, self.process_id)
    given = [x is not None for x in explicit]
    if any(given) and not all(given):
      raise ValueError(
          f"coordinator_address = {self.coordinator_address!r}, num_processes = "
          f"{self.num_processes!r}, process_id = {self.process_id!r}: give all three (or "
          f"none, to let jax detect SLURM / TPU VMs).")
    if all(given):
      if self.mode == OFF:
        raise ValueError("distributed mode = 'off' but coordinator_address is given; drop "
                         "one of them.")
      if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
        raise ValueError(f"process_id = {self.process_id} with num_processes = "
                         f"{self.num_processes}; need 0 <= process_id < num_processes.")

  @property
  def explicit(self) -> bool:
    return self.coordinator_address is not None


def cluster_from_env(environ: Mapping[str, str]) -> Optional[str]:
  """The multi-process cluster this environment describes, or None for a single process.

  Reads only environment variables (no network, so a laptop run stays instant):
  a SLURM step with more than one task ('slurm'; the variables jax's SLURM detection needs),
  or a TPU slice whose worker hostnames are listed with more than one entry ('tpu').
  A plain TPU VM does not always export its worker list: its launcher passes mode 'on'.
  """
  slurm_vars = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
                "SLURM_LOCALID")
  if all(v in environ for v in slurm_vars) and int(environ["SLURM_NTASKS"]) > 1:
    return "slurm"
  hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
  if len([h for h in hosts.split(",") if h.strip()]) > 1:
    return "tpu"
  return None


def should_initialize(launch: Launch, environ: Mapping[str, str]) -> bool:
  """Whether `initialize` will call `jax.distributed.initialize` for this launch."""
  if launch.mode == OFF:
    return False
  return launch.mode == ON or launch.explicit or cluster_from_env(environ) is not None


def initialize(launch: Launch, environ: Optional[Mapping[str, str]] = None) -> bool:
  """Starts `jax.distributed` when the launch is multi-process; returns whether it did.

  Must run before anything touches a JAX device (the runtime is fixed at first use).
  """
  environ = os.environ if environ is None else environ
  if not should_initialize(launch, environ):
    return False
  if launch.explicit:
    jax.distributed.initialize(launch.coordinator_address, launch.num_processes,
                               launch.process_id)
  else:
    jax.distributed.initialize()
  logging.info("jax.distributed: process %d of %d, %d local of %d devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def is_primary() -> bool:
  """True on the process that writes files (process 0)."""
  return jax.process_index() == 0


def fingerprint(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
  """A 128-bit hash `[4] uint32` of named host arrays (names, dtypes, shapes and bytes).

  uint32 words, because JAX (without x64) would truncate 64-bit integers in transit.
  """
  h = hashlib.sha256()
  for name in sorted(arrays):
    x = np.ascontiguousarray(arrays[name])
    h.update(f"{name}:{x.dtype}:{x.shape};".encode())
    h.update(x.tobytes())
  return np.frombuffer(h.digest()[:16], np.uint32).copy()


def check_same_on_all_processes(arrays: Mapping[str, np.ndarray], what: str) -> None:
  """Raises if the processes hold different `arrays` (a no-op with one process).

  Replicated placement assumes every process passes the same host value; a process that
  built different data would otherwise train silently on a mix.
  """
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils
  mine = fingerprint(arrays)
  every = np.asarray(multihost_utils.process_allgather(mine))  # [processes, 4]
  if (every != mine[None]).any():
    differ = np.flatnonzero((every != every[0]).any(1)).tolist()
    raise ValueError(
        f"{what} differs between processes (processes {differ} differ from process 0); "
        f"every process "
        f"must build the same data from the config's seed. Check that all processes run "
        f"the same code, config and data files.")
