"""CMS NanoAOD -> the main job's event table: prompt photon, fake photon, its parent jet, SR/CR by photon ID.

The hgg-background-gan paper (Sec. 3) selects events with two photon candidates: one passes the photon ID
(the prompt photon), the other is a jet misidentified as a photon (the fake). The SR has the fake passing a
stringent ID threshold; the CR has it failing (but above a floor). This module builds that table from the
NanoAOD branches Photon_{pt,eta,phi,<id_branch>,jetIdx[,genPartFlav]}, Jet_{pt,eta,phi} and PV_npvs, with
the column names of ganjax/data/gjets.py, so `ganjax.hgg.run(config, workdir, regions=...)` runs on
real samples exactly as on the built-in simulator.

Everything is vectorised over events (awkward/numpy on flat arrays with offsets); files are read in chunks
of `step_size` so multi-GB samples need bounded memory.

Selection (in cutflow order; each count is returned in the cutflow dict):
  events            all events read
  two_photons       >= 2 photon candidates (pt > photon_pt_min)
  prompt_and_fake   the prompt/fake assignment exists:
                      mode="mc":   prompt = highest-pT candidate with Photon_genPartFlav in prompt_flavours
                                   (default 1: prompt photon), fake = highest-pT candidate with flavour in
                                   fake_flavours (default 0: unmatched, i.e. from a jet);
                      mode="data": among the two leading-pT candidates, prompt = the one with the higher ID
                                   (data_prompt="higher_id", ties -> the leading one) or the leading one
                                   (data_prompt="leading_pt"); fake = the other.
  fake_jet          the fake's parent jet: Jet_* at Photon_jetIdx. jetIdx = -1 (no jet stored, e.g. below
                    the NanoAOD jet threshold): no_jet="drop" drops the event; no_jet="nearest" takes the
                    jet nearest in dR (events without any jet are dropped).
  prompt_id         prompt ID > prompt_id_min
  preselection      (if preselection=True) the H->gamma gamma-like diphoton preselection of gjets.preselection:
                    100 < mgg < 180, pT_lead/m > 1/3, pT_sublead/m > 1/4, both in the ECAL acceptance
  sr_or_cr          fake ID > cr_id_floor
  sr / cr           SR: fake ID > sr_id_min; CR: cr_id_floor < fake ID <= sr_id_min
n_jets counts jets with pt > jet_pt_min, |eta| < jet_eta_max and dR(jet, prompt photon) > jet_prompt_dr
(AK4 jets cluster the prompt photon too; jet_prompt_dr = 0 counts every jet). n_vtx = PV_npvs. The diphoton
columns are computed from the two photons with gjets.diphoton (massless), as the main job does for GANed
events.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Sequence

import numpy as np

from ganjax.data import gjets

BASE_BRANCHES = ("Photon_pt", "Photon_eta", "Photon_phi", "Photon_jetIdx", "Jet_pt", "Jet_eta", "Jet_phi",
                 "PV_npvs")
FLAVOUR_BRANCH = "Photon_genPartFlav"
CUTFLOW_STEPS = ("events", "two_photons", "prompt_and_fake", "fake_jet", "prompt_id", "preselection",
                 "sr_or_cr", "sr", "cr")


@dataclasses.dataclass(frozen=True)
class Selection:
  """Event selection of `read_nanoaod` (see the module docstring for the order and meaning)."""

  mode: str = "mc"                    # "mc": prompt/fake by genPartFlav; "data": by ID ordering
  id_branch: str = "Photon_mvaID"     # the photon ID score that defines SR/CR
  # The regions' thresholds default to the simulator's (gjets.GJetsParams), written there once.
  sr_id_min: float = gjets.GJetsParams.sr_id_min          # SR: fake ID > sr_id_min
  cr_id_floor: float = gjets.GJetsParams.cr_id_floor      # CR: cr_id_floor < fake ID <= sr_id_min
  prompt_id_min: float = gjets.GJetsParams.prompt_id_min  # prompt photon ID > prompt_id_min
  prompt_flavours: tuple = (1,)       # mc: Photon_genPartFlav values of the prompt photon
  fake_flavours: tuple = (0,)         # mc: Photon_genPartFlav values of the fake (0 = unmatched)
  data_prompt: str = "higher_id"      # data: "higher_id" or "leading_pt" of the two leading-pT candidates
  no_jet: str = "drop"                # fake without jetIdx: "drop" the event or take the "nearest" jet in dR
  photon_pt_min: float = 0.0          # photon candidates: pt > photon_pt_min
  jet_pt_min: float = 25.0            # n_jets: jets with pt > jet_pt_min ...
  jet_eta_max: float = 4.7            # ... and |eta| < jet_eta_max ...
  jet_prompt_dr: float = 0.4          # ... and dR(jet, prompt photon) > jet_prompt_dr (0: no cleaning)
  preselection: bool = True           # apply gjets.preselection (mass window, pT/m, acceptance)
  extra_columns: tuple = ()           # per-event branches copied as extra columns (e.g. "event", "genWeight")

  def __post_init__(self):
    object.__setattr__(self, "prompt_flavours", tuple(int(v) for v in self.prompt_flavours))
    object.__setattr__(self, "fake_flavours", tuple(int(v) for v in self.fake_flavours))
    object.__setattr__(self, "extra_columns", tuple(str(v) for v in self.extra_columns))
    problems = []
    if self.mode not in ("mc", "data"):
      problems.append(f"mode must be 'mc' or 'data', got {self.mode!r}")
    if self.data_prompt not in ("higher_id", "leading_pt"):
      problems.append(f"data_prompt must be 'higher_id' or 'leading_pt', got {self.data_prompt!r}")
    if self.no_jet not in ("drop", "nearest"):
      problems.append(f"no_jet must be 'drop' or 'nearest', got {self.no_jet!r}")
    if not self.cr_id_floor < self.sr_id_min:
      problems.append(f"need cr_id_floor < sr_id_min, got {self.cr_id_floor} and {self.sr_id_min}")
    both = set(self.prompt_flavours) & set(self.fake_flavours)
    if both:
      problems.append(f"flavours {sorted(both)} are both in prompt_flavours and fake_flavours")
    if self.mode == "mc" and not (self.prompt_flavours and self.fake_flavours):
      problems.append("mode='mc' needs non-empty prompt_flavours and fake_flavours")
    clash = set(self.extra_columns) & set(gjets.ALL_COLUMNS)
    if clash:
      problems.append(f"extra_columns {sorted(clash)} clash with the table's own columns")
    if problems:
      raise ValueError("invalid NanoAOD selection: " + "; ".join(problems))

  def branches(self) -> tuple[str, ...]:
    flav = (FLAVOUR_BRANCH,) if self.mode == "mc" else ()
    return tuple(dict.fromkeys(BASE_BRANCHES + (self.id_branch,) + flav + self.extra_columns))


# ----------------------------------------------------------------------------------------------------
# Vectorised helpers on jagged arrays (flat values + per-event counts).


def _flat(jagged) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(flat values, per-event counts, per-event start offsets) of a jagged awkward array."""
  import awkward as ak

  counts = np.asarray(ak.num(jagged, axis=1), np.int64)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  return np.asarray(ak.to_numpy(ak.flatten(jagged, axis=1))), counts, starts


def _take(values: np.ndarray, starts: np.ndarray, idx_N: np.ndarray, ok_N: np.ndarray) -> np.ndarray:
  """values[event, idx] per event where ok (0 elsewhere), from flat values and start offsets."""
  out = np.zeros(len(idx_N), values.dtype if values.size else np.float64)
  out[ok_N] = values[starts[ok_N] + idx_N[ok_N]]
  return out


def _count(mask: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """Per event: how many entries are True."""
  event = np.repeat(np.arange(len(counts)), counts)
  return np.bincount(event[mask], minlength=len(counts)).astype(np.int64)


def _argmax_where(score: np.ndarray, mask: np.ndarray, counts: np.ndarray, starts: np.ndarray):
  """Per event: (local index of the max score among masked entries, whether any entry is masked)."""
  n = len(counts)
  event = np.repeat(np.arange(n), counts)
  s = np.where(mask, score.astype(np.float64), -np.inf)
  # Sort by (event, -score): the first entry of each event is its maximum.
  order = np.lexsort((-s, event))
  first = order[starts[counts > 0]]
  idx = np.zeros(n, np.int64)
  has = np.zeros(n, bool)
  idx[counts > 0] = first - starts[counts > 0]
  has[counts > 0] = mask[first]
  return idx, has


def _delta_r(eta1, phi1, eta2, phi2):
  return np.hypot(eta1 - eta2, gjets.wrap_phi(phi1 - phi2))


# ----------------------------------------------------------------------------------------------------
# Selection on in-memory arrays.


def region_cuts(cols: dict, base_N: np.ndarray, *, sr_id_min: float, cr_id_floor: float, prompt_id_min: float,
                preselection: bool) -> dict[str, np.ndarray]:
  """Cumulative masks after `base_N`: prompt_id, preselection, sr_or_cr, then the disjoint sr and cr.

  SR: fake ID > sr_id_min; CR: cr_id_floor < fake ID <= sr_id_min (paper Sec. 3: the CR object fails the
  ID); both need prompt ID > prompt_id_min and, if `preselection`, gjets.preselection.
  """
  prompt_ok = base_N & (cols["pho_id"] > prompt_id_min)
  presel = prompt_ok
  if preselection:
    presel = prompt_ok & gjets.preselection(cols, gjets.GJetsParams(prompt_id_min=prompt_id_min))
  keep = presel & (cols["fake_id"] > cr_id_floor)
  is_sr = keep & (cols["fake_id"] > sr_id_min)
  return {"prompt_id": prompt_ok, "preselection": presel, "sr_or_cr": keep, "sr": is_sr, "cr": keep & ~is_sr}


def select(events, sel: Selection = Selection(), origin: str = "<arrays>") -> tuple[dict, dict]:
  """Build the event table from NanoAOD-like arrays.

  Args:
    events: an awkward record array (or mapping) with the fields of `sel.branches()`, one entry per event.
    sel: the selection.
    origin: file name used in error messages.
  Returns:
    (table, cutflow): table = {column: 1D array} with the gjets columns (float32), the extra branches and a
    boolean `is_sr`, for events in SR or CR; cutflow = {step: events passing} in CUTFLOW_STEPS order.
  """
  pt, counts, starts = _flat(events["Photon_pt"])
  eta = _flat(events["Photon_eta"])[0]
  phi = _flat(events["Photon_phi"])[0]
  pid = _flat(events[sel.id_branch])[0]
  jet_idx = _flat(events["Photon_jetIdx"])[0].astype(np.int64)
  n = len(counts)
  cand = pt > sel.photon_pt_min
  two = _count(cand, counts) >= 2

  if sel.mode == "mc":
    flav = _flat(events[FLAVOUR_BRANCH])[0].astype(np.int64)
    i_p, has_p = _argmax_where(pt, cand & np.isin(flav, sel.prompt_flavours), counts, starts)
    i_f, has_f = _argmax_where(pt, cand & np.isin(flav, sel.fake_flavours), counts, starts)
    assigned = two & has_p & has_f
  else:
    i0, has0 = _argmax_where(pt, cand, counts, starts)
    second = cand.copy()
    second[starts[has0] + i0[has0]] = False
    i1, has1 = _argmax_where(pt, second, counts, starts)
    assigned = two & has0 & has1
    if sel.data_prompt == "higher_id":
      swap = _take(pid, starts, i1, assigned) > _take(pid, starts, i0, assigned)
    else:
      swap = np.zeros(n, bool)
    i_p, i_f = np.where(swap, i1, i0), np.where(swap, i0, i1)

  get = lambda values, idx: _take(values, starts, idx, assigned)
  cols = {"pho_pt": get(pt, i_p), "pho_eta": get(eta, i_p), "pho_phi": get(phi, i_p), "pho_id": get(pid, i_p),
          "fake_pt": get(pt, i_f), "fake_eta": get(eta, i_f), "fake_phi": get(phi, i_f),
          "fake_id": get(pid, i_f)}

  # The fake's parent jet (Photon_jetIdx; optionally the nearest jet in dR when there is none).
  jpt, jcounts, jstarts = _flat(events["Jet_pt"])
  jeta = _flat(events["Jet_eta"])[0]
  jphi = _flat(events["Jet_phi"])[0]
  j = get(jet_idx, i_f).astype(np.int64)
  has_jet = assigned & (j >= 0) & (j < jcounts)
  if sel.no_jet == "nearest":
    need = assigned & ~has_jet & (jcounts > 0)
    dr = _delta_r(jeta, jphi, np.repeat(cols["fake_eta"], jcounts), np.repeat(cols["fake_phi"], jcounts))
    nearest, any_jet = _argmax_where(-dr, np.repeat(need, jcounts), jcounts, jstarts)
    j = np.where(need & any_jet, nearest, j)
    has_jet = has_jet | (need & any_jet)
  cols["jet_pt"] = _take(jpt, jstarts, j, has_jet)
  cols["jet_eta"] = _take(jeta, jstarts, j, has_jet)
  cols["jet_phi"] = _take(jphi, jstarts, j, has_jet)

  # Event variables.
  counted = (jpt > sel.jet_pt_min) & (np.abs(jeta) < sel.jet_eta_max)
  if sel.jet_prompt_dr > 0:
    counted &= _delta_r(jeta, jphi, np.repeat(cols["pho_eta"], jcounts),
                        np.repeat(cols["pho_phi"], jcounts)) > sel.jet_prompt_dr
  cols["n_jets"] = _count(counted, jcounts)
  cols["n_vtx"] = np.asarray(events["PV_npvs"], np.int64)
  cols.update(gjets.diphoton(cols["pho_pt"].astype(np.float64), cols["pho_eta"].astype(np.float64),
                             cols["pho_phi"].astype(np.float64), cols["fake_pt"].astype(np.float64),
                             cols["fake_eta"].astype(np.float64), cols["fake_phi"].astype(np.float64)))

  cuts = region_cuts(cols, has_jet, sr_id_min=sel.sr_id_min, cr_id_floor=sel.cr_id_floor,
                     prompt_id_min=sel.prompt_id_min, preselection=sel.preselection)
  keep, is_sr = cuts["sr_or_cr"], cuts["sr"]
  cutflow = {"events": n, "two_photons": int(two.sum()), "prompt_and_fake": int(assigned.sum()),
             "fake_jet": int(has_jet.sum()), **{k: int(m.sum()) for k, m in cuts.items()}}

  table = {c: np.asarray(cols[c][keep], np.float32) for c in gjets.ALL_COLUMNS}
  source_of = {"pho_pt": "Photon_pt", "pho_eta": "Photon_eta", "pho_phi": "Photon_phi", "pho_id": sel.id_branch,
               "fake_pt": "Photon_pt", "fake_eta": "Photon_eta", "fake_phi": "Photon_phi",
               "fake_id": sel.id_branch, "jet_pt": "Jet_pt", "jet_eta": "Jet_eta", "jet_phi": "Jet_phi"}
  # Checked before the ID cuts: a NaN ID would otherwise fail every comparison and vanish silently.
  bad = {c: int(np.count_nonzero(~np.isfinite(cols[c][has_jet]))) for c in source_of}
  bad = {c: k for c, k in bad.items() if k}
  if bad:
    raise ValueError(f"{origin}: non-finite values in the photon/jet candidates of {int(has_jet.sum())} events: "
                     + ", ".join(f"{c} (branch {source_of[c]}): {k} events" for c, k in bad.items()))
  for b in sel.extra_columns:
    v = events[b]
    if getattr(v, "ndim", 1) != 1:
      raise ValueError(f"{origin}: extra branch {b!r} is not one value per event ({v.type})")
    table[b] = np.asarray(v)[keep]
  table["is_sr"] = is_sr[keep]
  return table, cutflow


# ----------------------------------------------------------------------------------------------------
# Files.


def resolve_paths(paths: str | Sequence[str]) -> list[str]:
  """Expand a path, a glob or a list of them into existing files (sorted within each glob)."""
  items = [paths] if isinstance(paths, str) else list(paths)
  files = []
  for p in items:
    p = os.path.expanduser(str(p))
    if glob.has_magic(p):
      hits = sorted(glob.glob(p))
      if not hits:
        raise ValueError(f"{p}: no files match this pattern")
      files += hits
    elif os.path.exists(p):
      files.append(p)
    else:
      raise ValueError(f"{p}: file not found")
  if not files:
    raise ValueError("no input files given")
  return files


def _check_file(path: str, tree: str, sel: Selection) -> int:
  """Open `path`, check the tree and every needed branch (jagged or flat as expected); returns its entries."""
  import uproot

  try:
    f = uproot.open(path)
  except Exception as e:  # not a ROOT file, truncated, ...
    raise ValueError(f"{path}: cannot be opened as a ROOT file ({e})") from e
  with f:
    if tree not in f:
      raise ValueError(f"{path}: no tree {tree!r}; the file holds {sorted(set(k.split(';')[0] for k in f.keys()))}")
    t = f[tree]
    available, n_entries = set(t.keys()), int(t.num_entries)
  for b in sel.branches():
    if b not in available:
      hint = ""
      if b == FLAVOUR_BRANCH:
        hint = " (generator truth, needed for mode='mc'; collision data has none: use mode='data')"
      elif b == sel.id_branch:
        ids = sorted(k for k in available if k.startswith("Photon_mva"))
        hint = f" (the photon ID branch, id_branch; photon ID branches in the file: {ids})"
      raise ValueError(f"{path}: branch {b!r} not found in tree {tree!r}{hint}")
  return n_entries


def nanoaod_events(paths: str | Sequence[str], *, tree: str = "Events", max_events: int = 0,
                   step_size: str | int = "100 MB", **selection) -> tuple[dict, dict]:
  """Read NanoAOD file(s) and select events: (table with `is_sr`, cutflow summed over files).

  Args:
    paths: a file, a glob ("data/*.root") or a list of them.
    tree: the events tree.
    max_events: read at most this many events in total (0: all).
    step_size: chunk size for uproot (bytes as "100 MB" or a number of entries).
    **selection: fields of `Selection` (mode, id_branch, sr_id_min, cr_id_floor, prompt_id_min, ...).
  """
  sel = Selection(**selection)
  files = resolve_paths(paths)
  for path in files:  # every file checked before any is read
    _check_file(path, tree, sel)
  import uproot

  parts, cutflow = [], dict.fromkeys(CUTFLOW_STEPS, 0)
  left = max_events if max_events > 0 else None
  for path in files:
    if left == 0:
      break
    with uproot.open(path) as f:
      for chunk in f[tree].iterate(list(sel.branches()), step_size=step_size, entry_stop=left, library="ak"):
        table, cf = select(chunk, sel, origin=path)
        parts.append(table)
        cutflow = {k: cutflow[k] + cf[k] for k in CUTFLOW_STEPS}
        if left is not None:
          left -= cf["events"]
  if not parts:  # files without entries
    empty = {c: np.zeros(0, np.float32) for c in gjets.ALL_COLUMNS}
    parts = [{**empty, **{b: np.zeros(0) for b in sel.extra_columns}, "is_sr": np.zeros(0, bool)}]
  table = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  return table, cutflow


def describe(files: Sequence[str], sel: Selection, cutflow: dict) -> str:
  """One line: what was read, how, and the cutflow."""
  where = files[0] if len(files) == 1 else f"{len(files)} files ({files[0]}, ...)"
  flow = " -> ".join(f"{k} {cutflow[k]}" for k in CUTFLOW_STEPS[:-2])
  return (f"NanoAOD {where}, mode={sel.mode}, {sel.id_branch}: SR > {sel.sr_id_min}, CR in "
          f"({sel.cr_id_floor}, {sel.sr_id_min}], prompt > {sel.prompt_id_min}; cutflow: {flow}; "
          f"SR {cutflow['sr']}, CR {cutflow['cr']}")


def read_nanoaod(paths: str | Sequence[str], *, tree: str = "Events", max_events: int = 0,
                 step_size: str | int = "100 MB", **selection) -> tuple[dict, dict, str]:
  """(SR table, CR table, description) from NanoAOD file(s); the description holds the cutflow.

  Arguments as `nanoaod_events`; the selection keywords are the fields of `Selection`. Raises ValueError
  naming the file and branch for a missing tree/branch, and naming the column for NaN/inf values.
  """
  sel = Selection(**selection)
  files = resolve_paths(paths)
  table, cutflow = nanoaod_events(files, tree=tree, max_events=max_events, step_size=step_size,
                                  **dataclasses.asdict(sel))
  sr, cr = gjets.split_regions(table)
  return sr, cr, describe(files, sel, cutflow)
