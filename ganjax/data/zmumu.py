"""Z -> mu mu on real CMS 2011A data: the analysis module of the analysis-specific GAN (paper Sec. 3).

Data: ganjax/data/cms2011a_zmumu.csv, 10,583 real CMS collision events of run 2011A with two muons and
60 < M_mumu < 120 GeV (columns Run, Event, pt1, eta1, phi1, Q1, dxy1, iso1, pt2, eta2, phi2, Q2, dxy2,
iso2; GeV and cm; iso is the muon's isolation sum in GeV). Provenance: CERN Open Data portal, CMS 2011A
derived dimuon CSV as used in HEP Software Foundation training material; licence CC0. Copied unchanged
from the project's shared data folder.

Features (Sec. 3): both muon four-momenta in Cartesian coordinates with the muon mass 0.1057 GeV,
rotated about the beam axis so that muon 2 has py = 0; py2 is then dropped. Muon 2 lies on +x after
the rotation, so px2 = pT2 and the azimuthal separation is phi(muon 1) in the rotated frame.
  reduced (7): px1 py1 pz1 E1 px2 pz2 E2, muons ordered by pT (muon 1 = leading), all events.
  full   (11): reduced + iso1 iso2 dxy1 dxy2, muons ordered by charge (muon 1 = mu+, App. A "ordering"):
               the charges are carried by the ordering and need no generated discrete output. Only
               opposite-sign pairs can be ordered by charge, so the full model uses them (10,227 events;
               the 356 same-sign pairs, 3.4%, are dropped, as a Z analysis would). With
               charges='smear' instead, Q1, Q2 are kept as discrete features (Gaussian smearing + floor,
               App. A) with pT ordering and all events, for comparison.
iso1/iso2 are 'zero_spike' features (exact zeros in 2/3 of the muons: the paper's sharp edge), dxy are
'asinh' features (a 1 mm core with tails to 178 cm).
"""

from __future__ import annotations

import os
from typing import Mapping

import jax.numpy as jnp
import numpy as np

from ganjax.data import tables

MUON_MASS = 0.1057  # GeV
CSV_PATH = os.path.join(os.path.dirname(__file__), "cms2011a_zmumu.csv")
RAW_COLUMNS = ("pt1", "eta1", "phi1", "Q1", "dxy1", "iso1", "pt2", "eta2", "phi2", "Q2", "dxy2", "iso2")
REDUCED = ("px1", "py1", "pz1", "E1", "px2", "pz2", "E2")
FULL = REDUCED + ("iso1", "iso2", "dxy1", "dxy2")
MLL_WINDOW = (60.0, 120.0)  # the selection that defines the CSV
Z_MASS = 91.1876            # GeV (PDG)
PEAK_SCALE = 5.0            # GeV: the +-5 GeV around M_Z that the peak terms look at


def cartesian(pt, eta, phi, mass: float = MUON_MASS):
  """(px, py, pz, E) from (pT, eta, phi) for a particle of the given mass (numpy)."""
  px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
  return px, py, pz, np.sqrt(px ** 2 + py ** 2 + pz ** 2 + mass ** 2)


def rotate(px1, py1, px2, py2):
  """Rotate both muons about z by -phi2 so that muon 2 has py = 0 (Sec. 3).

  Returns (px1', py1', px2', phi2): px2' = pT2 exactly, py2' = 0 by construction, and phi2 is kept
  so that `unrotate` inverts the map.
  """
  phi2 = np.arctan2(py2, px2)
  c, s = np.cos(phi2), np.sin(phi2)
  return px1 * c + py1 * s, -px1 * s + py1 * c, np.hypot(px2, py2), phi2


def unrotate(px1r, py1r, px2r, phi2):
  """Inverse of `rotate`: (px1, py1, px2, py2) in the lab frame (py2' = 0)."""
  c, s = np.cos(phi2), np.sin(phi2)
  return px1r * c - py1r * s, px1r * s + py1r * c, px2r * c, px2r * s


def order_muons(cols: Mapping[str, np.ndarray], first: np.ndarray) -> dict[str, np.ndarray]:
  """Swap muons 1 and 2 where `first` is False, so that muon 1 is the one selected by `first`."""
  out = {}
  for k, v in cols.items():
    if k[-1] in "12":
      other = k[:-1] + ("2" if k[-1] == "1" else "1")
      out[k] = np.where(first, v, cols[other])
    else:
      out[k] = v
  return out


def features_from_raw(raw: Mapping[str, np.ndarray], model: str = "reduced",
                      charges: str = "order") -> dict[str, np.ndarray]:
  """Raw CSV columns -> feature columns of the reduced or full model (plus phi2, the rotation angle)."""
  if model not in ("reduced", "full"):
    raise ValueError(f"model must be 'reduced' or 'full', got {model!r}")
  if charges not in ("order", "smear"):
    raise ValueError(f"charges must be 'order' or 'smear', got {charges!r}")
  raw = {k: np.asarray(v, np.float64) for k, v in raw.items()}
  if model == "full" and charges == "order":
    os_pair = raw["Q1"] * raw["Q2"] < 0
    raw = {k: v[os_pair] for k, v in raw.items()}
    ev = order_muons(raw, raw["Q1"] > 0)
  else:
    ev = order_muons(raw, raw["pt1"] >= raw["pt2"])
  px1, py1, pz1, e1 = cartesian(ev["pt1"], ev["eta1"], ev["phi1"])
  px2, py2, pz2, e2 = cartesian(ev["pt2"], ev["eta2"], ev["phi2"])
  px1r, py1r, px2r, phi2 = rotate(px1, py1, px2, py2)
  out = {"px1": px1r, "py1": py1r, "pz1": pz1, "E1": e1, "px2": px2r, "pz2": pz2, "E2": e2}
  if model == "full":
    out.update({k: ev[k] for k in ("iso1", "iso2", "dxy1", "dxy2")})
    if charges == "smear":  # discrete {0, 1} <-> Q in {-1, +1}
      out["Q1"] = (ev["Q1"] + 1) / 2
      out["Q2"] = (ev["Q2"] + 1) / 2
  out["phi2"] = phi2
  return out


def required_columns(model: str = "reduced", charges: str = "order") -> tuple[str, ...]:
  """The raw columns the features of `model` use: the muons' pt, eta, phi (reduced); + Q, iso, dxy (full)."""
  kin = ("pt1", "eta1", "phi1", "pt2", "eta2", "phi2")
  return kin if model == "reduced" else RAW_COLUMNS


def read_raw(path: str, columns: tuple[str, ...], mapping: str | Mapping[str, str] = "",
             tree: str = "") -> dict[str, np.ndarray]:
  """Our raw columns from a CSV / parquet / ROOT (flat TTree) file, renamed by `mapping` ({ours: file column}
  or "ours=theirs,..."); a missing column raises one ValueError naming the file, our name, the file's name
  and the available columns."""
  mapping = tables.parse_mapping(mapping) if isinstance(mapping, str) else dict(mapping)
  unknown = sorted(set(mapping) - set(RAW_COLUMNS))
  if unknown:
    raise ValueError(f"data.columns maps unknown name(s) {unknown}; ours are {list(RAW_COLUMNS)}")
  available = tables.list_columns(path, tree or None)
  wanted = {c: mapping.get(c, c) for c in columns}
  missing = [f"{ours} (file column {theirs!r})" if ours != theirs else repr(ours)
             for ours, theirs in wanted.items() if theirs not in available]
  if missing:
    raise ValueError(f"{path}: column(s) {', '.join(missing)} not found; available columns: {sorted(available)}. "
                     "Map ours to the file's with --config.data.columns='pt1=mu1_pt,eta1=mu1_eta,...'")
  raw = tables.read_table(path, columns=list(dict.fromkeys(wanted.values())), tree=tree or None)
  return {ours: np.asarray(raw[theirs]) for ours, theirs in wanted.items()}


def load(config) -> dict[str, np.ndarray]:
  """The feature table of config.model.name ('reduced' / 'full') with config.model.charges ('order' / 'smear')
  from config.data.source ('' = the packaged CSV; any CSV / parquet / ROOT file with these columns, renamed by
  config.data.columns, in config.data.tree), for the events inside config.data.mll_min < M_ll < mll_max.

  Only the columns the features use are read (the reduced model needs no Q, dxy, iso)."""
  d = config.data
  path = d.source or CSV_PATH
  raw = read_raw(path, required_columns(config.model.name, config.model.charges), d.columns, d.tree)
  f = features_from_raw(raw, config.model.name, config.model.charges)
  lo, hi = float(d.mll_min), float(d.mll_max)
  if not lo < hi:
    raise ValueError(f"data.mll_min={lo} must be below data.mll_max={hi}")
  keep = in_window(f, (lo, hi))
  if keep.sum() < 10:
    raise ValueError(f"{path}: {int(keep.sum())} of {keep.size} events have {lo} < M_ll < {hi} GeV; widen "
                     "data.mll_min / data.mll_max or check the columns' units (GeV) and mapping")
  return {k: v[keep] for k, v in f.items()}


# Derived quantities: jnp functions of the (rotated, physical) features, usable on data and on
# generated batches; those named in config.regression enter the generator loss (Eq. 2).

def mll(f):
  """Dimuon invariant mass from the Cartesian features (py2 = 0)."""
  e, px, py, pz = f["E1"] + f["E2"], f["px1"] + f["px2"], f["py1"], f["pz1"] + f["pz2"]
  m2 = e ** 2 - px ** 2 - py ** 2 - pz ** 2
  safe = jnp.where(m2 > 1e-6, m2, 1e-6)  # generated events can be unphysical (m2 < 0)
  return jnp.sqrt(safe)


def mll_peak(f):
  """M_ll compressed to +-PEAK_SCALE around M_Z, PEAK_SCALE tanh((M_ll - M_Z) / PEAK_SCALE) [GeV]: its mean and
  RMS (Eq. 2 terms on it) are set by the peak's core, not by the tails that dominate the RMS of M_ll itself."""
  return PEAK_SCALE * jnp.tanh((mll(f) - Z_MASS) / PEAK_SCALE)


def _p1(f):
  return jnp.sqrt(f["px1"] ** 2 + f["py1"] ** 2 + f["pz1"] ** 2 + 1e-12)


def _p2(f):
  return jnp.sqrt(f["px2"] ** 2 + f["pz2"] ** 2 + 1e-12)


def offshell1(f):
  """E1 - |p1| [GeV]: 0 up to m_mu^2 / 2E (< 1e-3 GeV) for a real muon. The generator produces E freely (the
  paper's 7 features), and off-shell muons smear M_ll (E off by 2% moves M_ll by ~1 GeV): Eq. 2 terms on it
  keep the generated muons on their mass shell."""
  return f["E1"] - _p1(f)


def offshell2(f):
  """E2 - |p2| [GeV] (see offshell1)."""
  return f["E2"] - _p2(f)


def ptll(f):
  """Transverse momentum of the dimuon system (the Z pT)."""
  return jnp.sqrt((f["px1"] + f["px2"]) ** 2 + f["py1"] ** 2)


def dphi(f):
  """Azimuthal separation phi1 - phi2 in [-pi, pi] (muon 2 lies on the x axis)."""
  d = jnp.arctan2(f["py1"], f["px1"]) - jnp.arctan2(jnp.zeros_like(f["px2"]), f["px2"])
  return jnp.arctan2(jnp.sin(d), jnp.cos(d))


def _pt1(f):
  return jnp.sqrt(f["px1"] ** 2 + f["py1"] ** 2)


def _pt2(f):
  return jnp.abs(f["px2"])


DERIVED = {
    "mll": mll,
    "mll_peak": mll_peak,
    "offshell1": offshell1,
    "offshell2": offshell2,
    "ptll": ptll,
    "dphi": dphi,
    "pt1": _pt1,
    "pt2": _pt2,
    "eta1": lambda f: jnp.arcsinh(f["pz1"] / jnp.maximum(_pt1(f), 1e-6)),
    "eta2": lambda f: jnp.arcsinh(f["pz2"] / jnp.maximum(_pt2(f), 1e-6)),
}

# Written next to the generated features in generated.parquet (GeV for mll, ptll, pt1, pt2).
OUTPUTS = ("mll", "ptll", "dphi", "pt1", "eta1", "pt2", "eta2")


def in_window(f, window: tuple[float, float] = MLL_WINDOW) -> np.ndarray:
  """The dataset's selection window[0] < M_ll < window[1] (GeV) of feature columns (data or generated)."""
  m = np.asarray(mll({k: np.asarray(v) for k, v in f.items()}))
  return (m > window[0]) & (m < window[1])
