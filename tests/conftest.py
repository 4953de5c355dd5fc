"""Test-wide JAX settings (CPU, fast compiles: the suite is compile-bound on 2 cores) and the one way tests
load a config: load_config("hgg:test", **{"train.epochs": 2})."""

import importlib.util
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(spec: str, **overrides):
  """configs/<method>.py:<preset> (spec "method:preset") with dotted-key overrides, locked like the CLI's."""
  method, _, preset = spec.partition(":")
  path = os.path.join(ROOT, "configs", f"{method}.py")
  module_spec = importlib.util.spec_from_file_location(f"configs_{method}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(preset or None)
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    if leaf not in node:
      raise KeyError(f"{spec}: no config key {key!r}")
    node[leaf] = value
  config.lock()
  return config
