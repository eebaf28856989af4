"""Tables and claims of results.json's `policy` and `best_of_n` sections over seeds.

The claims are the ones docs/policy.md reports: VPL's policy within 0.9 x (two goals) or
0.15 (more goals) of the oracle's success in every group, BTL's policy succeeding for at most
one group, and VPL's best-of-N regret per group within 10% of the oracle's improvement over
BTL (BTL's regret in that group).
"""

from __future__ import annotations

import numpy as np

from vpl.report import _stat, claims_text


def _groups(section: dict) -> list[str]:
  return sorted(next(iter(section.values()))["success"], key=int)


def policy_table(runs: list[dict]) -> str:
  """Success and return per group, mean ± std over runs, and training seconds per policy."""
  names = list(runs[0]["policy"])
  groups = _groups(runs[0]["policy"])
  head = (["method"] + [f"success g{g}" for g in groups] + [f"return g{g}" for g in groups]
          + ["policy train s"])
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for name in names:
    cells = [name]
    for key in ("success", "return"):
      cells += [_stat([r["policy"][name][key][g] for r in runs]) for g in groups]
    cells.append(f"{np.mean([r['policy'][name]['train_seconds'] for r in runs]):.0f}")
    lines.append("| " + " | ".join(cells) + " |")
  seeds = [r["seed"] for r in runs]
  return "\n".join(lines) + f"\n\n{runs[0]['task']}, {len(groups)} goals, seeds {seeds}."


def policy_claims(runs: list[dict]) -> list[tuple[str, bool, str]]:
  out = []
  for r in runs:
    pol, groups = r["policy"], _groups(r["policy"])
    oracle, vpl = pol["oracle"]["success"], pol["vpl"]["success"]
    if len(groups) == 2:
      ok = all(vpl[g] >= 0.9 * oracle[g] for g in groups)
      what = "VPL success >= 0.9 x oracle's in both groups"
    else:
      ok = all(vpl[g] >= oracle[g] - 0.15 for g in groups)
      what = "VPL success within 0.15 of the oracle's in every group"
    detail = ", ".join(f"g{g} {vpl[g]:.2f} vs {oracle[g]:.2f}" for g in groups)
    out.append((f"seed {r['seed']}: {what}", ok, detail))
    if "btl" in pol and len(groups) == 2:
      served = [g for g in groups if pol["btl"]["success"][g] >= 0.5]
      out.append((f"seed {r['seed']}: BTL's policy succeeds for at most one group",
                  len(served) <= 1, ", ".join(f"g{g} {pol['btl']['success'][g]:.2f}"
                                              for g in groups)))
  return out


def best_of_n_table(runs: list[dict]) -> str:
  """Regret per group (mean ± std over runs), worst group, and held-out reward accuracy."""
  sec = runs[0]["best_of_n"]
  names = list(sec["methods"])
  groups = sorted(sec["methods"]["oracle"]["regret"], key=int)
  head = (["method", "held-out acc"] + [f"regret g{g}" for g in groups]
          + ["worst-group regret"])
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for name in names:
    acc = [r["methods"][name]["heldout_accuracy"] for r in runs]
    cells = [name, _stat(acc)]
    cells += [_stat([r["best_of_n"]["methods"][name]["regret"][g] for r in runs])
              for g in groups]
    cells.append(_stat([r["best_of_n"]["methods"][name]["worst_group_regret"] for r in runs]))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + (f"\n\n{runs[0]['task']}, best of {sec['num_candidates']}, "
                             f"{sec['num_prompts']} prompts x {sec['num_users']} held-out "
                             f"users, seeds {[r['seed'] for r in runs]}.")


def best_of_n_claims(runs: list[dict]) -> list[tuple[str, bool, str]]:
  out = []
  for r in runs:
    ratio = r["best_of_n"].get("vpl_regret_over_btl_regret")
    if ratio is None:
      continue
    out.append((f"seed {r['seed']}: VPL's regret <= 10% of BTL's in every group",
                all(v <= 0.1 for v in ratio.values()),
                ", ".join(f"g{g} {v:.3f}" for g, v in ratio.items())))
  return out


def accuracy_regret_correlation(runs: list[dict], key: str = "heldout_accuracy") -> dict:
  """Pearson and Spearman correlation of an accuracy (`key` of a method's results, e.g.
  `heldout_accuracy` or `unseen_items_accuracy`) with mean best-of-N regret, over every
  (run, method) point except the oracle's."""
  acc, regret = [], []
  for r in runs:
    for name, sec in r["best_of_n"]["methods"].items():
      if name != "oracle":
        acc.append(r["methods"][name][key])
        regret.append(sec["mean_regret"])
  acc, regret = np.asarray(acc), np.asarray(regret)
  rank = lambda x: np.argsort(np.argsort(x))
  return dict(points=len(acc), pearson=float(np.corrcoef(acc, regret)[0, 1]),
              spearman=float(np.corrcoef(rank(acc), rank(regret))[0, 1]))


def summary(runs: list[dict]) -> str:
  """The sections of `runs` that exist, as markdown with their claims."""
  parts = []
  if "policy" in runs[0]:
    parts += [policy_table(runs), claims_text(policy_claims(runs))]
  if "best_of_n" in runs[0]:
    parts += [best_of_n_table(runs), claims_text(best_of_n_claims(runs))]
  return "\n\n".join(parts)
