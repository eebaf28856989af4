"""Runs an experiment: `python -m experiments.main --workdir=DIR [--config=FILE[:arg]]`.

Several processes (hosts) run the same command; see launch/README.md for the flags.

Flags live here only; the work is `vpl.experiment.train_and_evaluate`. Running the same
command again on the same workdir resumes from the last checkpoints.
"""

import logging as std_logging

from absl import app, flags, logging

from experiments import cli
from vpl import distributed

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints, results.",
                    required=True)
cli.define_config("experiments/configs/default.py",
    "Config file, optionally with ':arg' (e.g. experiments/configs/navigation.py:goals=10); "
    "fields are overridden with --config.group.field=value.")
# Multi-process runs (launch/README.md): one process per host, all with the same command.
flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                  "auto: start jax.distributed when the coordinator flags are given or a "
                  "multi-task SLURM step is detected; on: always (jax detects SLURM, TPU VMs); "
                  "off: never.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with the two below).")
flags.DEFINE_integer("num_processes", None, "Number of processes in the run.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")


def quiet_dependencies() -> None:
  """Shows vpl's INFO lines (progress: steps/s, ETA) and everyone's warnings, not the
  dependencies' INFO chatter (orbax logs dozens of lines per checkpoint)."""
  logging.set_verbosity(logging.INFO)
  ours = ("/vpl/", "/experiments/", "/benchmarks/")
  logging.get_absl_handler().addFilter(  # std_logging: absl's WARNING constant is -1.
      lambda r: r.levelno >= std_logging.WARNING or any(p in r.pathname for p in ours))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  quiet_dependencies()
  distributed.initialize(distributed.Launch(
      FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id))
  # Imported after jax.distributed starts: a module that builds a jnp array at import time
  # would start the XLA backend first, and initialize() refuses to run after that.
  from vpl import report
  from vpl.experiment import train_and_evaluate
  results = train_and_evaluate(FLAGS.config, FLAGS.workdir)
  if distributed.is_primary():
    print(report.results_table(results))
    print(f"Wrote {FLAGS.workdir}/results.json")


if __name__ == "__main__":
  app.run(main)
