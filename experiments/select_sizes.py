"""MaxMin's K, PReF's J and VPL's latent size chosen from data, over tasks and seeds, against
the true size (VPL: against its default latent size; "true size" in the table is that).

  python -m experiments.select_sizes --workdir=runs/select                 # every case, seeds 0-2
  python -m experiments.select_sizes --workdir=runs/select --cases=ufp4:pref --seeds=0
  python -m experiments.select_sizes --workdir=runs/select_pref_v3 --cases=ufp4:pref,ufp2:pref --set=pref.refine_rounds=2

Case T:M (task, method of experiments/configs/select.py), seed N runs in DIR/T_M/seed_N;
when the size chosen is not the true one, the same run with the true size is trained in
DIR/T_M/seed_N_true to compare accuracies (when it is, the final fit *is* that run: same
config, same streams). Writes DIR/summary.md (table) and DIR/selection.png (curves).
"""

import json
import os

from absl import app, flags, logging

from experiments.cli import parse_sets
from experiments.configs import select
from vpl import configs, selection_plots
from vpl.experiment import train_and_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Base directory.", required=True)
flags.DEFINE_list("cases", [f"{t}:maxmin" for t in ("navigation2", "navigation3",
                                                    "navigation4", "navigation10", "ufp4")]
                  + ["ufp2:pref", "ufp4:pref"], "task:method cases.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE applied to every case's config, e.g. "
                          "--set=pref.refine_rounds=2 (VALUE as a Python literal, else a "
                          "string); repeat the flag for several.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rows = ["| task | method | true size | chosen per seed (maxmin: by likelihood) | acc. auto "
          "| acc. true size |",
          "| --- | --- | --- | --- | --- | --- |"]
  panels = []
  for case in FLAGS.cases:
    task, method = case.split(":")
    config = configs.with_overrides(select.get_config(f"task={task},method={method}"),
                                    parse_sets(FLAGS.set))
    true = select.reference_size(task, method)
    chosen, shown, acc_auto, acc_true, curves = [], [], [], [], []
    for seed in [int(s) for s in FLAGS.seeds]:
      seeded = configs.with_overrides(config, {"seed": seed})
      base = os.path.join(FLAGS.workdir, f"{task}_{method}", f"seed_{seed}")
      result = train_and_evaluate(seeded, base)["methods"][method]
      sel = result["selection"]
      chosen.append(sel["chosen"])
      shown.append(f"{sel['chosen']} ({sel['chosen_by_likelihood']})" if method == "maxmin"
                   else str(sel["chosen"]))
      acc_auto.append(result["heldout_accuracy"])
      curves.append((f"seed {seed}", result["selection"]))
      if chosen[-1] == true:
        acc_true.append(result["heldout_accuracy"])
      else:
        fixed = configs.with_overrides(seeded, {select.FIELDS[method]: true})
        acc_true.append(train_and_evaluate(fixed, base + "_true")["methods"][method][
            "heldout_accuracy"])
      print(f"{case} seed {seed}: chosen {chosen[-1]} (true {true}), accuracy "
            f"{acc_auto[-1]:.3f} vs {acc_true[-1]:.3f}", flush=True)
    fmt = lambda xs: " / ".join(f"{x:.3f}" for x in xs)
    rows.append(f"| {task} | {method} | {true} | {' / '.join(shown)} | "
                f"{fmt(acc_auto)} | {fmt(acc_true)} |")
    kind = "default" if method == "vpl" else "true"  # VPL's latent has no true size
    panels.append((f"{task} {method} ({kind}={true})", curves))
  text = "\n".join(rows)
  print(text)
  os.makedirs(FLAGS.workdir, exist_ok=True)
  with open(os.path.join(FLAGS.workdir, "summary.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(FLAGS.workdir, "summary.json"), "w") as f:
    json.dump(dict(rows=rows, panels=panels), f, indent=1)
  selection_plots.selection_curves(panels, os.path.join(FLAGS.workdir, "selection.png"))


if __name__ == "__main__":
  app.run(main)
