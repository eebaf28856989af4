"""The issue-13 targets of stability runs, per seed: a markdown table and pass/fail marks.

  python -m experiments.stability_summary runs/stability_ufp4_seeds runs/stability_didactic_seeds

Each argument is a directory of `experiments.seeds` runs (seed_N/results.json) of
experiments/configs/stability.py, or one run's workdir. Accuracies of the genuine users are
against their genuine preference (the generator's); of non-attitude users, against the labels
they gave (a coin) and against the population's genuine preference (their group's).
"""

import glob
import json
import os
import sys


def _runs(path):
  files = sorted(glob.glob(os.path.join(path, "seed_*", "results.json")))
  return files or [os.path.join(path, "results.json")]


def _bayes_group_kl(path: str) -> dict:
  """For runs written before results.json held it: rebuilt from the run's config (numpy)."""
  from vpl import analysis, stability_report  # noqa: PLC0415 (JAX only when needed)
  from vpl.data import reasked, sources  # noqa: PLC0415
  exp = sources.build(analysis.load_config(os.path.dirname(path)))
  kind, _ = reasked.kinds_of(exp.truth, exp.evaluated)
  return stability_report.bayes_group_kl(exp.evaluated, exp.context_idx, exp.task.shares, kind)


def row(r: dict, path: str) -> dict:
  s = r["stability"]
  d, m, kl = s["detector"], s["methods"], s["vpl_mean_kl"]
  clean = s.get("clean") if isinstance(s.get("clean"), dict) else {}
  out = dict(
      task=r["task"], seed=r["seed"],
      na_p=d["non_attitude"]["precision"], na_r=d["non_attitude"]["recall"],
      con_p=d["constructed"]["precision"], con_r=d["constructed"]["recall"],
      bias_true=s["position_bias"]["true"], bias_est=s["position_bias"]["estimated"],
      kl_gen=kl["genuine"], kl_na=kl["non_attitude"],
      vpl_gen=m["vpl"]["genuine"]["genuine"],
      vpl_gen_clean=clean.get("vpl", {}).get("genuine", {}).get("genuine"),
      btl_na=m["btl"]["non_attitude"]["observed"], vpl_na=m["vpl"]["non_attitude"]["observed"],
      btl_na_pop=m["btl"]["non_attitude"]["genuine"],
      vpl_na_pop=m["vpl"]["non_attitude"]["genuine"])
  bkl = s.get("bayes_group_kl") or _bayes_group_kl(path)
  out.update(bkl_gen=bkl["genuine"], bkl_na=bkl["non_attitude"])
  shrunk = s.get("shrinkage", {}).get("1.0")
  if shrunk:
    out.update(shr_gen=shrunk["genuine"]["genuine"], shr_na_pop=shrunk["non_attitude"]["genuine"])
  return out


def fmt(v):
  return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main(paths):
  rows = [row(json.load(open(f)), f) for p in paths for f in _runs(p)]
  cols = ["task", "seed", "na_p", "na_r", "con_p", "con_r", "bias_true", "bias_est", "kl_gen",
          "kl_na", "vpl_gen", "vpl_gen_clean", "btl_na", "vpl_na", "btl_na_pop", "vpl_na_pop",
          "shr_gen", "shr_na_pop", "bkl_gen", "bkl_na"]
  print("| " + " | ".join(cols) + " | targets met |")
  print("|" + " --- |" * (len(cols) + 1))
  for r in rows:
    met = dict(detector=min(r["na_p"], r["na_r"]) >= 0.9,
               kl=r["kl_na"] < r["kl_gen"] / 4,
               clean=r["vpl_gen_clean"] is not None and r["vpl_gen"] >= r["vpl_gen_clean"] - 0.02,
               na=r["vpl_na"] >= r["btl_na"])
    marks = " ".join(f"{k}:{'yes' if v else 'NO'}" for k, v in met.items())
    print("| " + " | ".join(fmt(r.get(c)) for c in cols) + f" | {marks} |")
  print()
  print(ranges(rows))


def _span(rows, key):
  vals = [r[key] for r in rows if r.get(key) is not None]
  if not vals:
    return "-"
  lo, hi = min(vals), max(vals)
  return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f}-{hi:.3f}"


def ranges(rows) -> str:
  """Per task, the range over seeds of each figure (the README-ready table)."""
  head = ("| task (seeds) | non-attitude users P / R | constructed answers P / R | first-shown "
          "rate: true / tower | VPL genuine users: noisy / clean | non-attitude users: BTL / "
          "VPL | VPL KL: genuine / non-attitude |")
  lines = [head, "|" + " --- |" * 7]
  for task in dict.fromkeys(r["task"] for r in rows):
    rs = [r for r in rows if r["task"] == task]
    s = lambda a, b: f"{_span(rs, a)} / {_span(rs, b)}"
    seeds = ",".join(str(r["seed"]) for r in rs)
    lines.append(f"| {task} ({seeds}) | {s('na_p', 'na_r')} | {s('con_p', 'con_r')} | "
                 f"{s('bias_true', 'bias_est')} | {s('vpl_gen', 'vpl_gen_clean')} | "
                 f"{s('btl_na', 'vpl_na')} | {s('kl_gen', 'kl_na')} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main(sys.argv[1:])
