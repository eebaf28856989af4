"""MaxMin's K, PReF's J or VPL's latent size chosen from data (`"auto"`) on a task whose number
of groups is known.

Command:  python -m experiments.select_sizes --workdir=runs/select     # every case, seeds 0-2
          python -m experiments.main --workdir=runs/select_nav4 --config=experiments/configs/select.py:task=navigation4,method=maxmin
Arguments: task = navigation2 | navigation3 | navigation4 | navigation10 | ufp2 | ufp4;
          method = maxmin (K = maxmin.num_clusters) | pref (J = pref.num_bases) |
          vpl (model.latent_dim).
Runtime:  (2-core CPU shared with other jobs) 1-6 min a run: one fit per size tried, then the
          final fit (navigation10 the longest).
Expected: the chosen size is the number of groups of the task (maxmin) or its rank (pref);
          VPL's latent has no true size (its accuracy is compared with the default's);
          measured: docs/results.md, 'Choosing K and J from data'.
"""

from experiments.configs import args, default, navigation
from vpl import configs
from vpl.data import tasks

TASKS = ("navigation2", "navigation3", "navigation4", "navigation10", "ufp2", "ufp4")
FIELDS = {"maxmin": "maxmin.num_clusters", "pref": "pref.num_bases", "vpl": "model.latent_dim"}


def reference_size(task: str, method: str) -> int:
  """The size an auto run is compared with: the number of groups (maxmin, pref), the task's
  default latent size (vpl)."""
  if method == "vpl":
    ten = navigation.TEN_GOALS.get("model.latent_dim") if task == "navigation10" else None
    return ten or default.get_config().model.latent_dim
  return tasks.preset(task).num_groups


def get_config(arg: str = "task=navigation2,method=maxmin"):
  f = args.parse(arg, "select.py", task=args.Key(choices=TASKS),
                 method=args.Key("maxmin", tuple(FIELDS)))
  preset = tasks.preset(f["task"])
  return configs.with_overrides(default.get_config(), {
      "methods": (f["method"],), "data.source": preset.generator,
      "data.kwargs": preset.kwargs, FIELDS[f["method"]]: "auto",
      **(navigation.TEN_GOALS if f["task"] == "navigation10" else {})})
