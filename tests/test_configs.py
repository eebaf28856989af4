"""experiments/configs: every config loads with its documented arguments and is runnable."""

import glob
import importlib
import os
import re
import sys

import ml_collections
import pytest

from conftest import REPO
from experiments.configs import args, default
from vpl import configs, experiment, methods, size_selection
from vpl.data import sources, tasks
from vpl.data.comparisons import check_enough_pairs, split_users

CONFIG_FILES = sorted(
    p for p in glob.glob(os.path.join(REPO, "experiments", "configs", "*.py"))
    if not p.endswith(("__init__.py", "args.py")))


def _documented_variants():
  """(file, arg) for every config and every ':arg' its docstring's commands use."""
  variants = []
  for path in CONFIG_FILES:
    name = os.path.basename(path)[:-3]
    module = importlib.import_module(f"experiments.configs.{name}")
    args = re.findall(rf"--config=experiments/configs/{name}\.py:(\S+)", module.__doc__ or "")
    variants += [(name, arg) for arg in args] or [(name, None)]
  return variants


VARIANTS = _documented_variants()


def test_every_config_file_is_covered():
  names = {name for name, _ in VARIANTS}
  assert {"default", "navigation", "tiny"} <= names
  assert ("navigation", "goals=2") in VARIANTS and ("navigation", "goals=10") in VARIANTS


@pytest.mark.parametrize("name, arg", VARIANTS)
def test_config_loads_locked_and_builds(name, arg):
  module = importlib.import_module(f"experiments.configs.{name}")
  # The docstring states the command, runtime and expected result (the house convention).
  for heading in ("Command:", "Runtime:", "Expected:"):
    assert heading in module.__doc__, heading
  config = module.get_config(arg) if arg is not None else module.get_config()
  assert isinstance(config, ml_collections.ConfigDict)
  assert config.is_locked
  with pytest.raises(AttributeError):
    config.not_a_field = 1
  assert isinstance(config.seed, int)
  for group in ("data", "model", "loss", "optim", "train", "eval"):
    assert group in config, group

  for method_name in config.methods:
    sized = config
    if size_selection.is_auto(config, method_name):  # each candidate size is a method
      field, candidates, _ = size_selection.auto_choice(config, method_name)
      sized = configs.with_overrides(config, {field: configs.lookup(config, candidates)[-1]})
    method = methods.make_method(method_name, sized)
    assert method.name == method_name
    # What fit and evaluation will check, checked now on a single device.
    assert config.train.checkpoint_every % config.train.steps_per_call == 0
    assert method.batch_axis_size % 8 == 0  # splits over 1, 2, 4 or 8 devices
  if not tasks.is_task(config.data.source):
    assert config.data.source in sources.LOADERS  # real rows: built by tests/test_sources.py
    return
  task = experiment.build_task(config)
  assert task.data.num_users == config.data.kwargs.num_users
  train_data, heldout = split_users(task.data, config.data.heldout_fraction, config.seed)
  check_enough_pairs(train_data, config.train.num_context + config.train.num_targets, "train")
  check_enough_pairs(heldout, config.eval.num_context + 1, "eval")


def test_navigation_goals_argument():
  from experiments.configs import navigation
  two, ten = navigation.get_config("goals=2"), navigation.get_config("goals=10")
  assert two.data.kwargs.num_goals == 2 and ten.data.kwargs.num_goals == 10
  assert experiment.build_task(ten).num_groups == 10
  assert ten.train.num_context == 16 and ten.model.latent_dim == 16
  assert navigation.get_config().data.kwargs.num_goals == 2  # the default


def test_cli_flags_override_the_config(monkeypatch):
  from absl import flags
  import experiments.main  # noqa: F401  (defines --workdir and --config)
  flag_values = flags.FLAGS

  def parse(*args):
    argv = ["main", *args]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads the overrides from sys.argv
    flag_values(argv)
    return flag_values

  try:
    parsed = parse("--workdir=/tmp/unused",
                   f"--config={REPO}/experiments/configs/navigation.py:goals=10",
                   "--config.seed=3", "--config.train.num_steps=7", "--config.loss.beta=0.5")
    config = parsed.config
    assert parsed.workdir == "/tmp/unused"
    assert config.seed == 3 and config.train.num_steps == 7 and config.loss.beta == 0.5
    assert config.data.kwargs.num_goals == 10  # the file's argument reached get_config
    assert config.is_locked
  finally:
    flag_values.unparse_flags()
  try:
    with pytest.raises((AttributeError, KeyError, flags.Error), match="not_a_field"):
      parse("--workdir=/tmp/unused", f"--config={REPO}/experiments/configs/tiny.py",
            "--config.not_a_field=1")
  finally:
    flag_values.unparse_flags()


def test_all_methods_lists_the_registry():
  assert sorted(default.ALL_METHODS) == sorted(methods.REGISTRY)


def test_the_argument_parser_names_key_value_and_choices():
  keys = dict(task=args.Key(choices=("a", "b")), n=args.Key(2, parse=int),
              flag=args.Key(False, parse=args.boolean), shares=args.Key((1.0,), parse=args.shares))
  assert args.parse("task=a", "x.py", **keys) == dict(task="a", n=2, flag=False, shares=(1.0,))
  got = args.parse("task=b,n=5,flag=true,shares=0.8/0.2", "x.py", **keys)
  assert got == dict(task="b", n=5, flag=True, shares=(0.8, 0.2))
  with pytest.raises(ValueError, match=r"x.py:task=c is not one of \['a', 'b'\]"):
    args.parse("task=c", "x.py", **keys)
  with pytest.raises(ValueError, match=r"unknown key 'tsk'; x.py takes task=a\|b, n=..."):
    args.parse("tsk=a", "x.py", **keys)
  with pytest.raises(ValueError, match=r"x.py needs task=..."):
    args.parse("n=3", "x.py", **keys)
  with pytest.raises(ValueError, match=r"x.py:n=three is not valid"):
    args.parse("task=a,n=three", "x.py", **keys)
  with pytest.raises(ValueError, match=r"x.py:flag=yes is not valid \(use true or false\)"):
    args.parse("task=a,flag=yes", "x.py", **keys)
