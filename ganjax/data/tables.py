"""Read a flat table (CSV, parquet, ROOT TTree, HDF5) into a dict of 1D numpy columns, validated.

One entry point, `read_table`, for every real-data reader in ganjax. It selects and renames columns and
checks the input before any compute: a missing column, a non-numeric or jagged column, or a NaN/inf
raises a ValueError that names the file, the column and (for non-finite values) how many rows.
`list_columns` gives a file's column names without reading the data.

HDF5 (needs h5py): either a group holding one 1D dataset per column (the file's root, or the group named by
`tree=`), or one compound dataset with named fields (e.g. pandas `to_hdf(..., format="table",
data_columns=True)` writes one at "<key>/table").
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

_CSV = (".csv", ".csv.gz", ".txt")
_PARQUET = (".parquet", ".pq")
_ROOT = (".root",)
_HDF5 = (".h5", ".hdf5")
_FORMATS = _CSV + _PARQUET + _ROOT + _HDF5


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


def _h5_table(f, path: str, key: str | None):
  """The HDF5 node holding the table: a group of 1D datasets or a compound dataset."""
  import h5py

  node = f if key is None else f.get(key)
  if node is None:
    raise ValueError(f"{path}: no HDF5 group or dataset {key!r}; top-level keys: {sorted(f.keys())}")
  if isinstance(node, h5py.Dataset):
    if node.dtype.names is None:
      raise ValueError(f"{path}: HDF5 dataset {key!r} has no named fields; pass the group that holds one "
                       "dataset per column")
    return node
  if key is None and not any(isinstance(v, h5py.Dataset) and v.ndim == 1 and v.dtype.names is None
                             for v in node.values()):
    compound = [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names is not None]
    if len(compound) == 1:
      return node[compound[0]]
    raise ValueError(f"{path}: pass tree= (the HDF5 group or dataset holding the table); top-level keys: "
                     f"{sorted(node.keys())}")
  return node


def _h5_names(node) -> list[str]:
  import h5py

  if isinstance(node, h5py.Dataset):
    return list(node.dtype.names)
  return [k for k, v in node.items() if isinstance(v, h5py.Dataset) and v.dtype.names is None]


def _open_h5(path: str):
  try:
    import h5py
  except ImportError as e:
    raise ValueError(f"{path}: reading HDF5 needs the h5py package (pip install h5py)") from e
  return h5py.File(path, "r")


def _readable(fn):
  """A reader whose failures on an unreadable file (empty, truncated, not of its format) are one ValueError
  naming the file, instead of the format library's own exception."""
  import functools

  @functools.wraps(fn)
  def wrapped(path, *args, **kwargs):
    if os.path.exists(path) and os.path.isfile(path) and os.path.getsize(path) == 0:
      raise ValueError(f"{path}: the file is empty (0 bytes)")
    try:
      return fn(path, *args, **kwargs)
    except Exception as e:  # noqa: BLE001 - pyarrow, uproot and h5py each raise their own kinds
      if isinstance(e, ValueError) and str(e).startswith(str(path)):
        raise  # ours: it names the file already
      text = " ".join(str(e).split())[:200] or type(e).__name__
      raise ValueError(f"{path}: cannot be read as a {os.path.splitext(path)[1] or 'table'} file ({text})") from e

  return wrapped


@_readable
def list_columns(path: str, tree: str | None = None) -> list[str]:
  """Column names of a CSV / parquet / ROOT / HDF5 table, without reading its data."""
  if not os.path.exists(path):
    raise ValueError(f"{path}: file not found")
  lower = path.lower()
  if lower.endswith(_CSV):
    import pyarrow.csv as pacsv

    with pacsv.open_csv(path) as reader:
      return list(reader.schema.names)
  if lower.endswith(_PARQUET):
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)
  if lower.endswith(_ROOT):
    return list(_open_root_tree(path, tree).keys())
  if lower.endswith(_HDF5):
    with _open_h5(path) as f:
      return _h5_names(_h5_table(f, path, tree))
  raise ValueError(f"{path}: unknown table format (expected {_FORMATS})")


@_readable
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
  if lower.endswith(_HDF5):
    with _open_h5(path) as f:
      import h5py

      node = _h5_table(f, path, tree)
      available = _h5_names(node)
      check(available)
      names = list(wanted) if wanted is not None else available
      if isinstance(node, h5py.Dataset):  # compound dataset: one field per column
        rows = node.fields(names)[()]
        return {n: np.asarray(rows[n]) for n in names}
      out = {}
      for n in names:
        if node[n].ndim != 1:
          raise ValueError(f"{path}: column {n!r} has shape {node[n].shape}; read_table reads 1D columns only")
        out[n] = np.asarray(node[n][()])
      return out
  raise ValueError(f"{path}: unknown table format (expected {_FORMATS})")


def read_table(path: str, columns: Sequence[str] | None = None, rename: Mapping[str, str] | None = None,
               tree: str | None = None) -> dict[str, np.ndarray]:
  """Read numeric flat columns of a CSV / parquet / ROOT / HDF5 file.

  Args:
    path: .csv, .parquet/.pq, .root or .h5/.hdf5 file.
    columns: source column names to read (default: all columns).
    rename: {source name: new name}; every key must be a column that is read.
    tree: TTree name for ROOT files (optional when the file holds exactly one TTree); for HDF5 the group
      or compound dataset holding the table (optional, see the module docstring).
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
  if not cols or len(next(iter(cols.values()))) == 0:
    raise ValueError(f"{path}: table is empty (no rows)")
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


def parse_mapping(columns: str | Mapping[str, str] | None) -> dict[str, str]:
  """{our name: file column} from a mapping or the command-line form "ours=theirs,ours=theirs"."""
  if not columns:
    return {}
  if not isinstance(columns, str):
    return dict(columns.to_dict() if hasattr(columns, "to_dict") else columns)
  mapping = {}
  for item in columns.split(","):
    item = item.strip()
    if not item:
      continue
    if item.count("=") != 1 or not all(s.strip() for s in item.split("=")):
      raise ValueError(f"data option columns: {item!r} is not of the form ours=theirs (in {columns!r})")
    ours, theirs = (s.strip() for s in item.split("="))
    mapping[ours] = theirs
  return mapping
