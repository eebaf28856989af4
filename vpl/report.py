"""Tables of results, and the headline's claims checked over seeds."""

from __future__ import annotations

import json
import os

import numpy as np

from vpl import adapt_report, evaluate


MAX_GROUP_COLUMNS = 8  # more groups (e.g. 21 occupations): only the worst group is shown


def _group_label(results: dict, g: str) -> str:
  names = (results.get("data") or {}).get("group_names")
  return names[int(g)] if names and 0 <= int(g) < len(names) else g


def _no_generator_note(results: dict) -> str:
  data = results.get("data", {})
  dropped = "; ".join(f"{reason}: " + ", ".join(f"{n} {u}" for u, n in c.items())
                      for reason, c in data.get("filters", {}).items()) or "nothing"
  return (f"{results['task']}: no generating rewards, so oracle, BTL ceiling and Bayes oracle "
          f"are skipped; split {data.get('split')}; filtered: {dropped}.")


def results_table(results: dict) -> str:
  """A markdown table of every method's held-out metrics in one run.

  With generating rewards (synthetic tasks): accuracy on divergent pairs per group; without
  (real or imported data): accuracy per group, when there are at most MAX_GROUP_COLUMNS.
  Calibration (NLL, ECE) beside accuracy; with an `adaptation` section, its tables follow.
  """
  first = next(iter(results["methods"].values()))
  groups = sorted(first["group_accuracy"], key=int)
  divergent = "divergent_accuracy" in first
  head = ["method", "held-out acc", "NLL", "ECE"]
  if divergent:
    head += ["divergent acc"] + [f"div. acc group {g}" for g in groups]
  elif 1 < len(groups) <= MAX_GROUP_COLUMNS:
    head += [f"acc {_group_label(results, g)}" for g in groups]
  head += ["worst group", "train s"]
  rows = [head, ["---"] * len(head)]
  for name, m in results["methods"].items():
    row = [name, f"{m['heldout_accuracy']:.3f}", f"{m.get('nll', np.nan):.3f}",
           f"{m.get('ece', np.nan):.3f}"]
    if divergent:
      div = m.get("divergent_group_accuracy", {})
      row += [f"{m.get('divergent_accuracy', np.nan):.3f}"]
      row += [f"{div.get(g, np.nan):.3f}" for g in groups]
    elif 1 < len(groups) <= MAX_GROUP_COLUMNS:
      row += [f"{m['group_accuracy'].get(g, np.nan):.3f}" for g in groups]
    rows.append(row + [f"{m['worst_group_accuracy']:.3f}", f"{m['train_seconds']:.1f}"])
  lines = ["| " + " | ".join(r) + " |" for r in rows]
  if results.get("btl_ceiling") is None:
    lines.append("\n" + _no_generator_note(results))
    lines.append(f"{results['num_heldout_users']} evaluated users, "
                 f"{results['eval_num_context']} context pairs each.")
  else:
    lines.append(f"\nBTL ceiling {results['btl_ceiling']:.3f}; shares {results['shares']}; "
                 f"{results['num_heldout_users']} held-out users, "
                 f"{results['eval_num_context']} context pairs each.")
  if "adaptation" in results:
    lines.append("\n" + adapt_report.text([results]))
  return "\n".join(lines)


def minority_group(results: dict) -> str:
  """The group with the smallest share (the first such group on ties)."""
  return str(int(np.argmin(results["shares"])))


def _stat(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.3f} ± {values.std():.3f}"


def seeds_table(runs: list[dict]) -> str:
  """Mean ± std over runs (seeds) of each method's held-out metrics.

  The minority column appears only when group shares differ and divergent pairs are known;
  without generating rewards, accuracy per group appears instead (at most MAX_GROUP_COLUMNS).
  """
  shares = runs[0]["shares"]
  first = next(iter(runs[0]["methods"].values()))
  divergent = "divergent_accuracy" in first
  groups = sorted(first["group_accuracy"], key=int)
  per_group = not divergent and 1 < len(groups) <= MAX_GROUP_COLUMNS
  minority = minority_group(runs[0]) if divergent and len(set(shares)) > 1 else None
  # Where some targets were labelled in training (shared pools, real data), the accuracy on
  # the others too.
  unseen = first.get("num_unseen_targets", first["num_targets"]) != first["num_targets"]
  head = ["method", "held-out acc", "NLL", "ECE"] + (["unseen-item acc"] if unseen else [])
  if divergent:
    head.append("divergent acc")
  if minority is not None:
    head.append(f"div. acc minority (group {minority})")
  if per_group:
    head += [f"acc {_group_label(runs[0], g)}" for g in groups]
  head += ["worst group"] + (["worst group, divergent"] if divergent else []) + ["train s"]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for name in runs[0]["methods"]:
    ms = [r["methods"][name] for r in runs]
    cells = [name, _stat([m["heldout_accuracy"] for m in ms]),
             _stat([m.get("nll", np.nan) for m in ms]), _stat([m.get("ece", np.nan) for m in ms])]
    if unseen:
      cells.append(_stat([m["unseen_items_accuracy"] for m in ms]))
    if divergent:
      cells.append(_stat([m["divergent_accuracy"] for m in ms]))
    if minority is not None:
      cells.append(_stat([m["divergent_group_accuracy"][minority] for m in ms]))
    if per_group:
      cells += [_stat([m["group_accuracy"].get(g, np.nan) for m in ms]) for g in groups]
    cells.append(_stat([m["worst_group_accuracy"] for m in ms]))
    if divergent:
      cells.append(_stat([evaluate.worst(m["divergent_group_accuracy"].values()) for m in ms]))
    cells.append(f"{np.mean([m['train_seconds'] for m in ms]):.1f}")
    lines.append("| " + " | ".join(cells) + " |")
  seeds = [r["seed"] for r in runs]
  if runs[0].get("btl_ceiling") is None:
    lines.append(f"\nseeds {seeds}; " + _no_generator_note(runs[0]))
  else:
    lines.append(f"\n{runs[0]['task']}, shares {shares}, seeds {seeds}; "
                 f"BTL ceiling {_stat([r['btl_ceiling'] for r in runs])}.")
  return "\n".join(lines)


def headline_claims(runs: list[dict]) -> list[tuple[str, bool, str]]:
  """The 51/49 dilemma and its resolution, checked in every run.

  Returns `(claim, holds in every run, measured vs bound per run)` for: VPL within 0.03 of
  the oracle; BTL at most 0.02 above its ceiling; BTL below 0.5 for the minority on
  divergent pairs; VPL at >= 0.9 of the oracle for the minority on divergent pairs.
  """
  g = minority_group(runs[0])
  m = lambda r, name: r["methods"][name]
  checks = [  # (claim, comparison, [(measured, bound) per run])
      ("VPL held-out accuracy >= oracle - 0.03", ">=",
       [(m(r, "vpl")["heldout_accuracy"], r["oracle_accuracy"] - 0.03) for r in runs]),
      ("BTL held-out accuracy <= BTL ceiling + 0.02", "<=",
       [(m(r, "btl")["heldout_accuracy"], r["btl_ceiling"] + 0.02) for r in runs]),
      (f"BTL minority (group {g}) accuracy on divergent pairs < 0.5", "<",
       [(m(r, "btl")["divergent_group_accuracy"][g], 0.5) for r in runs]),
      (f"VPL minority (group {g}) accuracy on divergent pairs >= 0.9 x oracle's", ">=",
       [(m(r, "vpl")["divergent_group_accuracy"][g],
         0.9 * m(r, "oracle")["divergent_group_accuracy"][g]) for r in runs]),
  ]
  compare = {">=": lambda x, y: x >= y, "<=": lambda x, y: x <= y, "<": lambda x, y: x < y}
  return [(claim, all(compare[op](x, y) for x, y in pairs),
           ", ".join(f"{x:.3f} {op} {y:.3f}" for x, y in pairs))
          for claim, op, pairs in checks]


PERSONALISING = ("vpl", "maxmin", "pref")


def comparison_claims(runs: list[dict]) -> list[tuple[str, bool, str]]:
  """The comparison's claims on one task, checked in every run (seed).

  Multi-group tasks: each personalising method beats BTL by >= 0.10 where the BTL ceiling
  leaves that room (oracle - ceiling >= 0.10), and VPL is within 0.03 of the oracle. A task
  with one group (`unimodal`): VPL within 0.01 of BTL. Every task: PReF >= BTL - 0.005.
  """
  present = lambda name: all(name in r["methods"] for r in runs)
  acc = lambda r, name: r["methods"][name]["heldout_accuracy"]
  checks = []  # (claim, comparison, [(measured, bound) per run])
  if len(runs[0]["shares"]) == 1:
    if present("vpl") and present("btl"):
      checks.append(("|VPL - BTL| <= 0.01", "<=",
                     [(abs(acc(r, "vpl") - acc(r, "btl")), 0.01) for r in runs]))
  else:
    room = all(r["oracle_accuracy"] - r["btl_ceiling"] >= 0.10 for r in runs)
    for name in PERSONALISING:
      if room and present(name) and present("btl"):
        checks.append((f"{name} >= BTL + 0.10", ">=",
                       [(acc(r, name), acc(r, "btl") + 0.10) for r in runs]))
    if present("vpl"):
      checks.append(("VPL >= oracle - 0.03", ">=",
                     [(acc(r, "vpl"), r["oracle_accuracy"] - 0.03) for r in runs]))
  if present("pref") and present("btl"):  # PReF holds a BTL-trained reward (docs/methods.md)
    checks.append(("PReF >= BTL - 0.005", ">=",
                   [(acc(r, "pref"), acc(r, "btl") - 0.005) for r in runs]))
  compare = {">=": lambda x, y: x >= y, "<=": lambda x, y: x <= y}
  return [(claim, all(compare[op](x, y) for x, y in pairs),
           ", ".join(f"{x:.3f} {op} {y:.3f}" for x, y in pairs))
          for claim, op, pairs in checks]


def tasks_table(runs_by_task: dict[str, list[dict]],
                metric: str = "heldout_accuracy") -> str:
  """`metric`, mean ± std over seeds: one row per task, one column per method.

  `metric` is 'heldout_accuracy' (every target) or 'unseen_items_accuracy' (targets whose pair
  no training user labelled); a method or ceiling without it shows '-'.
  """
  names = list(dict.fromkeys(n for runs in runs_by_task.values()
                             for n in runs[0]["methods"]))
  head = ["task", "BTL ceiling"] + names + ["VPL active units"]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  ceiling = lambda r: (r["btl_ceiling"] if metric == "heldout_accuracy"
                       else (r.get("btl_ceiling_report") or {}).get(metric))
  cell = lambda values: "-" if None in values else _stat(values)
  for task, runs in runs_by_task.items():
    cells = [task, cell([ceiling(r) for r in runs])]
    for name in names:
      cells.append(cell([r["methods"].get(name, {}).get(metric) for r in runs]))
    units = [r.get("active_units", {}).get("vpl") for r in runs]
    cells.append("/".join(str(u) for u in units) if None not in units else "-")
    lines.append("| " + " | ".join(cells) + " |")
  seeds = sorted({r["seed"] for runs in runs_by_task.values() for r in runs})
  what = ("Held-out users' accuracy" if metric == "heldout_accuracy" else
          "Held-out users' accuracy on targets no training user labelled (unseen items)")
  lines.append(f"\n{what}, mean ± std over seeds {seeds}; active units per seed.")
  return "\n".join(lines)


def claims_text(claims: list[tuple[str, bool, str]]) -> str:
  """Markdown bullets: each claim, whether it holds in every run, and the values per run."""
  return "\n".join(f"- {'holds' if ok else 'FAILS'}: {claim} ({values})"
                   for claim, ok, values in claims)


def write_summary(workdir: str, text: str, runs) -> None:
  """Writes `workdir/summary.md` (the text) and `workdir/summary.json` (the runs)."""
  with open(os.path.join(workdir, "summary.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(runs, f, indent=2)
