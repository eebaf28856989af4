"""results.json's `stability` section: detection, the position effect, VPL's KL and shrinkage.

For a run on re-asked data (`data.reask.enabled`; vpl/data/reasked.py), per kind of held-out
user (genuine / non_attitude / constructed, the generator's truth):
- `group_shares.{train, heldout}.<kind>`: the share of those users in each group.
- `detector`: the consistency analysis of vpl/stability.py on every user's answers, scored
  against the truth: `non_attitude` users, `constructed` answers (re-asked questions
  answered by position) and `constructed_users`.
- `methods.<name>.<kind>`: (and `bayes_oracle`, the best any method can do from the same
  context, knowing the groups' rewards; `bayes_oracle_framing` also knows the share of
  answers made by position and their bias, evaluate.group_posterior) held-out accuracy of
  the prediction against the labels the users gave (`observed`), and of the user's own
  preference (the prediction without the tower on the targets: the framing is not part of
  it; the context keeps its conditions) against their genuine preference,
  the generator's P(a preferred) (`genuine`; `genuine_framed` scores the full prediction).
  A non-attitude answer is a coin, so `observed` is near 0.5 for every method on those users;
  `genuine` says whether the prediction is still the population's sensible one.
- `position_bias`: `true` = P(the option shown first is chosen | the user's rewards tie) in
  the training pool's answers (each weighted by its user's reliability when VPL or MaxMin
  reads it, model.reliability; `true_unweighted` counts every answer once, `true_weighted`
  by reliability), 0.5 + s * (first_bias - 0.5) with s the share of them given by position;
  `estimated` = the same rate from VPL's (else MaxMin's, else BTL's) bias tower
  (vpl/models/condition_bias.py: w_genuine / 2 + w_first, averaged over both orders;
  every method's in `per_method`); and beside them the share s and the tower's w_a + w_b.
- `mean_reliability`: with model.reliability = 'reask', the mean reliability w per kind of
  held-out user (vpl/reliability.py).
- `vpl_mean_kl` / `vpl_mean_variance`: the mean KL(q(z|C) || p(z)) and posterior variance of
  VPL per kind, with C each user's evaluation context; `bayes_group_kl` the same for the Bayes
  oracle's posterior over the generator's groups (the ideal inference without a
  "no opinion" hypothesis).
- `shrinkage`: VPL's accuracy per kind when each user's logits are blended with the
  population's (the prediction averaged over z ~ p(z)) by
  `vpl.shrinkage.user_weight(certainty, stability, strength)`; certainty = 1 - mean
  posterior variance, stability from the agreement of the context's own re-asked answers (1
  when the context re-asks nothing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vpl import evaluate, losses, shrinkage, stability
from vpl.data import reasked
from vpl.data.comparisons import UserComparisons
from vpl.models import condition_bias, latent_atoms

KINDS = stability.KINDS
STRENGTHS = (0.0, 0.5, 1.0)


def detector(truth: dict) -> dict:
  """The consistency classifier on every user's answers, against the generator's truth.

  `non_attitude` and `constructed_users` score users; `constructed` scores re-asked questions
  answered by position (the issue's "constructed (first-position) answers").
  """
  stats = stability.user_statistics(truth["rows"])
  kind = stability.classify(stats)
  true_kind = truth["user_kind"][np.searchsorted(truth["user_id"], stats["user_id"])]
  users = stability.detector_report(kind, true_kind)
  q = stats["questions"]
  true_q = np.array([truth["question_kind"][int(stats["user_id"][u]), int(p)] == 2
                     for u, p in zip(q["user"], q["pair_id"])], bool)
  return dict(non_attitude=users["non_attitude"], constructed_users=users["constructed"],
              constructed=stability.precision_recall(
                  stability.constructed_questions(stats, kind), true_q))


def _accuracy(p_UxK, y_UxK, where_UxK) -> float | None:
  pred = (np.asarray(p_UxK) > 0.5).astype(np.float64)
  correct = pred * y_UxK + (1 - pred) * (1 - y_UxK)
  n = where_UxK.sum()
  return float(correct[where_UxK].sum() / n) if n else None


def _nll(p_UxK, y_UxK, where_UxK) -> float | None:
  p = np.clip(np.asarray(p_UxK, np.float64), 1e-6, 1 - 1e-6)
  n = where_UxK.sum()
  return float(-(y_UxK * np.log(p) + (1 - y_UxK) * np.log1p(-p))[where_UxK].sum() / n) if n \
      else None


def per_kind(p_UxK, data: UserComparisons, target_mask, user_kind, p_genuine_UxK=None) -> dict:
  """Accuracy on each kind of user's targets: the prediction `p` against their labels
  (`observed`, and its NLL `observed_nll`: on a coin, a prediction confident either way
  costs more than log 2); the user's own preference without the bias tower (`p_genuine`,
  default `p`) against their genuine preference (`genuine`), and `p` against it
  (`genuine_framed`)."""
  p_gen = p_UxK if p_genuine_UxK is None else p_genuine_UxK
  out = {}
  for k, name in enumerate(KINDS):
    where = target_mask & (user_kind == k)[:, None]
    truth = data.true_pref is not None
    out[name] = dict(observed=_accuracy(p_UxK, data.label, where),
                     observed_nll=_nll(p_UxK, data.label, where),
                     genuine=_accuracy(p_gen, data.true_pref, where) if truth else None,
                     genuine_framed=_accuracy(p_UxK, data.true_pref, where) if truth else None,
                     num_users=int((user_kind == k).sum()), num_targets=int(where.sum()))
  return out


def group_shares(data: UserComparisons, user_kind) -> dict:
  """Per kind of user, the share of them in each of the generator's groups: a no-opinion
  user's group is a preference they never express, so their accuracy against it hangs on
  whether they fall in the group the population leans to."""
  if data.group is None or len(data.group) == 0 or (data.group < 0).any():
    return {}  # no groups known
  num = int(data.group.max()) + 1
  return {n: (np.bincount(data.group[user_kind == k], minlength=num) / (user_kind == k).sum()
              ).round(4).tolist() for k, n in enumerate(KINDS) if (user_kind == k).any()}


def true_position_rate(truth: dict, train: UserComparisons, first_bias: float,
                       weighted: bool = False) -> dict:
  """P(first shown chosen | tie) in the training pool's answers, and the share given by
  position (each slot's kind from the truth by user and question). With `weighted`, each
  answer counts by its user's reliability, as in VPL's likelihood (model.reliability)."""
  if train.pair_id is None:  # the clean twin: every answer genuine
    return dict(rate=0.5, share=0.0)
  kinds = truth["question_kind"]
  users = np.broadcast_to(train.user_id[:, None], train.mask.shape)[train.mask]
  kind = np.array([kinds[int(u), int(p)] for u, p in zip(users, train.pair_id[train.mask])])
  weight = np.ones(kind.shape)
  if weighted and train.reliability is not None:
    weight = np.broadcast_to(train.reliability[:, None], train.mask.shape)[train.mask]
  share = float((weight * (kind == 2)).sum() / weight.sum())
  return dict(rate=0.5 + share * (first_bias - 0.5), share=share)


def bayes_group_kl(data: UserComparisons, context_idx, shares, user_kind) -> dict:
  """Per kind, the mean KL(posterior over groups || shares) of the Bayes oracle: how far an
  ideal inference over the generator's groups moves from the prior on the same contexts."""
  post_UxG = evaluate.group_posterior(data, context_idx, shares)
  log_ratio = np.log(np.clip(post_UxG, 1e-300, 1)) - np.log(np.asarray(shares))[None]
  kl = (post_UxG * log_ratio).sum(1)
  return {n: float(kl[user_kind == k].mean()) for k, n in enumerate(KINDS)
          if (user_kind == k).any()}


def context_questions(data: UserComparisons, context_idx, user_kind) -> dict:
  """Per kind: mean distinct questions in a context, and the share of contexts that hold
  some question more than once (where a contradiction can be seen)."""
  if data.pair_id is None:
    return {}
  pid = np.sort(np.take_along_axis(data.pair_id, context_idx, 1), 1)
  distinct = 1 + (np.diff(pid, axis=1) != 0).sum(1)
  return {n: dict(distinct=float(distinct[user_kind == k].mean()),
                  reasked=float((distinct < pid.shape[1])[user_kind == k].mean()))
          for k, n in enumerate(KINDS) if (user_kind == k).any()}


def context_stability(data: UserComparisons, context_idx) -> np.ndarray:
  """`[U]` stability (vpl.shrinkage) from the agreement of re-asked answers in each context."""
  if data.pair_id is None:
    return np.ones(data.num_users)
  pid = np.take_along_axis(data.pair_id, context_idx, 1)
  label = np.take_along_axis(data.label, context_idx, 1) > 0.5
  same = np.triu(pid[:, :, None] == pid[:, None, :], 1)
  agree = same & (label[:, :, None] == label[:, None, :])
  with np.errstate(invalid="ignore"):
    consistency = agree.sum((1, 2)) / same.sum((1, 2))
  return shrinkage.stability_from_consistency(consistency)


def vpl_logits(model, data: UserComparisons, context_idx, *, users_per_call: int = 256,
               num_samples: int = 32, context_weight=None):
  """VPL's `(user logits, population logits [U, K], mu, log_var [U, L])`, before the tower.

  The population's logits are logit(E_{z ~ p(z)} sigmoid(r(a, z) - r(b, z))), the prediction
  for someone who has answered nothing, from `num_samples` fixed draws of the prior. With the
  atom prior (model.atom_prior) both are the atoms' averages, weighted by the posterior given
  the context and by the prior weights alone (vpl/models/latent_atoms.py).
  """
  graphdef, params = nnx.split(model)
  eps_SxL = jax.random.normal(jax.random.key(0), (num_samples, model.latent_dim))

  @jax.jit
  def run(params, context, a, b):
    m = nnx.merge(graphdef, params)
    mu, log_var = m.posterior(context)
    if getattr(m, "atoms", None) is not None:  # no answer read: mask 0, no reliability
      nobody = dict(a=context["a"], b=context["b"], label=context["label"],
                    mask=jnp.zeros(context["label"].shape, jnp.float32))
      return (latent_atoms.predict(m, context, dict(a=a, b=b))[0],
              latent_atoms.predict(m, nobody, dict(a=a, b=b))[0], mu, log_var)
    prior_mu, prior_log_var = m.prior()
    user = m.reward(a, mu[:, None]) - m.reward(b, mu[:, None])
    z_Sx1x1xL = (prior_mu + jnp.exp(0.5 * prior_log_var) * eps_SxL)[:, None, None]
    grow = lambda s_BxKxD: jnp.broadcast_to(s_BxKxD, (num_samples,) + s_BxKxD.shape)
    p_SxBxK = jax.nn.sigmoid(m.reward(grow(a), z_Sx1x1xL) - m.reward(grow(b), z_Sx1x1xL))
    p_BxK = jnp.clip(p_SxBxK.mean(0), 1e-6, 1 - 1e-6)
    return user, jnp.log(p_BxK) - jnp.log1p(-p_BxK), mu, log_var

  context = evaluate.gather_context(data, context_idx, context_weight)
  parts = [jax.device_get(run(params, {k: v[r] for k, v in context.items()},
                              data.a[r], data.b[r]))
           for r in (slice(s, s + users_per_call)
                     for s in range(0, data.num_users, users_per_call))]
  return tuple(np.concatenate(x) for x in zip(*parts))


def shrunk_p(model, data: UserComparisons, context_idx, strength: float,
             logits=None, context_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """VPL's P(a) `[U, K]` with every user's logits shrunk toward the population's (through
  the bias tower, and without it), and the weights `[U]`."""
  user, pop, _, log_var = logits if logits is not None else vpl_logits(
      model, data, context_idx, context_weight=context_weight)
  weight = shrinkage.user_weight(shrinkage.certainty_from_spread(log_var),
                                 context_stability(data, context_idx), strength)
  own = shrinkage.shrink(user, pop, weight)
  logit = own
  if data.condition is not None:
    logit = condition_bias.apply(model, jnp.asarray(own),
                                 dict(condition=np.maximum(data.condition, 0)))
  sigmoid = lambda x: np.asarray(jax.nn.sigmoid(jnp.asarray(x)))
  return sigmoid(logit), sigmoid(own), weight


def report(config, exp, models: dict) -> dict:
  """The `stability` section (see the module doc) for the trained `models` {name: (method,
  model)}."""
  truth, heldout = exp.truth, exp.evaluated
  user_kind, _ = reasked.kinds_of(truth, heldout)
  out = dict(settings=truth["settings"], clean_twin=truth["clean"], methods={},
             detector=None if truth["rows"] is None else detector(truth))
  towers = {}
  for name, (method, model) in models.items():
    p_a, _ = evaluate.predict_users(method, model, heldout, exp.context_idx,
                                    context_weight=exp.context_weight)
    p_own = None
    if getattr(model, "condition_bias", None) is not None:  # the preference without framing
      p_own, _ = evaluate.predict_users(method, model, heldout, exp.context_idx,
                                        context_weight=exp.context_weight, frame_targets=False)
    out["methods"][name] = per_kind(p_a, heldout, exp.target_mask, user_kind, p_own)
    if getattr(model, "condition_bias", None) is not None:
      towers[name] = condition_bias.position_effect(jax.device_get(
          model.condition_bias.theta[...]))
  if exp.task is not None and heldout.group_pref is not None:  # the reference from the context
    p_bayes = evaluate.bayes_oracle(heldout, exp.context_idx, exp.task.shares)
    out["methods"]["bayes_oracle"] = per_kind(p_bayes, heldout, exp.target_mask, user_kind)
    settings = truth["settings"]  # the same oracle, told how constructed answers are made
    if heldout.condition is not None:
      p_framed = evaluate.bayes_oracle(heldout, exp.context_idx, exp.task.shares, framing=(
          settings["constructed_questions"], settings["first_bias"]))
      out["methods"]["bayes_oracle_framing"] = per_kind(p_framed, heldout, exp.target_mask,
                                                        user_kind)
    out["bayes_group_kl"] = bayes_group_kl(heldout, exp.context_idx, exp.task.shares, user_kind)
  out["context_questions"] = context_questions(heldout, exp.context_idx, user_kind)
  out["group_shares"] = dict(train=group_shares(exp.train, reasked.kinds_of(truth, exp.train)[0]),
                             heldout=group_shares(heldout, user_kind))
  shown = next((n for n in ("vpl", "maxmin", "btl") if n in towers), next(iter(towers), None))
  # VPL and MaxMin weigh each user's answers by their reliability (model.reliability), so
  # their towers are fitted to the rate among the answers they trust (`true_weighted`, the
  # same as `true` for them); `true_unweighted` is the whole pool's, BTL's reference.
  rates = {w: true_position_rate(truth, exp.train, truth["settings"]["first_bias"], weighted=w)
           for w in (False, True)}
  true = rates[shown in ("vpl", "maxmin")]
  out["position_bias"] = dict(
      true=true["rate"], estimated=towers[shown]["first_rate"] if shown else None,
      true_unweighted=rates[False]["rate"], true_weighted=rates[True]["rate"],
      true_framing_share=true["share"],
      estimated_framing_share=towers[shown]["framing_share"] if shown else None,
      estimated_by=shown, per_method=towers,
      units="P(first-shown option chosen | the user's rewards tie)")
  if "vpl" in models:
    model = models["vpl"][1]
    logits = vpl_logits(model, heldout, exp.context_idx, context_weight=exp.context_weight)
    mu, log_var = logits[2], logits[3]
    prior_mu, prior_log_var = jax.device_get(model.prior())
    kl = np.asarray(losses.gaussian_kl(mu, log_var, prior_mu, prior_log_var)).sum(-1)
    var = np.exp(log_var).mean(-1)
    out["vpl_mean_kl"] = {n: float(kl[user_kind == k].mean())
                          for k, n in enumerate(KINDS) if (user_kind == k).any()}
    out["vpl_mean_variance"] = {n: float(var[user_kind == k].mean())
                                for k, n in enumerate(KINDS) if (user_kind == k).any()}
    if heldout.reliability is not None:  # model.reliability = 'reask' (vpl/reliability.py)
      out["mean_reliability"] = {n: float(heldout.reliability[user_kind == k].mean())
                                 for k, n in enumerate(KINDS) if (user_kind == k).any()}
    strengths = sorted(set(STRENGTHS) | {float(config.eval.get("shrinkage", 0.0))})
    out["shrinkage"] = {}
    for s in strengths:
      p, p_own, w = shrunk_p(model, heldout, exp.context_idx, s, logits)
      entry = per_kind(p, heldout, exp.target_mask, user_kind, p_own)
      for k, n in enumerate(KINDS):
        entry[n]["mean_weight"] = float(w[user_kind == k].mean()) if (
            user_kind == k).any() else None
      out["shrinkage"][str(s)] = entry
  return out
