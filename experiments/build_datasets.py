"""Builds comparison data sets as TFDS array_record files: `python -m experiments.build_datasets`.

  --data_dir=DIR --datasets=didactic,navigation2   named data sets (vpl/data/tfds_builders.py)
  --data_dir=DIR --datasets=all                    every named data set
  --data_dir=DIR --config=experiments/configs/tiny.py
                                                   the data set an experiment config reads
                                                   when streaming.enabled (any --config.*
                                                   override applies)
A data set already built is left as it is. Each line printed gives the directory, rows, users
and the build time.
"""

import os
import time

from absl import app, flags, logging

from experiments import cli
from vpl.data import tfds_builders

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory the data sets are built into.", required=True)
flags.DEFINE_list("datasets", [], f"Named data sets, or 'all': {sorted(tfds_builders.DATASETS)}.")
cli.define_config(None, "Experiment config whose data set to build.")


def configs_to_build() -> list[tfds_builders.ComparisonsConfig]:
  names = sorted(tfds_builders.DATASETS) if FLAGS.datasets == ["all"] else FLAGS.datasets
  configs = [tfds_builders.named_config(n) for n in names]
  c = FLAGS.config
  if c is not None:
    configs.append(tfds_builders.make_config(c.data.source, c.data.kwargs.to_dict(), c.seed))
  if not configs:
    raise app.UsageError("Nothing to build: give --datasets=NAME[,NAME...] (or 'all') and/or "
                         "--config=FILE.")
  return configs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # TFDS logs every file it writes at INFO.
  for config in configs_to_build():
    start = time.perf_counter()
    path = tfds_builders.build(config, FLAGS.data_dir)
    seconds = time.perf_counter() - start
    opened = tfds_builders.open_dataset(FLAGS.data_dir, config)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"{config.name}: {opened.num_rows} rows, {len(opened.index['user_id'])} users, "
          f"{size / 2**20:.1f} MiB, {seconds:.1f} s -> {path}")


if __name__ == "__main__":
  app.run(main)
