"""results.json's `drift` section: a recency-weighted context against the unweighted one.

The weights themselves are in vpl/data/recency.py (the data layer builds them with the split).
"""

from __future__ import annotations

import numpy as np

from vpl import evaluate


def report(spec: str, exp, models: dict, scored: dict) -> dict:
  """results.json's `drift`: each method's accuracy on the targets (each user's latest
  answers under the temporal split) with the `spec` context and with the unweighted one.

  Args:
    spec: the run's `model.context_recency`.
    exp: the experiment's data (`vpl.data.sources.ExperimentData`).
    models: `{name: (method, model)}` of the trained methods.
    scored: `{name: report}` already scored with the weighted context.
  """
  out = dict(context_recency=spec, num_context=int(exp.context_idx.shape[1]),
             num_users=int(exp.evaluated.num_users), num_targets=int(exp.target_mask.sum()),
             methods={})
  truth = getattr(exp.task, "truth", None) or {}
  if "switch_time" in truth and len(truth["switch_time"]) == exp.evaluated.num_users:
    earliest_target_U = np.argmax(exp.target_mask, axis=1)
    out["share_switched_before_targets"] = float(
        (truth["switch_time"] <= earliest_target_U).mean())
  for name, (method, model) in models.items():
    p_a, _ = evaluate.predict_users(method, model, exp.evaluated, exp.context_idx)
    unweighted = evaluate.accuracy_report(p_a, exp.evaluated, exp.target_mask)
    weighted = scored[name]["heldout_accuracy"]
    out["methods"][name] = dict(weighted=weighted, unweighted=unweighted["heldout_accuracy"],
                                gain=weighted - unweighted["heldout_accuracy"])
  return out
