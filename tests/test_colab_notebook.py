"""experiments/colab_tpu.ipynb: valid nbformat-4 JSON, written by its generator, every code cell compiles,
every ganjax name (and every repository file and attribute loaded by path) exists; the light cells run."""

import ast
import importlib
import importlib.util
import json
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "experiments", "colab_tpu.ipynb")


def _load(path):
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def nb():
  with open(NOTEBOOK) as f:
    return json.load(f)


def _python(cell) -> str:
  """A code cell as plain python: IPython `!shell` and `%magic` lines become `pass` (indentation kept)."""
  src = "".join(cell["source"])
  return re.sub(r"^(\s*)[!%].*$", r"\1pass", src, flags=re.M)


def _code(nb):
  return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_nbformat4_structure(nb):
  assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 0
  assert nb["metadata"]["kernelspec"]["language"] == "python"
  ids = [c["id"] for c in nb["cells"]]
  assert len(set(ids)) == len(ids)
  for c in nb["cells"]:
    assert c["cell_type"] in ("markdown", "code") and isinstance(c["metadata"], dict)
    assert isinstance(c["source"], list) and all(isinstance(s, str) for s in c["source"])
    if c["cell_type"] == "code":
      assert c["outputs"] == [] and c["execution_count"] is None
  tags = [t for c in _code(nb) for t in c["metadata"].get("tags", [])]
  assert tags.count("parameters") == 1 and "setup" in tags and "long" in tags


def test_generator_wrote_this_file():
  gen = _load(os.path.join(REPO, "experiments", "make_colab_notebook.py"))
  with open(NOTEBOOK) as f:
    assert f.read() == gen.render(), "run: python experiments/make_colab_notebook.py"


def test_cells_compile(nb):
  for i, c in enumerate(_code(nb)):
    compile(_python(c), f"<code cell {i}>", "exec")


def test_names_exist(nb):
  """Every `import ganjax...` / `from ganjax... import x`, every attribute used on such a module, and every
  load_file("path") module with the attributes used on it exist."""
  modules, used = {}, set()
  trees = [ast.parse(_python(c)) for c in _code(nb)]
  for tree in trees:
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        for a in node.names:
          if a.name.startswith("ganjax"):
            bound = a.name if a.asname else "ganjax"  # `import ganjax.x` binds ganjax; `as y` binds ganjax.x
            modules[a.asname or "ganjax"] = importlib.import_module(bound)
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ganjax"):
        parent = importlib.import_module(node.module)
        for a in node.names:
          obj = getattr(parent, a.name, None)
          if obj is None:  # a submodule not imported by its package
            obj = importlib.import_module(f"{node.module}.{a.name}")
          modules[a.asname or a.name] = obj
      elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "load_file"):
        path = node.value.args[0].value
        assert os.path.exists(os.path.join(REPO, path)), path
        modules[node.targets[0].id] = _load(os.path.join(REPO, path))
  for tree in trees:
    for node in ast.walk(tree):
      if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        assert hasattr(modules[node.value.id], node.attr), f"{node.value.id}.{node.attr}"
        used.add(f"{node.value.id}.{node.attr}")
  assert {"engine", "run_ganplify", "hgg", "gconfig", "hgg_config"} <= set(modules)
  assert {"engine.member_sharding", "hgg.run", "gconfig.get_config",
          "hgg_config.get_config"} <= used


def test_light_cells_run_at_test_size(nb, monkeypatch, capsys):
  """The parameters, devices/mesh and config cells with SMALL = True (no training, no install)."""
  monkeypatch.chdir(REPO)
  ns = {}
  for c in _code(nb):
    tags = c["metadata"].get("tags", [])
    if "setup" in tags or "long" in tags:
      continue
    exec(compile(_python(c).replace("SMALL = False", "SMALL = True"), "<cell>", "exec"), ns)
  out = capsys.readouterr().out
  assert ns["GANPLIFY_PRESET"] == "test" and ns["HGG_PRESET"] == "test"
  assert ns["config"].n_members % len(ns["devices"]) == 0
  assert ns["sharding"].mesh.axis_names == ("member",)
  assert "local devices" in out and "members (" in out
