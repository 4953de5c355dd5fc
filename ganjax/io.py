"""Atomic writes of tables and JSON: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping

import numpy as np


def _atomic_path(path: str):
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  os.close(fd)
  return tmp


def write_json(path: str, obj: Any) -> None:
  """Write JSON atomically (numpy scalars and arrays are converted)."""

  def default(o):
    if isinstance(o, np.ndarray):
      return o.tolist()
    if isinstance(o, np.generic):
      return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")

  tmp = _atomic_path(path)
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=default)
  os.replace(tmp, path)


def write_parquet(path: str, columns: Mapping[str, np.ndarray],
                  metadata: Mapping[str, str] | None = None) -> None:
  """Write a dict of equal-length 1D arrays as a parquet table, atomically, with string metadata."""
  import pyarrow as pa
  import pyarrow.parquet as pq

  table = pa.table({k: np.asarray(v) for k, v in columns.items()})
  if metadata:
    table = table.replace_schema_metadata({str(k): str(v) for k, v in metadata.items()})
  tmp = _atomic_path(path)
  pq.write_table(table, tmp)
  os.replace(tmp, path)


def read_parquet(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Read a parquet table into (columns, metadata)."""
  import pyarrow.parquet as pq

  table = pq.read_table(path)
  meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
  return {name: table.column(name).to_numpy() for name in table.column_names}, meta
