"""Turn a data source string (a glob of NanoAOD files or a flat table) into the main job's (SR, CR, description).

`load_source(source, options)` dispatches on the files that `source` names:
  - .root files whose tree (options["tree"], default "Events") holds NanoAOD branches (Photon_pt, ...):
    ganjax.data.nanoaod.read_nanoaod with the selection options below;
  - flat tables (.parquet/.pq, .csv, .h5/.hdf5 with h5py, .root flat TTree): ganjax.data.tables.read_table
    with a column mapping, then the regions: by a boolean column (options["region_column"]) or by the fake-ID
    thresholds (the same cuts as for NanoAOD, via nanoaod.region_cuts).
The diphoton columns (mgg, ptgg, ptgg_over_mgg, detagg, dphigg) are always recomputed from the two photons
(gjets.diphoton), as the main job does for the GANed events, so both sides use one definition.

`options` is a plain mapping (a dict or an ml_collections ConfigDict such as config.data). Only the keys of
DEFAULT_OPTIONS are read, so config.data can be passed whole; missing keys take their defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from ganjax.data import gjets, nanoaod, tables

# Every option with its default (the config.data.* fields; see docs/data_sources.md). The region thresholds
# and the NanoAOD selection take their defaults from nanoaod.Selection (which takes the thresholds from
# gjets.GJetsParams): each default is written once; configs/hgg.py repeats them (configs import nothing from
# ganjax) and a test checks that it agrees.
DEFAULT_OPTIONS: dict[str, Any] = {
    "format": "auto",            # auto | nanoaod | table  (auto: .root with Photon_pt in the tree -> nanoaod)
    "tree": "",                  # ROOT tree or HDF5 group/dataset ("": "Events" for NanoAOD, the only tree)
    "max_events": 0,             # NanoAOD: read at most this many events (0: all)
    **{f.name: f.default for f in dataclasses.fields(nanoaod.Selection)},  # regions, preselection, NanoAOD cuts
    # Flat tables only.
    "columns": "",               # {our name: file column} or "pho_pt=ph1_pt,fake_pt=ph2_pt" (unnamed: same name)
    "region_column": "",         # file column, nonzero = SR, zero = CR (no cuts then); "": split by fake ID
}

REQUIRED_TABLE_COLUMNS = gjets.PHOTON_COLUMNS + gjets.FAKE_COLUMNS
OPTIONAL_TABLE_COLUMNS = gjets.JET_COLUMNS + gjets.EVENT_COLUMNS
TABLE_CUTFLOW_STEPS = ("rows", "prompt_id", "preselection", "sr_or_cr", "sr", "cr")


def resolve_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
  """DEFAULT_OPTIONS updated by the known keys of `options` (a dict or a ConfigDict)."""
  if options is None:
    given = {}
  elif hasattr(options, "to_dict"):
    given = options.to_dict()
  else:
    given = dict(options)
  out = dict(DEFAULT_OPTIONS)
  out.update({k: v for k, v in given.items() if k in DEFAULT_OPTIONS})
  if out["format"] not in ("auto", "nanoaod", "table"):
    raise ValueError(f"data option format must be auto, nanoaod or table, got {out['format']!r}")
  for k in ("extra_columns", "prompt_flavours", "fake_flavours"):
    v = out[k]
    out[k] = tuple(s.strip() for s in v.split(",") if s.strip()) if isinstance(v, str) else tuple(v)
  clash = set(out["extra_columns"]) & set(gjets.ALL_COLUMNS)
  if clash:
    raise ValueError(f"data option extra_columns {sorted(clash)} clash with the table's own columns")
  return out


def parse_columns(columns: str | Mapping[str, str] | None) -> dict[str, str]:
  """{our name: file column} from a mapping or "ours=theirs,ours=theirs"; names checked against ours."""
  mapping = tables.parse_mapping(columns)
  diphoton = [k for k in mapping if k in gjets.DIPHOTON_COLUMNS]
  if diphoton:
    raise ValueError(f"data option columns maps {diphoton}: the diphoton columns are always recomputed from "
                     "the two photons (gjets.diphoton); map pho_* and fake_* instead")
  unknown = [k for k in mapping if k not in REQUIRED_TABLE_COLUMNS + OPTIONAL_TABLE_COLUMNS]
  if unknown:
    raise ValueError(f"data option columns: unknown column name(s) {unknown}; ours are "
                     f"{list(REQUIRED_TABLE_COLUMNS + OPTIONAL_TABLE_COLUMNS)}")
  return mapping


def _selection(opts: dict) -> nanoaod.Selection:
  fields = {f.name for f in dataclasses.fields(nanoaod.Selection)}
  return nanoaod.Selection(**{k: v for k, v in opts.items() if k in fields})


def _is_nanoaod(path: str, tree: str) -> bool:
  import uproot

  with uproot.open(path) as f:
    return tree in f and "Photon_pt" in f[tree].keys()


def _read_tables(files: list[str], opts: dict) -> dict[str, np.ndarray]:
  """Our columns (float32) and the extra columns of every file, concatenated."""
  mapping = parse_columns(opts["columns"])
  tree = opts["tree"] or None
  region = opts["region_column"]
  parts = []
  for path in files:
    available = set(tables.list_columns(path, tree))
    wanted = {c: mapping.get(c, c) for c in REQUIRED_TABLE_COLUMNS}
    for c in OPTIONAL_TABLE_COLUMNS:  # read when mapped (then it must exist) or present under our name
      if c in mapping or c in available:
        wanted[c] = mapping.get(c, c)
    extra = list(opts["extra_columns"]) + ([region] if region else [])
    missing = [f"{ours} (file column {theirs!r})" if ours != theirs else repr(ours)
               for ours, theirs in wanted.items() if theirs not in available]
    missing += [repr(c) for c in extra if c not in available]
    if missing:
      raise ValueError(f"{path}: column(s) {', '.join(missing)} not found; available columns: "
                       f"{sorted(available)}. Map ours to the file's with the data option columns "
                       "(e.g. 'pho_pt=ph1_pt,fake_pt=ph2_pt')")
    source_cols = list(dict.fromkeys(list(wanted.values()) + extra))
    raw = tables.read_table(path, columns=source_cols, tree=tree)
    part = {ours: raw[theirs].astype(np.float32) for ours, theirs in wanted.items()}
    for c in extra:
      part[c] = raw[c]
    parts.append(part)
  keys = set(parts[0])
  for path, p in zip(files, parts):
    if set(p) != keys:
      raise ValueError(f"{path}: has columns {sorted(p)} but {files[0]} has {sorted(keys)}")
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _table_events(files: list[str], opts: dict) -> tuple[dict, dict, str]:
  cols = _read_tables(files, opts)
  cols.update({k: v.astype(np.float32) for k, v in gjets.diphoton(
      *[cols[c].astype(np.float64) for c in ("pho_pt", "pho_eta", "pho_phi", "fake_pt", "fake_eta",
                                              "fake_phi")]).items()})
  n = len(cols["pho_pt"])
  region = opts["region_column"]
  where = files[0] if len(files) == 1 else f"{len(files)} files ({files[0]}, ...)"
  if region:
    is_sr = cols.pop(region) != 0
    if region in opts["extra_columns"]:
      cols[region] = is_sr
    cuts = {"prompt_id": np.ones(n, bool), "preselection": np.ones(n, bool), "sr_or_cr": np.ones(n, bool),
            "sr": is_sr, "cr": ~is_sr}
    how = f"regions by column {region!r} (no cuts)"
  else:
    cuts = nanoaod.region_cuts(cols, np.ones(n, bool), sr_id_min=opts["sr_id_min"],
                               cr_id_floor=opts["cr_id_floor"], prompt_id_min=opts["prompt_id_min"],
                               preselection=opts["preselection"])
    how = (f"SR: fake_id > {opts['sr_id_min']}, CR: fake_id in ({opts['cr_id_floor']}, {opts['sr_id_min']}], "
           f"pho_id > {opts['prompt_id_min']}, preselection={opts['preselection']}")
  cutflow = {"rows": n, **{k: int(m.sum()) for k, m in cuts.items()}}
  keep = cuts["sr_or_cr"]
  table = {k: v[keep] for k, v in cols.items()}
  table["is_sr"] = cuts["sr"][keep]
  flow = " -> ".join(f"{k} {cutflow[k]}" for k in TABLE_CUTFLOW_STEPS[:-2])
  mapping = parse_columns(opts["columns"])
  desc = (f"table {where}" + (f", columns {mapping}" if mapping else "") + f", {how}; cutflow: {flow}; "
          f"SR {cutflow['sr']}, CR {cutflow['cr']}")
  return table, cutflow, desc


def load_events(source: str, options: Mapping[str, Any] | None = None) -> tuple[dict, dict, str]:
  """(table with a boolean `is_sr`, cutflow, description) for a source; see the module docstring."""
  opts = resolve_options(options)
  files = nanoaod.resolve_paths(source)
  kind = opts["format"]
  if kind == "auto":  # decided by the first file (opening a NanoAOD tree costs ~0.4 s); others are checked
    first = files[0]
    kind = "nanoaod" if first.lower().endswith(".root") and _is_nanoaod(first, opts["tree"] or "Events") \
        else "table"
  if kind == "nanoaod":
    sel = _selection(opts)
    table, cutflow = nanoaod.nanoaod_events(files, tree=opts["tree"] or "Events", max_events=opts["max_events"],
                                            **dataclasses.asdict(sel))
    return table, cutflow, nanoaod.describe(files, sel, cutflow)
  return _table_events(files, opts)


def load_source(source: str, options: Mapping[str, Any] | None = None) -> tuple[dict, dict, str]:
  """(SR table, CR table, description) for `ganjax.hgg.run(..., regions=...)`.

  Args:
    source: a file, a glob ("data/*.root") of NanoAOD files or flat tables.
    options: a mapping with keys of DEFAULT_OPTIONS (others are ignored), e.g. config.data.
  Raises:
    ValueError naming the file and the branch/column for missing files, trees, branches or columns,
    NaN/inf values, or bad options; raised before anything heavy is computed.
  """
  table, _, description = load_events(source, options)
  sr, cr = gjets.split_regions(table)
  return sr, cr, description
