"""Read a flat table (CSV, parquet, ROOT TTree) into a dict of 1D numpy columns, validated.

One entry point, `read_table`, for every real-data reader in ganjax. It selects and renames columns and
checks the input before any compute: a missing column, a non-numeric or jagged column, or a NaN/inf
raises a ValueError that names the file, the column and (for non-finite values) how many rows.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

_CSV = (".csv", ".csv.gz", ".txt")
_PARQUET = (".parquet", ".pq")
_ROOT = (".root",)


def _open_root_tree(path: str, tree: str | None):
  """The named TTree (or RNTuple) of a ROOT file; the only one if tree is None."""
  import uproot

  f = uproot.open(path)
  trees = sorted({k.split(";")[0] for k, cls in f.classnames().items() if cls in ("TTree", "ROOT::RNTuple")})
  if tree is None:
    if len(trees) != 1:
      raise ValueError(f"{path}: pass tree= (the file holds trees {trees})")
    tree = trees[0]
  if tree not in trees:
    raise ValueError(f"{path}: no TTree {tree!r}; the file holds trees {trees}")
  return f[tree]


def _read_columns(path: str, wanted: Sequence[str] | None, tree: str | None) -> dict[str, np.ndarray]:
  """Read the wanted source columns (all if None) after checking that they exist."""
  lower = path.lower()

  def check(available: Sequence[str]):
    missing = [c for c in (wanted or []) if c not in available]
    if missing:
      raise ValueError(f"{path}: column(s) {missing} not found; available columns: {list(available)}")

  if lower.endswith(_CSV):
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    check(table.column_names)
    names = list(wanted) if wanted is not None else table.column_names
    return {n: table.column(n).to_numpy() for n in names}
  if lower.endswith(_PARQUET):
    import pyarrow.parquet as pq

    available = pq.read_schema(path).names
    check(available)
    table = pq.read_table(path, columns=list(wanted) if wanted is not None else None)
    return {n: table.column(n).to_numpy() for n in table.column_names}
  if lower.endswith(_ROOT):
    t = _open_root_tree(path, tree)
    available = list(t.keys())
    check(available)
    names = list(wanted) if wanted is not None else available
    arrays = t.arrays(names, library="ak")
    out = {}
    for n in names:
      arr = arrays[n]
      if arr.ndim != 1:
        raise ValueError(f"{path}: column {n!r} is jagged ({arr.type}); read_table reads flat columns only")
      out[n] = np.asarray(arr.to_numpy())
    return out
  raise ValueError(f"{path}: unknown table format (expected {_CSV + _PARQUET + _ROOT})")


def read_table(path: str, columns: Sequence[str] | None = None, rename: Mapping[str, str] | None = None,
               tree: str | None = None) -> dict[str, np.ndarray]:
  """Read numeric flat columns of a CSV / parquet / ROOT file.

  Args:
    path: .csv, .parquet/.pq or .root file.
    columns: source column names to read (default: all columns).
    rename: {source name: new name}; every key must be a column that is read.
    tree: TTree name for ROOT files (optional when the file holds exactly one TTree).
  Returns:
    {name: 1D array} in the order of `columns` (or the file), renamed by `rename`.
  Raises:
    ValueError naming the file and column for a missing, non-numeric, jagged or non-finite column, or
    for an empty table.
  """
  if not os.path.exists(path):
    raise ValueError(f"{path}: file not found")
  rename = dict(rename or {})
  wanted = list(columns) if columns is not None else None
  if wanted is not None:
    unknown = [k for k in rename if k not in wanted]
    if unknown:
      raise ValueError(f"{path}: rename keys {unknown} are not among the selected columns {wanted}")
  cols = _read_columns(path, wanted, tree)
  if wanted is None:
    missing = [k for k in rename if k not in cols]
    if missing:
      raise ValueError(f"{path}: column(s) {missing} not found; available columns: {list(cols)}")
  out: dict[str, np.ndarray] = {}
  for name, arr in cols.items():
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
      raise ValueError(f"{path}: column {name!r} is not numeric (dtype {arr.dtype})")
    if arr.dtype.kind == "f":
      bad = int(np.count_nonzero(~np.isfinite(arr)))
      if bad:
        raise ValueError(f"{path}: column {name!r} has {bad} NaN/inf value(s) out of {arr.size} rows")
    out[rename.get(name, name)] = arr
  if not out or next(iter(out.values())).size == 0:
    raise ValueError(f"{path}: table is empty")
  return out
