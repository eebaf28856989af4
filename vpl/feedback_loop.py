"""Feedback loops (echo chambers): users shown the best of N under their personal reward.

A trained VPL model serves held-out users of a linear embedding task (ufp, pets) for several
rounds. Each user holds an expressed preference `c` over the task's group rewards (the user's
reward of an item x is sum_k c_k r_k(x), with c on the unit sphere). Two kinds of users:
- genuine (stable): they express their group's reward (c = e_g) and are not moved by what
  they are shown;
- constructed: they hold no personal preference of their own, so their genuine preference is
  the population's shared one (c* = the normalised uniform mix). Their first expressed
  preference leans part way toward their group's (`lean`); a share of their answers is made
  from the order the options are shown in (`position_share`: the option shown first), and
  what they are shown moves them: after each round
      c <- normalise((1 - eta) c + eta * mean over shown items of d(x)),
  d(x) = (r_1(x), ..., r_G(x)) / |.|, the shown item's direction in preference space.
Each round every user answers `num_questions` of their own pairs twice, once in each order
(labels from c with Bradley-Terry temperature `temperature`); VPL reads those answers as the
context and infers z; the user is shown, for each of `num_prompts` fresh prompts, the best of
`num_candidates` items under the blended reward
    r = r_pop + k_u (r_user - r_pop),   k_u = 1 - s (1 - w_u),
the shrinkage of vpl/shrinkage.py (`user_weight` with the certainty below, and `shrink`).
s in [0, 1] is the knob (0: fully personal); w_u in [0, 1] is the user's weight: their
stability (`feedback.stability`: by default the posterior probability that their agreement
count across the two orders comes from a stable preference rather than a coin, a position-
driven answer flipping with the order; or 2 x agreement - 1, clipped), times their
certainty when `use_certainty`
(1 - the posterior's mean variance, clipped). r_pop is the population's reward: VPL's
reward averaged over training users' posterior means (every reward z-scored over fixed
reference items first, so users' rewards share one scale).
Measured per round: how far constructed users' expressed preferences are from their genuine
one (`drift`), how far their groups' mean expressed preferences are apart (`group_distance`,
mean over pairs of groups), their weight on their own group's reward over the others'
(`own_group_lean`), their mean expressed preference, and the accuracy of the blended reward on
genuine users' other pairs (their generator labels).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vpl import seeding, shrinkage


def stability(labels_UxQx2: np.ndarray, kind: str = "mixture") -> np.ndarray:
  """`[U]` stability from two answers (one per order) per question.

  `mixture` (default): the posterior probability of a stable preference under a stable-versus-
  coin mixture of the users' agreement counts (`shrinkage.stability_from_mixture`);
  `consistency`: 2 x agreement - 1, clipped (`shrinkage.stability_from_consistency`).
  """
  same_UxQ = labels_UxQx2[..., 0] == labels_UxQx2[..., 1]
  if kind == "mixture":
    return shrinkage.stability_from_mixture(same_UxQ.sum(-1), np.full(len(same_UxQ),
                                                                      same_UxQ.shape[-1]))
  if kind == "consistency":
    return shrinkage.stability_from_consistency(same_UxQ.mean(-1))
  raise ValueError(f"feedback.stability = {kind!r}; choose 'mixture' or 'consistency'.")


def unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def drift_step(c_UxG: np.ndarray, shown_UxPxG: np.ndarray, eta: float,
               moves_U: np.ndarray) -> np.ndarray:
  """Expressed preferences after a round: movers step `eta` toward the shown items' mean
  direction (then back onto the unit sphere); the others stay."""
  toward_UxG = unit(shown_UxPxG).mean(1)
  moved = unit((1 - eta) * c_UxG + eta * toward_UxG)
  return np.where(moves_U[:, None], moved, c_UxG)


def answer(c_UxG: np.ndarray, diff_UxQxG: np.ndarray, a_first_UxQ: np.ndarray,
           by_position_UxQ: np.ndarray, temperature: float, rng) -> np.ndarray:
  """`[U, Q]` labels (1: a preferred) of users with preferences c on pairs whose group reward
  differences are `diff`; a position-driven answer picks the option shown first."""
  margin = np.einsum("ug,uqg->uq", c_UxG, diff_UxQxG)
  if temperature > 0:
    own = rng.random(margin.shape) < 1 / (1 + np.exp(-margin / temperature))
  else:
    own = margin > 0
  return np.where(by_position_UxQ, a_first_UxQ, own).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Served:
  """What the loop needs from a trained VPL model (jitted, host arrays in and out)."""
  encode: Callable  # (a [U,N,D], b, label [U,N]) -> (mu [U,L], log_var [U,L])
  reward: Callable  # (s [U,M,D], z [U,L]) -> [U,M]
  population: Callable  # (s [M,D]) -> [M], reward averaged over the training users' z


def serve(model: nnx.Module, train_z_VxL: np.ndarray, reference_RxD: np.ndarray) -> Served:
  """Jitted encoder and rewards of a VPL model. Every reward is z-scored per latent over the
  reference items (a Bradley-Terry reward's offset and scale are arbitrary per z), so the
  rewards of different users, their mean (r_pop) and blends of them compare."""
  graphdef, params = nnx.split(model)
  ref = jnp.asarray(reference_RxD, jnp.float32)

  def scored(m, s_xMxD, z_xL):
    stats_xR = m.reward(jnp.broadcast_to(ref, z_xL.shape[:-1] + ref.shape), z_xL[..., None, :])
    raw = m.reward(s_xMxD, z_xL[..., None, :])
    return ((raw - stats_xR.mean(-1, keepdims=True))
            / jnp.maximum(stats_xR.std(-1, keepdims=True), 1e-6))

  @jax.jit
  def encode(params, a, b, label):
    return nnx.merge(graphdef, params).encoder(a, b, label)

  @jax.jit
  def reward(params, s_UxMxD, z_UxL):
    return scored(nnx.merge(graphdef, params), s_UxMxD, z_UxL)

  @jax.jit
  def population(params, s_MxD):
    m = nnx.merge(graphdef, params)
    z_VxL = jnp.asarray(train_z_VxL)
    return jax.lax.map(lambda z: scored(m, s_MxD, z), z_VxL, batch_size=32).mean(0)

  host = lambda f: (lambda *x: jax.device_get(f(params, *x)))
  return Served(host(encode), host(reward), host(population))


def simulate(served: Served, true_reward, heldout, *, constructed_U: np.ndarray, strength: float,
             rounds: int, eta: float, lean: float, position_share: float, temperature: float,
             num_questions: int, num_prompts: int, num_candidates: int, use_certainty: bool,
             num_groups: int, seed: int, stability_kind: str = "mixture") -> dict:
  """Runs the loop for one shrinkage strength; returns per-round lists (round 0 first).

  Args:
    served: the trained model (`serve`).
    true_reward: the task's `true_reward(s, k)`.
    heldout: the users served (`UserComparisons`); each has >= num_questions + 1 pairs.
    constructed_U: which users are constructed (the others are genuine).
    strength: s, the shrinkage knob.
    seed: the same seed gives every strength the same answers' noise, prompts and candidates.
  """
  rng = np.random.default_rng(seed)
  num_users = heldout.num_users
  group_U = heldout.group
  genuine_G = unit(np.ones(num_groups))
  own_UxG = np.eye(num_groups)[group_U]
  c_UxG = np.where(constructed_U[:, None], unit(genuine_G + lean * (own_UxG - genuine_G)),
                   own_UxG)
  target_UxG = np.where(constructed_U[:, None], genuine_G, own_UxG)
  attr = lambda s: np.stack([true_reward(s, k) for k in range(num_groups)], -1)
  q = num_questions
  a_q, b_q = heldout.a[:, :q], heldout.b[:, :q]
  diff_UxQxG = attr(a_q) - attr(b_q)
  a_e, b_e = heldout.a[:, q:], heldout.b[:, q:]
  eval_mask = heldout.mask[:, q:]
  eval_label = (np.einsum("ug,ukg->uk", own_UxG, attr(a_e) - attr(b_e)) > 0)
  genuine_U = ~constructed_U
  # The questions a constructed user answers by position: the same each round.
  by_pos_UxQ = np.zeros((num_users, q), bool)
  for u in np.flatnonzero(constructed_U):
    by_pos_UxQ[u, rng.permutation(q)[:round(position_share * q)]] = True
  out = {k: [] for k in ("drift", "group_distance", "own_group_lean", "mean_expressed",
                         "genuine_accuracy", "weight_genuine", "weight_constructed")}

  def record(c_UxG, acc, w_U):
    out["drift"].append(float(np.linalg.norm(c_UxG - target_UxG, axis=-1)[constructed_U]
                              .mean()))
    means = np.stack([c_UxG[constructed_U & (group_U == g)].mean(0)
                      for g in range(num_groups)])
    i, j = np.triu_indices(num_groups, 1)
    out["group_distance"].append(float(np.linalg.norm(means[i] - means[j], axis=-1).mean()))
    # Constructed users' weight on their own group's reward over the mean of the others'.
    own = c_UxG[np.arange(num_users), group_U]
    others = (c_UxG.sum(-1) - own) / (num_groups - 1)
    out["own_group_lean"].append(float((own - others)[constructed_U].mean()))
    out["mean_expressed"].append(c_UxG[constructed_U].mean(0).round(4).tolist())
    out["genuine_accuracy"].append(acc)
    out["weight_genuine"].append(float(w_U[genuine_U].mean()))
    out["weight_constructed"].append(float(w_U[constructed_U].mean()))

  for t in range(rounds + 1):
    a_first = rng.random((num_users, q)) < 0.5
    labels = np.stack([answer(c_UxG, diff_UxQxG, order, by_pos_UxQ, temperature, rng)
                       for order in (a_first, ~a_first)], -1)  # each question in both orders
    ctx_a = np.concatenate([a_q, a_q], 1)
    ctx_b = np.concatenate([b_q, b_q], 1)
    mu_UxL, log_var_UxL = served.encode(ctx_a, ctx_b, np.concatenate(
        [labels[..., 0], labels[..., 1]], 1))
    certainty_U = (shrinkage.certainty_from_spread(log_var_UxL) if use_certainty
                   else np.ones(len(labels)))
    stability_U = stability(labels, stability_kind)
    w_U = certainty_U * stability_U
    k_Ux1 = shrinkage.user_weight(certainty_U, stability_U, strength)[:, None]

    def blended(s_UxMxD):
      pop = served.population(s_UxMxD.reshape(-1, s_UxMxD.shape[-1])).reshape(
          s_UxMxD.shape[:2])
      return shrinkage.shrink(served.reward(s_UxMxD, mu_UxL), pop, k_Ux1)

    margin = blended(a_e) - blended(b_e)
    acc = float(((margin > 0) == eval_label)[genuine_U[:, None] & eval_mask].mean())
    record(c_UxG, acc, w_U)
    if t == rounds:
      break
    cands_MxD = rng.standard_normal((num_prompts * num_candidates, heldout.feature_dim))
    cands_MxD = cands_MxD.astype(np.float32)
    pop_M = served.population(cands_MxD)
    user_UxM = served.reward(np.broadcast_to(cands_MxD, (num_users,) + cands_MxD.shape),
                             mu_UxL)
    score_UxPxN = shrinkage.shrink(user_UxM, pop_M[None], k_Ux1).reshape(
        num_users, num_prompts, num_candidates)
    pick_UxP = score_UxPxN.argmax(-1)
    attr_PxNxG = attr(cands_MxD).reshape(num_prompts, num_candidates, num_groups)
    shown_UxPxG = attr_PxNxG[np.arange(num_prompts)[None], pick_UxP]
    c_UxG = drift_step(c_UxG, shown_UxPxG, eta, constructed_U)
  return out


def summary(runs: list[dict]) -> dict:
  """Per strength, per seed: the last round's drift, group distance and genuine accuracy; per
  shrunk strength, its drift over the unshrunk one's and its accuracy cost (0.0 is the
  reference; a run without it has none)."""
  out = {}
  for run in runs:
    ref = run["strengths"].get("0.0")
    for s, r in run["strengths"].items():
      row = dict(drift=r["drift"][-1], drift_round0=r["drift"][0],
                 group_distance=r["group_distance"][-1],
                 group_distance_round0=r["group_distance"][0],
                 genuine_accuracy=r["genuine_accuracy"][-1],
                 mean_genuine_accuracy=float(np.mean(r["genuine_accuracy"])),
                 weight_genuine=r["weight_genuine"][-1],
                 weight_constructed=r["weight_constructed"][-1])
      if ref is not None and s != "0.0":
        row["drift_ratio"] = row["drift"] / ref["drift"][-1]
        row["accuracy_cost"] = ref["genuine_accuracy"][-1] - row["genuine_accuracy"]
        row["mean_accuracy_cost"] = float(np.mean(ref["genuine_accuracy"])
                                          - np.mean(r["genuine_accuracy"]))
      out.setdefault(s, {})[str(run["seed"])] = row
  return out


def training_config(config):
  """The config VPL trains with: the run's, less the `feedback` group (so the simulation's
  settings can change without retraining)."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    del c["feedback"]
  c.lock()
  return c


def run_seed(config, workdir: str) -> dict:
  """Trains VPL once in `workdir` (resumable) and runs the loop for every strength in
  `config.feedback.strengths` with the same users, answers' noise, prompts and candidates."""
  from vpl import analysis, experiment  # the experiment layer, only when a run is made
  experiment.train_and_evaluate(training_config(config), workdir)
  run = analysis.load_run(workdir)
  f = config.feedback
  every = run.latents("vpl", users="all")
  train_ids = set(run.train_data.user_id.tolist())
  is_train = np.array([u in train_ids for u in every["user_id"]])
  train_z = every["mu"][is_train][:f.population_users]
  rng = seeding.rng(config.seed, "feedback_loop")
  reference = rng.standard_normal((f.reference_items, run.heldout.feature_dim))
  served = serve(run.models["vpl"], train_z, reference)
  heldout = run.heldout
  constructed = np.zeros(heldout.num_users, bool)
  constructed[rng.permutation(heldout.num_users)[
      :round(f.constructed_share * heldout.num_users)]] = True
  loop_seed = int(rng.integers(2**31))
  out = dict(seed=config.seed, num_users=int(heldout.num_users),
             num_constructed=int(constructed.sum()), strengths={})
  for s in f.strengths:
    out["strengths"][str(s)] = simulate(
        served, run.task.true_reward, heldout, constructed_U=constructed, strength=float(s),
        rounds=f.rounds, eta=f.eta, lean=f.lean, position_share=f.position_share,
        temperature=f.temperature, num_questions=f.num_questions, num_prompts=f.num_prompts,
        num_candidates=f.num_candidates, use_certainty=f.use_certainty,
        num_groups=run.task.num_groups, seed=loop_seed,
        stability_kind=f.get("stability", "mixture"))
  return out
