"""experiments/configs/compare.py and the comparison's reports: tasks, claims, tables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.configs import compare
from vpl import experiment, methods, report, train
from vpl.data import tasks
from vpl.models.vpl import ProductDecoder


@pytest.mark.parametrize("name", sorted(compare.TASKS))
def test_every_task_builds_with_k_and_j_from_its_groups(name):
  config = compare.get_config(f"task={name}")
  groups = tasks.PRESETS[name].num_groups
  task = experiment.build_task(config)
  assert task.num_groups == groups
  assert config.maxmin.num_clusters == groups
  assert config.pref.num_bases >= groups
  assert set(config.methods) <= set(methods.REGISTRY)


def test_unknown_task_names_the_choices():
  with pytest.raises(ValueError, match="ufp4"):
    compare.get_config("task=ufp3")


def _run(seed, accs, *, shares=(0.5, 0.5), oracle=1.0, ceiling=0.6, units=3):
  return dict(seed=seed, task="t", shares=list(shares), oracle_accuracy=oracle,
              btl_ceiling=ceiling, active_units={"vpl": units},
              methods={n: dict(heldout_accuracy=a) for n, a in accs.items()})


def test_claims_on_a_multi_group_task():
  runs = [_run(0, dict(btl=0.60, vpl=0.98, maxmin=0.99, pref=0.69)),
          _run(1, dict(btl=0.61, vpl=0.96, maxmin=0.99, pref=0.80))]
  claims = {c: ok for c, ok, _ in report.comparison_claims(runs)}
  assert claims == {"vpl >= BTL + 0.10": True, "maxmin >= BTL + 0.10": True,
                    "pref >= BTL + 0.10": False,  # 0.69 < 0.70 in seed 0
                    "VPL >= oracle - 0.03": False,  # 0.96 < 0.97 in seed 1
                    "PReF >= BTL - 0.005": True}


def test_pref_never_below_btl_claim():
  ok = report.comparison_claims([_run(0, dict(btl=0.95, pref=0.946), shares=(1.0,))])
  bad = report.comparison_claims([_run(0, dict(btl=0.95, pref=0.944), shares=(1.0,))])
  assert [(c, o) for c, o, _ in ok] == [("PReF >= BTL - 0.005", True)]
  assert [(c, o) for c, o, _ in bad] == [("PReF >= BTL - 0.005", False)]


def test_no_margin_claim_where_the_ceiling_leaves_no_room():
  runs = [_run(0, dict(btl=0.90, vpl=0.99), ceiling=0.95)]
  claims = [c for c, _, _ in report.comparison_claims(runs)]
  assert claims == ["VPL >= oracle - 0.03"]


def test_unimodal_claim_is_vpl_within_001_of_btl():
  ok = report.comparison_claims([_run(0, dict(btl=0.95, vpl=0.955), shares=(1.0,))])
  bad = report.comparison_claims([_run(0, dict(btl=0.95, vpl=0.935), shares=(1.0,))])
  assert [o for _, o, _ in ok] == [True] and [o for _, o, _ in bad] == [False]


def test_tasks_table_has_a_row_per_task_and_mean_std():
  table = report.tasks_table({"a": [_run(0, dict(btl=0.6, vpl=0.9)),
                                    _run(1, dict(btl=0.8, vpl=1.0), units=4)],
                              "b": [_run(0, dict(btl=0.7))]})
  lines = table.splitlines()
  assert lines[0] == "| task | BTL ceiling | btl | vpl | VPL active units |"
  assert lines[2] == "| a | 0.600 ± 0.000 | 0.700 ± 0.100 | 0.950 ± 0.050 | 3/4 |"
  assert lines[3].startswith("| b | 0.600 ± 0.000 | 0.700 ± 0.000 | - |")


def test_tasks_table_of_unseen_items_shows_dash_where_missing():
  a = _run(0, dict(btl=0.6, vpl=0.9))
  for name, acc in (("btl", 0.55), ("vpl", 0.85)):
    a["methods"][name]["unseen_items_accuracy"] = acc
  a["btl_ceiling_report"] = dict(unseen_items_accuracy=0.5)
  lines = report.tasks_table({"a": [a], "b": [_run(0, dict(btl=0.7))]},
                             "unseen_items_accuracy").splitlines()
  assert lines[2] == "| a | 0.500 ± 0.000 | 0.550 ± 0.000 | 0.850 ± 0.000 | 3 |"
  assert lines[3] == "| b | - | - | - | 3 |"
  assert "unseen items" in lines[-1]


def test_context_size_augmentation_masks_between_min_and_max(tiny_config):
  pool = train.make_pool(experiment.build_task(tiny_config).data)
  batch = methods.sample_sets(jax.random.key(0), pool, num_sets=400, num_context=6,
                              num_targets=4, target_mode="disjoint", min_context=2)
  sizes = np.asarray(batch["context"]["mask"]).sum(1)
  assert sizes.min() == 2 and sizes.max() == 6
  # The mask keeps a prefix: shown pairs first, hidden ones after.
  mask = np.asarray(batch["context"]["mask"])
  np.testing.assert_array_equal(mask, np.arange(6)[None] < sizes[:, None])
  assert "mask" not in methods.sample_sets(
      jax.random.key(0), pool, num_sets=4, num_context=6, num_targets=4,
      target_mode="disjoint")["context"]


def test_context_size_augmentation_needs_disjoint_targets(tiny_config):
  from conftest import edited
  with pytest.raises(ValueError, match="train.min_context = 2.*disjoint"):
    methods.make_method("vpl", edited(tiny_config, **{"train.min_context": 2,
                                                      "loss.target_mode": "context"}))


def test_product_decoder_is_an_inner_product_and_depends_on_z():
  dec = ProductDecoder(3, 2, (8,), 5, rngs=nnx.Rngs(0))
  s = jnp.array([[0.1, -0.4, 0.7]])
  z1, z2 = jnp.array([[1.0, 0.0]]), jnp.array([[-1.0, 0.5]])
  np.testing.assert_allclose(dec(s, z1), (dec.item(s) * dec.user(z1)).sum(-1), rtol=1e-6)
  assert abs(float(dec(s, z1)[0] - dec(s, z2)[0])) > 1e-4


def test_unknown_decoder_is_rejected(tiny_config):
  from conftest import edited
  model = methods.make_method("vpl", edited(tiny_config, **{"model.decoder": "film"}))
  with pytest.raises(ValueError, match="model.decoder = 'film'"):
    model.make_model(2, nnx.Rngs(0))


def test_claims_text_and_summary_files(tmp_path):
  text = report.claims_text([("a >= b", True, "1.000 >= 0.500"), ("c", False, "x")])
  assert text == "- holds: a >= b (1.000 >= 0.500)\n- FAILS: c (x)"
  report.write_summary(str(tmp_path), "table", [{"seed": 0}])
  assert (tmp_path / "summary.md").read_text() == "table\n"
  assert (tmp_path / "summary.json").read_text().startswith("[")


def test_compare_tasks_set_flag_parses_literals_and_strings():
  from experiments.cli import parse_sets  # compare_tasks itself defines absl flags
  got = parse_sets(["model.encoder=deepsets", "train.num_steps=10", "model.hidden=(8, 8)"])
  assert got == {"model.encoder": "deepsets", "train.num_steps": 10, "model.hidden": (8, 8)}
  with pytest.raises(ValueError, match="--set='model.encoder' is not FIELD=VALUE"):
    parse_sets(["model.encoder"])
