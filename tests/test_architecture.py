"""The module picture of the README's architecture section, checked on the source.

Walks every module of `vpl` and `experiments` (by parsing imports, importing nothing):
the data layer imports no method, trainer or experiment code, models import only losses,
configs import no JAX, and no two modules import each other through any chain.
"""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(package: str) -> dict[str, str]:
  out = {}
  for root, _, files in os.walk(os.path.join(REPO, package)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = path
  return out


MODULES = {**_modules("vpl"), **_modules("experiments")}


def _imports(path: str, module: str) -> set[str]:
  """Project modules imported anywhere in the file (function-level imports included)."""
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative import
        parts = module.split(".")[:-node.level]
        base = ".".join(parts + ([base] if base else []))
      names = [base] + [f"{base}.{a.name}" for a in node.names]
    for n in names:
      while n and n not in MODULES:
        n = n.rpartition(".")[0]
      # Importing a.b.c runs the packages a and a.b first: their imports count too.
      while n:
        if n != module and not module.startswith(n + "."):
          found.add(n)
        n = n.rpartition(".")[0]
  return found


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def _reach(start: str) -> set[str]:
  seen, todo = set(), [start]
  while todo:
    for n in GRAPH[todo.pop()]:
      if n not in seen:
        seen.add(n)
        todo.append(n)
  return seen


def test_the_walk_finds_the_packages_and_their_imports():
  assert {"vpl.train", "vpl.data.streaming", "vpl.methods.maxmin"} <= set(GRAPH)
  assert "vpl.data.comparisons" in GRAPH["vpl.data.streaming"] | _reach("vpl.data.streaming")
  assert "vpl.train" in GRAPH["vpl.experiment"]
  # A module's parent packages are imported with it (vpl.methods runs its __init__).
  assert "vpl.methods" in GRAPH["vpl.methods.vpl"] or "vpl.methods" in GRAPH["vpl.experiment"]


def test_train_uses_the_method_interface_not_the_methods():
  assert "vpl.method" in GRAPH["vpl.train"]
  assert not {n for n in _reach("vpl.train") if n.startswith("vpl.methods")}


def test_data_layer_knows_nothing_of_methods_training_or_experiments():
  forbidden = ("vpl.method", "vpl.train", "vpl.experiment", "vpl.models", "vpl.analysis",
               "vpl.evaluate", "experiments")
  for module in GRAPH:
    if module.startswith("vpl.data"):
      bad = sorted(n for n in _reach(module) if n.startswith(forbidden))
      assert not bad, f"{module} reaches {bad}"
      outside = {n for n in _reach(module) if not n.startswith("vpl.data")}
      assert outside <= {"vpl", "vpl.seeding"}, f"{module} reaches {sorted(outside)}"


def test_models_import_only_losses():
  for module in GRAPH:
    if module.startswith("vpl.models"):
      outside = {n for n in _reach(module) if not n.startswith("vpl.models")}
      assert outside <= {"vpl", "vpl.losses"}, f"{module} reaches {sorted(outside)}"


def test_no_import_cycles():
  for module in GRAPH:
    assert module not in _reach(module), f"{module} imports itself through a chain"


def test_configs_are_data_without_jax():
  for module, path in MODULES.items():
    if module.startswith("experiments.configs"):
      project = {n for n in _reach(module) if n.startswith("vpl")}
      assert project <= {"vpl", "vpl.seeding", "vpl.configs"} | {
          n for n in GRAPH if n.startswith("vpl.data")}
      text = open(path).read()
      assert "import jax" not in text and "from jax" not in text
      for dep in project:
        src = open(MODULES[dep]).read()
        assert "\nimport jax" not in src and "\nfrom jax" not in src, f"{module} -> {dep}"


def test_config_checks_and_the_cli_import_no_jax():
  # `experiments.cli` checks --config flags before anything heavy is imported.
  for module in ("vpl.config_checks", "experiments.cli"):
    for dep in {module} | {n for n in _reach(module) if n in MODULES}:
      src = open(MODULES[dep]).read()
      assert "\nimport jax" not in src and "\nfrom jax" not in src, f"{module} -> {dep}"
