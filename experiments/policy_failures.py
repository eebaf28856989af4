"""Why a method's policy misses: the learned reward's peak, or the policy's last steps?

  python -m experiments.policy_failures --workdir=runs/policy4_seeds/seed_0 --method=vpl
  python -m experiments.policy_failures --workdir=runs/policy4_seeds/seed_0 --method=vpl \\
      --overrides='{"policy.num_steps": 40000}'

Loads a finished policy run (`vpl.analysis.load_run`), retrains the method's policy with the
run's config (plus `--overrides`, dotted fields as JSON) and rolls it out for the held-out
users exactly as the run did; then, per failed user, where the user's learned reward peaks
(on an 81 x 81 grid) and which goal the episode ends nearest.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from vpl import analysis, configs
from vpl.policy import evaluate as policy_evaluate, relabel

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A finished run of experiments/configs/policy.py.",
                    required=True)
flags.DEFINE_string("method", "vpl", "vpl or maxmin.")
flags.DEFINE_string("overrides", "{}", "Dotted config fields as JSON, e.g. "
                    '\'{"policy.num_users": 256}\'.')


def main(argv):
  del argv
  run = analysis.load_run(FLAGS.workdir)
  config = configs.with_overrides(run.config, json.loads(FLAGS.overrides))
  exp, name = run.data, FLAGS.method
  models = {n: (run.methods[n], run.models[n]) for n in run.models}
  spec = policy_evaluate.spec_from(config, exp.task.num_groups)
  data = policy_evaluate.offline_data(config, spec)
  actor, info = policy_evaluate.train_policy(name, config, exp, models, spec, data,
                                             policy_evaluate.reference_states(config))
  pos = policy_evaluate.heldout_rollouts(name, actor, config, exp, models, spec)
  group = exp.evaluated.group
  cond = relabel.representations(name, *models[name], exp.evaluated, exp.context_idx,
                                 len(spec.goals))
  fn = relabel.reward_fn(name, models[name][1], spec)
  g = np.linspace(-1, 1, 81)
  grid = jnp.asarray(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), jnp.float32)
  peak = np.asarray(grid)[np.asarray(jax.lax.map(lambda c: fn(grid, c), jnp.asarray(cond))
                                     ).argmax(1)]
  goals = np.asarray(spec.goals)
  nearest = lambda p: np.linalg.norm(p[:, None] - goals[None], axis=-1).argmin(1)
  closest = np.linalg.norm(pos - goals[group][:, None], axis=-1).min(1)
  failed = closest >= spec.success_radius
  right_peak = nearest(peak) == group
  print(f"{name}: success {1 - failed.mean():.3f} over {len(group)} users "
        f"({info['train_seconds']:.0f} s); failed with the reward peaked at their own goal: "
        f"{int((failed & right_peak).sum())}, at another goal: "
        f"{int((failed & ~right_peak).sum())}")
  print("group | episode ends nearest goal | reward peak's goal | closest approach")
  for i in np.flatnonzero(failed):
    print(f"{group[i]} | {nearest(pos[i, -1:])[0]} | {nearest(peak[i:i + 1])[0]} | "
          f"{closest[i]:.2f}")


if __name__ == "__main__":
  app.run(main)
