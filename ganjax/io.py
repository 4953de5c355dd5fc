"""Atomic writes of tables and JSON: write to a temporary file beside the target, then rename.

In a multi-host run (jax.distributed) every process computes the same outputs; only the primary process
(jax.process_index() == 0) writes them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping

import numpy as np


def is_primary() -> bool:
  """True in a single-process run and on process 0 of a multi-host run."""
  import jax
  return jax.process_index() == 0


def _atomic_path(path: str):
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  os.close(fd)
  return tmp


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _commit(tmp: str, path: str) -> None:
  """Make a finished temporary file the target: ordinary permissions (0666 less the umask), its bytes on
  disk (fsync), then the rename, so a reader sees the old file or the whole new one, never a part."""
  os.chmod(tmp, 0o666 & ~_umask())
  with open(tmp, "rb+") as f:
    os.fsync(f.fileno())
  os.replace(tmp, path)
  try:
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
      os.fsync(dfd)
    finally:
      os.close(dfd)
  except OSError:
    pass


def remove_orphans(directory: str) -> int:
  """Remove the temporary files (.tmp-*) that a killed write left in `directory` and below; returns how many."""
  n = 0
  for root, _, files in os.walk(directory):
    for name in files:
      if name.startswith(".tmp-"):
        os.remove(os.path.join(root, name))
        n += 1
  return n


def write_json(path: str, obj: Any) -> None:
  """Write JSON atomically (numpy scalars and arrays are converted); primary process only."""
  if not is_primary():
    return

  def default(o):
    if isinstance(o, np.ndarray):
      return o.tolist()
    if isinstance(o, np.generic):
      return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")

  tmp = _atomic_path(path)
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=default)
  _commit(tmp, path)


def write_parquet(path: str, columns: Mapping[str, np.ndarray],
                  metadata: Mapping[str, str] | None = None) -> None:
  """Write a dict of equal-length 1D arrays as a parquet table, atomically, with string metadata; primary
  process only."""
  if not is_primary():
    return
  import pyarrow as pa
  import pyarrow.parquet as pq

  table = pa.table({k: np.asarray(v) for k, v in columns.items()})
  if metadata:
    table = table.replace_schema_metadata({str(k): str(v) for k, v in metadata.items()})
  tmp = _atomic_path(path)
  pq.write_table(table, tmp)
  _commit(tmp, path)


def read_parquet(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Read a parquet table into (columns, metadata)."""
  import pyarrow.parquet as pq

  table = pq.read_table(path)
  meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
  return {name: table.column(name).to_numpy() for name in table.column_names}, meta


ROOT_METADATA_DIR = "metadata"


def write_root(path: str, columns: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None,
               tree: str = "Events", basket_rows: int = 100_000) -> None:
  """Write equal-length 1D numeric columns as a ROOT TTree, atomically, with string metadata.

  Each metadata entry becomes a TObjString `metadata/<key>` in the same file, so ROOT reads it with
  `f->Get<TObjString>("metadata/ganjax_config")->GetString()` and uproot with
  `str(uproot.open(path)["metadata/ganjax_config"])`. Rows go in baskets of `basket_rows` entries.
  Primary process only.
  """
  if not is_primary():
    return
  import uproot

  arrays = {str(k): np.asarray(v) for k, v in columns.items()}
  if not arrays:
    raise ValueError(f"{path}: no columns to write")
  lengths = {k: v.shape for k, v in arrays.items()}
  n = len(next(iter(arrays.values())))
  bad = {k: s for k, s in lengths.items() if len(s) != 1 or s[0] != n}
  if bad:
    raise ValueError(f"{path}: columns must be 1D of equal length ({n} rows); got shapes {bad}")
  kinds = {k: v.dtype for k, v in arrays.items() if v.dtype.kind not in "biuf"}
  if kinds:
    raise ValueError(f"{path}: only numeric/bool columns fit a flat TTree; got dtypes {kinds}")
  meta = {str(k): str(v) for k, v in (metadata or {}).items()}
  odd = [k for k in meta if not k or any(c in k for c in "/;")]
  if odd:
    raise ValueError(f"{path}: metadata keys {odd} are not valid ROOT object names")
  tmp = _atomic_path(path)
  try:
    with uproot.recreate(tmp) as f:
      # mktree gives a TTree (assigning a dict would write an RNTuple, which older ROOT cannot read).
      t = f.mktree(tree, {k: v.dtype for k, v in arrays.items()}, title="ganjax")
      for start in range(0, max(n, 1), basket_rows):
        t.extend({k: v[start:start + basket_rows] for k, v in arrays.items()})
      for k, v in meta.items():
        f[f"{ROOT_METADATA_DIR}/{k}"] = v
    _commit(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def read_root(path: str, tree: str = "Events") -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Read a flat TTree and the metadata strings written by `write_root` into (columns, metadata)."""
  import uproot

  with uproot.open(path) as f:
    columns = f[tree].arrays(library="np")
    meta = {}
    if ROOT_METADATA_DIR in f:
      d = f[ROOT_METADATA_DIR]
      meta = {k.split(";")[0]: str(d[k]) for k, cls in d.classnames().items() if cls == "TObjString"}
  return dict(columns), meta


LOCK_NAME = ".ganjax.lock"


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def lock_workdir(workdir: str) -> None:
  """One run per workdir: workdir/.ganjax.lock holds the pid and host of the run using it, removed when that
  process exits. A second run exits at once naming the holder (BadInputError); the lock of a process that
  no longer runs on this host is taken over with a warning. The same process may lock again."""
  import atexit
  import socket
  import sys

  from ganjax.engine.errors import BadInputError

  if not is_primary():
    return
  path = os.path.join(workdir, LOCK_NAME)
  me = {"pid": os.getpid(), "host": socket.gethostname()}
  for _ in range(2):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      try:
        with open(path) as f:
          holder = json.load(f)
      except (OSError, ValueError):
        holder = {}
      if holder == me:
        return
      if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and _pid_alive(holder["pid"]):
        raise BadInputError(f"{workdir} is in use by another run (pid {holder['pid']} on {holder['host']}); "
                            "wait for it or use another --workdir")
      if holder.get("host") not in (None, me["host"]):
        raise BadInputError(f"{workdir} is locked by a run on host {holder['host']} (pid {holder.get('pid')}); "
                            f"if that run is over, remove {path}")
      print(f"ganjax: warning: taking over the stale lock of pid {holder.get('pid')} in {workdir}",
            file=sys.stderr, flush=True)
      os.remove(path)
      continue
    with os.fdopen(fd, "w") as f:
      json.dump(me, f)

    def release(path=path, me=me):
      try:
        with open(path) as f:
          if json.load(f) == me:
            os.remove(path)
      except (OSError, ValueError):
        pass
    atexit.register(release)
    return
  raise BadInputError(f"could not lock {workdir}")


def claim_workdir(workdir: str, config) -> None:
  """Create and lock workdir (`lock_workdir`) and record config.json there; a workdir that holds another
  config's run is refused (BadInputError), so a resume never mixes two runs. Call it after the input
  checks."""
  from ganjax.engine.errors import BadInputError

  parent = os.path.dirname(os.path.abspath(workdir))
  while parent and not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise BadInputError(f"--workdir={workdir} exists and is not a directory")
  if parent and not os.path.isdir(parent):
    raise BadInputError(f"--workdir={workdir}: {parent} is a file, not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise BadInputError(f"--workdir={workdir} cannot be created: {e.strerror}") from e
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise BadInputError(f"--workdir={workdir} is not writable")
  lock_workdir(workdir)
  remove_orphans(workdir)
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    if stored != current:
      raise BadInputError(f"{workdir} holds a run with a different config ({path}); use a new --workdir or "
                          "the same config to resume")
  else:
    write_json(path, current)
