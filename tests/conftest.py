"""Test-wide JAX settings (CPU, fast compiles, one compilation cache: the suite is compile-bound on 2 cores)
and the one way tests load a config: load_config("hgg:test", **{"train.epochs": 2})."""

import importlib.util
import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole session: the pytest-xdist workers and the main-job
# subprocesses of the end-to-end tests compile the same small programs again and again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"ganjax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402

# numba compiles dcor's kernels when dcor is first imported (and caches them next to its sources): in a fresh
# environment two pytest-xdist workers doing that at once can abort one of them, so the first import is one
# worker at a time, behind a file lock.
import fcntl  # noqa: E402

with open(os.path.join(tempfile.gettempdir(), f"ganjax-tests-import-{os.getuid()}.lock"), "w") as _lock:
  fcntl.flock(_lock, fcntl.LOCK_EX)
  import dcor  # noqa: E402,F401

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


def tb_scalars(logdir) -> list[tuple[str, int, float]]:
  """Every scalar (tag, step, value) of the TensorBoard event files in `logdir`, read with tensorboardX's own
  protobuf (TFRecord framing: 8-byte length, 4-byte CRC, the Event, 4-byte CRC)."""
  import struct

  from tensorboardX.proto import event_pb2
  out = []
  for name in sorted(os.listdir(logdir)):
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      out += [(v.tag, int(event.step), float(v.simple_value)) for v in event.summary.value]
      i += 12 + n + 4
  return out
