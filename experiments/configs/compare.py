"""Every method on one task: same data, same held-out users, same context pairs, same metrics.

Command:  python -m experiments.main --workdir=runs/compare_ufp4 --config=experiments/configs/compare.py:task=ufp4
          python -m experiments.seeds --workdir=runs/compare_ufp4_seeds --config=experiments/configs/compare.py:task=ufp4
Tasks:    didactic (2 groups, 0.51/0.49), navigation2 (2 goals), pets, ufp2, ufp4, unimodal;
          `:task=ufp4,dim=768` sets an embedding task's width (default 64).
Runtime:  about 1-3 minutes per task on the 2-core CPU (all methods, compile included).
Expected: on the multi-group tasks the personalising methods (vpl, maxmin with K = the true
          number of groups, pref with J >= the true rank) sit well above BTL, which sits at
          its ceiling; DPL stays near BTL (it exposes disagreement, it does not resolve it). On
          `unimodal` VPL and PReF match BTL. The README's comparison table holds the measured
          figures (3 seeds: VPL within 0.01 of the Bayes oracle on every task, pets 0.985;
          PReF 0.982-0.998, ufp4 0.983 (within 0.02 of the Bayes oracle in every seed),
          unimodal 0.989, >= BTL - 0.005 everywhere).
"""

from experiments.configs import args, default
from vpl import configs
from vpl.data import tasks

# The comparison's tasks: presets of vpl/data/tasks.py.
TASKS = ("didactic", "navigation2", "pets", "ufp2", "ufp4", "unimodal")
METHODS = ("btl", "dpl_mv", "dpl_cat", "maxmin", "pref", "vpl")


def get_config(arg: str = "task=didactic"):
  f = args.parse(arg, "compare.py", task=args.Key(choices=TASKS),
                 dim=args.Key(0, parse=int))
  task, preset = f["task"], tasks.preset(f["task"])
  kwargs = dict(preset.kwargs)
  if f["dim"]:  # the embedding width of pets, ufp and unimodal (e.g. 768, an LLM's)
    if task in ("didactic", "navigation2"):
      raise ValueError(f"compare.py:dim={f['dim']} applies to the embedding tasks (pets, ufp2, "
                       f"ufp4, unimodal); {task} has 2-D states.")
    kwargs["dim"] = f["dim"]
  # Every training context has 8 pairs, as evaluation does. The paper draws 2..8 on UF-P-4
  # (train.min_context = 2); on ufp4's validation users (eval.split = 'validation', seeds
  # 0-1) that did worse than fixed 8 (docs/results.md, "How the recipe was chosen").
  return configs.with_overrides(default.get_config(), {
      "methods": METHODS, "data.source": preset.generator, "data.kwargs": kwargs,
      "maxmin.num_clusters": preset.num_groups, "pref.num_bases": max(preset.num_groups, 2)})
