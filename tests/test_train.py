"""vpl/train.py: a golden one-step regression, in-process kill-and-resume, input checks."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import assert_trees_equal, edited
from vpl import methods, seeding, train
from vpl.data.comparisons import UserComparisons
from vpl.experiment import build_task


@pytest.fixture(scope="module")
def tiny_task():
  from experiments.configs import tiny
  return build_task(tiny.get_config())


# Golden values of ONE training step on experiments/configs/tiny.py (seed 0, all users of the
# task) with optim.warmup_steps = 0 (so the first step's learning rate is 3e-3, not 0) and a
# constant beta (so the KL enters the VPL loss at step 0). Obtained once by running this
# very test's body and printing the values (CPU, jax 0.12.0, flax 0.12.12, optax 0.2.8);
# `loss` and `grad_norm` are the step's metrics at the initial parameters, `sum_abs` is
# sum |p| over all parameters after the step and `step_l1` is sum |p_after - p_init|.
# They must only change with an intentional change to the model, the loss, the
# initialisation, the batch sampler or the optimiser; update them then and say why. (Last
# updated when every random stream came to be derived from the seed by name, vpl/seeding.py:
# the task's data, the initial weights and the step keys all changed. vpl_deepsets,
# model.encoder = 'deepsets', was added later. Taking a and b through a network as one
# concatenated batch moved step_l1 by 1e-4: Adam's first step divides each gradient by its
# own size, and the gradient of a parameter that cancels in r(a) - r(b) was then float noise
# instead of exactly 0; the two are kept separate.)
GOLDEN = {
    "btl": dict(loss=0.684454083442688, grad_norm=0.14638084173202515,
                sum_abs=178.64009539035033, step_l1=3.5516292777028866, num_params=1185),
    "vpl_concat": dict(loss=0.6835653781890869, grad_norm=0.16624131798744202,
                       sum_abs=765.699761066564, step_l1=14.805866410511953, num_params=4937),
    "vpl": dict(loss=94.7090835571289, grad_norm=33.8603630065918,
                sum_abs=1123.5249283305116, step_l1=21.23426560904454, num_params=7112),
    "vpl_product": dict(loss=1.6222373247146606, grad_norm=0.7034158706665039,
                        sum_abs=1085.7079011526498, step_l1=21.046216058969094,
                        num_params=7048),
    "vpl_deepsets": dict(loss=1.871051549911499, grad_norm=1.0877280235290527,
                         sum_abs=934.2421460699206, step_l1=17.878924064536477, num_params=5992),
}
# The default VPL recipe (product decoder, 1 free nat per dimension) got its own entry when it
# became the default; `vpl_concat` is the paper's decoder without free bits, unchanged.
# When the linear path (model.decoder = "product_linear", loss.nonlinear_l2 = 3, beta = 0.1)
# became the default, the earlier default kept its entry as `vpl_product`, with its fields
# spelled out, and `vpl` got a new one (beta 0.1 there; its loss at the initial parameters is
# mostly the penalty, 3 x ||W_out||^2 of the 32 x 32 item output kernel; 64 more parameters:
# the linear path A, 2 x 32).
PRODUCT = {"model.decoder": "product", "loss.nonlinear_l2": 0.0, "loss.beta": 1.0}
VARIANTS = {"btl": ("btl", {}), "vpl": ("vpl", {}), "vpl_product": ("vpl", PRODUCT),
            "vpl_concat": ("vpl", {"model.decoder": "concat", "loss.free_bits": 0.0,
                                   "loss.nonlinear_l2": 0.0, "loss.beta": 1.0}),
            "vpl_deepsets": ("vpl", {"model.encoder": "deepsets", **PRODUCT})}
# Parameter counts by hand (weights + biases). BTL: 2-32-32-1 = 96 + 1056 + 33 = 1185.
# VPL: pair encoder 5-32-32-32 (2304), head 32-32-8 (1320); concat decoder 6-32-32-1 (1313);
# product decoder: item 2-32-32-32 (2208) and user 4-32-32 (1216). The deepsets encoder is
# one pair layer 5-32 (192) and a head 32-32-32-8 (2376): 1056 fewer than pairwise.


@pytest.mark.parametrize("variant", sorted(GOLDEN))
def test_golden_one_step(tiny_config, tiny_task, variant):
  name, fields = VARIANTS[variant]
  config = edited(tiny_config, **{"optim.warmup_steps": 0, "loss.beta_schedule": "constant",
                                  **fields})
  method = methods.make_method(name, config)
  prep = train.prepare(method, config, tiny_task.data)
  init = [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(
      prep.state["params"]))]
  state, metrics = prep.run(prep.state, prep.pool, prep.method_key, num_steps=1)
  after = [np.asarray(x, np.float64) for x in jax.tree.leaves(jax.device_get(state["params"]))]
  assert int(state["step"]) == 1
  got = dict(loss=float(metrics["loss"][0]), grad_norm=float(metrics["grad_norm"][0]),
             sum_abs=sum(np.abs(x).sum() for x in after),
             step_l1=sum(np.abs(x - y).sum() for x, y in zip(after, init)))
  want = GOLDEN[variant]
  for key, value in got.items():
    assert value == pytest.approx(want[key], rel=1e-5), key
  assert sum(x.size for x in after) == want["num_params"]


class _Stop(Exception):
  pass


def _resume_config(tiny_config, pooling="mean"):
  return edited(tiny_config, **{"train.num_steps": 100, "train.steps_per_call": 25,
                                "train.checkpoint_every": 50, "model.pooling": pooling})


@pytest.mark.parametrize("name, pooling", [("btl", "mean"), ("vpl", "mean"),
                                           ("vpl", "attention")])
def test_kill_and_resume_gives_bit_identical_params(tiny_config, tiny_task, tmp_path, name,
                                                    pooling):
  config = _resume_config(tiny_config, pooling)
  method = methods.make_method(name, config)
  full, info = train.fit(method, config, tiny_task.data, ckpt_dir=str(tmp_path / "a"))
  assert info["resumed_from"] is None and info["final_step"] == 100

  steps_seen = []

  def stop_after_first_checkpoint(step):
    steps_seen.append(step)
    if step == 50:  # checkpoint_every: the step-50 checkpoint has just been saved
      raise _Stop

  ckpt_b = str(tmp_path / "b")
  metrics_b = str(tmp_path / "metrics.jsonl")
  with pytest.raises(_Stop):
    train.fit(method, config, tiny_task.data, ckpt_dir=ckpt_b, metrics_path=metrics_b,
              on_chunk=stop_after_first_checkpoint)
  assert steps_seen == [25, 50]
  resumed, info = train.fit(method, config, tiny_task.data, ckpt_dir=ckpt_b,
                            metrics_path=metrics_b)
  assert info["resumed_from"] == 50 and info["final_step"] == 100
  assert info["train_seconds"] > 0
  assert_trees_equal(_params(resumed), _params(full))
  rows = [json.loads(line) for line in open(metrics_b)]
  assert [r["step"] for r in rows] == [25, 50, 75, 100]
  assert all(r["method"] == name and np.isfinite(r["loss"]) for r in rows)

  # A finished run resumes at its last step and trains no more.
  again, info = train.fit(method, config, tiny_task.data, ckpt_dir=ckpt_b)
  assert info["resumed_from"] == 100 and info["final_step"] == 100
  assert_trees_equal(_params(again), _params(full))


def _params(model):
  return jax.device_get(nnx.to_pure_dict(nnx.state(model)))


def test_fit_rejects_checkpoint_every_not_a_multiple(tiny_config, tiny_task, tmp_path):
  config = edited(tiny_config, **{"train.checkpoint_every": 30, "train.steps_per_call": 25})
  with pytest.raises(ValueError, match=r"train.checkpoint_every = 30 is not a multiple of "
                                       r"train.steps_per_call = 25"):
    train.fit(methods.make_method("vpl", config), config, tiny_task.data,
              ckpt_dir=str(tmp_path))


def test_fit_rejects_users_with_too_few_pairs(tiny_config, tiny_task, tmp_path):
  data = tiny_task.data
  mask = data.mask.copy()
  mask[3, 5:] = False  # user 3 keeps 5 pairs; tiny needs 4 context + 4 targets
  short = UserComparisons(**{**data.arrays(), "mask": mask})
  with pytest.raises(ValueError, match=r"1 user\(s\) have fewer pairs than train.num_context "
                                       r"\+ train.num_targets needs \(8\); e\.g\. user 3 has 5"):
    train.fit(methods.make_method("vpl", tiny_config), tiny_config, short,
              ckpt_dir=str(tmp_path))
  assert not os.listdir(tmp_path)  # nothing trained or saved


def test_fit_stops_on_a_non_finite_loss(tiny_config, tmp_path):
  # Features near float32's limit overflow in the first layer: the loss is NaN at step 0.
  from vpl.data import synthetic
  task = synthetic.didactic(num_users=10, pairs_per_user=12, seed=0)
  huge = UserComparisons(**{**task.data.arrays(), "a": task.data.a * 3e38})
  config = edited(tiny_config, **{"train.num_steps": 10, "train.steps_per_call": 5,
                                  "train.checkpoint_every": 5})
  with pytest.raises(FloatingPointError, match=r"btl: loss became nan at step 0\. Lower "
                                               r"optim.learning_rate \(now 0.003\)"):
    train.fit(methods.make_method("btl", config), config, huge, ckpt_dir=str(tmp_path))


def test_every_stream_of_every_seed_is_distinct(tiny_config):
  """Initial weights and step keys are separate streams; no stream of seed s is one of s+1's
  (as `seed + 1` offsets made them)."""
  names = list(seeding.STREAMS) + [(m, kind) for m in ("btl", "vpl", "pref", "maxmin")
                                   for kind in ("init", "steps")]
  drawn = {(s, n): seeding.derive(s, *n) for s in range(20) for n in names}
  assert len(set(drawn.values())) == len(drawn)
  assert all(0 <= v < 2**31 for v in drawn.values())
  assert seeding.derive(1, "vpl", "init") == drawn[(1, ("vpl", "init"))]  # stable
  c = edited(tiny_config, seed=3)
  assert train.init_seed(c, "vpl") != seeding.derive(3, "vpl", "steps")
  assert train.init_seed(c, "vpl") == seeding.derive(3, "vpl", "init")
  with pytest.raises(ValueError, match="needs a stream name"):
    seeding.derive(3)


def test_optimizer_warms_up_then_decays(tiny_config):
  # The first update, at learning rate 0, leaves the parameters unchanged.
  tx = train.make_optimizer(tiny_config.optim, 1000)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  grads = {"w": jnp.array([1.0, -2.0, 0.5])}
  updates, state = tx.update(grads, state, params)
  np.testing.assert_array_equal(updates["w"], 0.0)
  updates, state = tx.update(grads, state, params)
  lr_1 = tiny_config.optim.learning_rate / tiny_config.optim.warmup_steps
  # Adam's step is about lr * sign(g) once the moments are bias-corrected.
  np.testing.assert_allclose(-np.asarray(updates["w"]), lr_1 * np.sign([1, -2, 0.5]),
                             rtol=0.05)


@pytest.mark.parametrize("name", ["btl", "vpl"])
def test_bfloat16_pool_halves_the_features_and_trains_like_float32(tiny_config, tiny_task,
                                                                   name):
  data = tiny_task.data
  runs = {}
  for dtype in ("float32", "bfloat16"):
    config = edited(tiny_config, **{"data.device_dtype": dtype, "train.num_steps": 50})
    method = methods.make_method(name, config)
    prep = train.prepare(method, config, data)
    assert prep.pool["a"].dtype == (jnp.bfloat16 if dtype == "bfloat16" else jnp.float32)
    state, metrics = prep.run(prep.state, prep.pool, prep.method_key, num_steps=50)
    runs[dtype] = (prep.pool["a"].nbytes, np.asarray(metrics["loss"]))
  assert runs["bfloat16"][0] * 2 == runs["float32"][0]
  # The same batches (features rounded to 8 bits of mantissa): the losses stay close.
  np.testing.assert_allclose(runs["bfloat16"][1], runs["float32"][1], rtol=0.05, atol=0.02)
