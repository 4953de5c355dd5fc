"""Physics validation of a GANed control region against the simulated signal region (hgg paper, Sec. 3.2).

`validate(sr, cr, ganed, observables)` returns a JSON-ready dict with the evidence a physicist needs before
using the GANed CR as the background template:
- distance-correlation matrices of MC SR, MC CR and GANed CR (Fig. 7; the slides' 15x15 tables),
- the chi of Sec. 3.2, chi = mean_{i<j} sqrt(chi2_ij), for GANed CR vs MC SR and, as the baseline the GAN must
  beat, MC CR vs MC SR; the sqrt(chi2_ij) matrices and the pairs above 3, named,
- per observable S^2 (DCTR paper Eq. 15) and the KS statistic, GANed CR vs MC SR next to MC CR vs MC SR,
- the binned histograms behind Figs. 5 and 6, so `write_report` can redraw everything from the JSON alone.
Inputs are dicts of 1D columns (the main job's tables); bad input raises ValueError before any compute.
"""

from __future__ import annotations

import math
import os
import time
from typing import Mapping, Sequence

import numpy as np

from ganjax.metrics.correlation import columns_to_array, dcor_chi, dcor_matrix_array
from ganjax.metrics.onedim import observable_edges, onedim_table
from ganjax.metrics.separation import separation_power_floor

# The 15 observables of the slides' distance-correlation tables, in their order, with the column names of
# the gamma+jets simulator (ganjax.data.gjets): fake photon, prompt photon, event, diphoton.
HGG_OBSERVABLES = ("fake_id", "fake_pt", "fake_eta", "fake_phi",
                   "pho_id", "pho_pt", "pho_eta", "pho_phi",
                   "n_jets", "n_vtx", "ptgg_over_mgg", "ptgg", "mgg", "detagg", "dphigg")
# The generated object: Fig. 6's corner plot shows these.
FAKE_OBSERVABLES = HGG_OBSERVABLES[:4]
# What the generator changes in a CR event: the fake and the diphoton system recomputed from it.
GENERATED_OBSERVABLES = FAKE_OBSERVABLES + ("ptgg_over_mgg", "ptgg", "mgg", "detagg", "dphigg")
# Units of the axes (momenta and masses in GeV, angles in rad); LABELS carry them.
UNITS = {"fake_pt": "GeV", "pho_pt": "GeV", "ptgg": "GeV", "mgg": "GeV", "fake_phi": "rad", "pho_phi": "rad",
         "dphigg": "rad"}
# Fake-photon |eta| regions: barrel, the barrel-endcap gap (no photons reconstructed), endcap.
ETA_REGIONS = {"barrel": (0.0, 1.4442), "gap": (1.4442, 1.566), "endcap": (1.566, np.inf)}

_SYMBOLS = {
    "fake_id": r"ID$_\chi$", "fake_pt": r"$p_{T,\chi}$", "fake_eta": r"$\eta_\chi$",
    "fake_phi": r"$\phi_\chi$", "pho_id": r"ID$_\gamma$", "pho_pt": r"$p_{T,\gamma}$",
    "pho_eta": r"$\eta_\gamma$", "pho_phi": r"$\phi_\gamma$", "n_jets": r"$N_{jets}$",
    "n_vtx": r"$N_{vtx}$", "ptgg_over_mgg": r"$p_{T,\gamma\gamma}/m_{\gamma\gamma}$",
    "ptgg": r"$p_{T,\gamma\gamma}$", "mgg": r"$m_{\gamma\gamma}$", "detagg": r"$\Delta\eta_{\gamma\gamma}$",
    "dphigg": r"$\Delta\phi_{\gamma\gamma}$",
}
# Axis labels: the symbol with its unit in brackets (dimensionless observables have none).
LABELS = {k: v + (f" [{UNITS[k]}]" if k in UNITS else "") for k, v in _SYMBOLS.items()}

SAMPLES = {"sr": "MC SR", "cr": "MC CR", "ganed": "GANed CR"}


def _json_safe(obj):
  """Nested dict/list with numpy types -> Python types; nan/inf -> None (strict JSON)."""
  if isinstance(obj, dict):
    return {str(k): _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return _json_safe(obj.tolist())
  if isinstance(obj, np.generic):
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def _corner_histograms(sr: Mapping, ganed: Mapping, names: Sequence[str], n_bins: int) -> dict:
  """1D and 2D histograms (SR and GANed) of the corner observables on SR-quantile bins (Fig. 6)."""
  edges = {k: observable_edges(np.asarray(sr[k], np.float64), n_bins, (0.005, 0.995)) for k in names}
  out = {"names": list(names), "edges": {k: e.tolist() for k, e in edges.items()}, "pairs": {}, "diag": {},
         "n_events": {"sr": len(sr[names[0]]), "ganed": len(ganed[names[0]])}}
  for k in names:
    out["diag"][k] = {s: np.histogram(np.asarray(t[k], np.float64), edges[k])[0].tolist()
                      for s, t in (("sr", sr), ("ganed", ganed))}
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      # events outside the range are dropped but counted in n_events: densities and contour fractions
      # are relative to all events
      out["pairs"][f"{a}|{b}"] = {
          s: np.histogram2d(np.asarray(t[a], np.float64), np.asarray(t[b], np.float64),
                            [edges[a], edges[b]])[0].tolist() for s, t in (("sr", sr), ("ganed", ganed))}
  return out


def _kish(w) -> float:
  w = np.asarray(w, np.float64)
  return float(w.sum() ** 2 / np.sum(w ** 2))


def eta_regions(sr: Mapping, ganed: Mapping, cr: Mapping | None = None, column: str = "fake_eta",
                regions: Mapping[str, tuple[float, float]] = ETA_REGIONS) -> dict:
  """Fractions of events per |eta| region (barrel / gap / endcap) of MC SR, GANed CR (and MC CR), and the
  GANed-minus-SR difference in units of its binomial sigma, sqrt(p (1 - p) (1/n_SR + 1/n_GANed)) with the
  pooled fraction p (0 when both are 0)."""
  a = {k: np.abs(np.asarray(t[column], np.float64)) for k, t in (("sr", sr), ("ganed", ganed), ("cr", cr))
       if t is not None}
  out = {}
  for name, (lo, hi) in regions.items():
    # barrel |eta| < 1.4442, gap 1.4442 <= |eta| <= 1.566, endcap |eta| > 1.566 (edges as the acceptance's)
    inside = {k: ((v >= lo) if name == "gap" else (v > lo) if lo > 0 else (v >= lo))
              & ((v <= hi) if name == "gap" else (v < hi)) for k, v in a.items()}
    frac = {k: float(m.mean()) for k, m in inside.items()}
    n_s, n_g = len(a["sr"]), len(a["ganed"])
    pooled = (inside["sr"].sum() + inside["ganed"].sum()) / (n_s + n_g)
    sigma = float(np.sqrt(pooled * (1 - pooled) * (1 / n_s + 1 / n_g)))
    pull = (frac["ganed"] - frac["sr"]) / sigma if sigma > 0 else 0.0
    out[name] = {**frac, "sigma": sigma, "pull": float(pull)}
  out["max_abs"] = {k: float(v.max()) for k, v in a.items()}
  out["within_3_sigma"] = bool(all(abs(out[r]["pull"]) <= 3 for r in regions))
  return out


def validate(sr: Mapping[str, np.ndarray], cr: Mapping[str, np.ndarray], ganed: Mapping[str, np.ndarray],
             observables: Sequence[str] = HGG_OBSERVABLES, *, weight: str | None = None,
             n_batches: int = 20, seed: int = 0, threshold: float = 3.0, unbiased: bool = False,
             n_bins: int = 50, corner_observables: Sequence[str] | None = FAKE_OBSERVABLES,
             corner_bins: int = 40) -> dict:
  """Compare MC SR, MC CR and GANed CR (dicts of 1D columns) on `observables`; JSON-ready result.

  weight: optional per-event weight column, used by S^2, KS and the histograms (the distance correlations
  are unweighted). n_batches, seed: the subsamples behind sigma_ij of the chi (see
  ganjax.metrics.correlation.dcor_chi). threshold: sqrt(chi2_ij) above which a pair is listed.
  unbiased: use the bias-corrected squared dCor instead of dCor. corner_observables: the Fig. 6 set
  (None: no corner histograms).
  """
  observables = list(observables)
  if len(observables) < 2 or len(set(observables)) != len(observables):
    raise ValueError(f"need >= 2 distinct observables, got {observables}")
  corner = [k for k in (corner_observables or ()) if k in observables]
  t0 = time.perf_counter()
  x = {name: columns_to_array(cols, observables, SAMPLES[name])
       for name, cols in (("sr", sr), ("cr", cr), ("ganed", ganed))}
  if weight is not None:
    for name, cols in (("sr", sr), ("cr", cr), ("ganed", ganed)):
      if weight not in cols or len(cols[weight]) != len(x[name]):
        raise ValueError(f"{SAMPLES[name]}: weight column {weight!r} missing or not {len(x[name])} rows")
  dcor_full = {name: dcor_matrix_array(a, unbiased=unbiased) for name, a in x.items()}
  t1 = time.perf_counter()
  chi = {"ganed_vs_sr": dcor_chi(x["sr"], x["ganed"], observables, n_batches, seed, threshold, unbiased),
         "cr_vs_sr": dcor_chi(x["sr"], x["cr"], observables, n_batches, seed, threshold, unbiased)}
  t2 = time.perf_counter()
  rows, hists = onedim_table(sr, {"ganed": ganed, "cr": cr}, observables, weight=weight, n_bins=n_bins)
  for obs in observables:
    hists[obs]["sr"] = hists[obs].pop("reference")
  corner_hists = _corner_histograms(sr, ganed, corner, corner_bins) if len(corner) >= 2 else None
  t3 = time.perf_counter()

  n_ev = {name: (len(a) if weight is None else _kish(t[weight]))
          for (name, a), t in zip(x.items(), (sr, cr, ganed))}
  for r in rows:
    # S^2 of two samples of one distribution at these sizes: below it an S^2 is statistical noise
    obs = r["observable"]
    r["s2_floor"] = {k: separation_power_floor(hists[obs]["sr"]["counts"], n_ev[k], n_ev["sr"], seed=seed)
                     for k in ("ganed", "cr")}
  s2 = {r["observable"]: r["s2"] for r in rows}
  s2_check = {}
  for r in rows:
    if r["observable"] in GENERATED_OBSERVABLES:
      g, c, floor = r["s2"]["ganed"], r["s2"]["cr"], r["s2_floor"]["ganed"]["q"]
      s2_check[r["observable"]] = {"ganed": g, "cr": c, "floor": floor,
                                   "ok": bool(g <= c or g <= floor)}
  worst = chi["ganed_vs_sr"]["pairs_above_threshold"]
  summary = {
      "chi": chi["ganed_vs_sr"]["chi"],
      "chi_cr_vs_sr": chi["cr_vs_sr"]["chi"],
      "n_pairs": chi["ganed_vs_sr"]["n_pairs"],
      "n_pairs_above_threshold": len(worst),
      "worst_pair": worst[0]["pair"] if worst else None,
      "worst_sqrt_chi2": worst[0]["sqrt_chi2"] if worst else None,
      "max_s2_ganed": max(v["ganed"] for v in s2.values()),
      "max_s2_cr": max(v["cr"] for v in s2.values()),
  }
  if "fake_pt" in s2 and s2["fake_pt"]["cr"] > 0:
    summary["s2_fake_pt_ganed_over_cr"] = s2["fake_pt"]["ganed"] / s2["fake_pt"]["cr"]
  if s2_check:
    # every generated or recomputed observable: GANed no further from MC SR than MC CR, or within the floor
    summary["s2_check_ok"] = all(v["ok"] for v in s2_check.values())
    summary["s2_check_failed"] = [k for k, v in s2_check.items() if not v["ok"]]
  result = {
      "observables": observables,
      "labels": {k: LABELS.get(k, k) for k in observables},
      "n_events": {name: int(len(a)) for name, a in x.items()},
      "summary": summary,
      "dcor": {"estimator": "bias-corrected dCor^2" if unbiased else "dCor (Szekely et al. 2007, biased)",
               "note": "full samples; the chi uses batch means of equal-size subsamples",
               **{name: m.tolist() for name, m in dcor_full.items()}},
      "chi": chi,
      "onedim": rows,
      "s2_check": s2_check,
      "eta_regions": eta_regions(sr, ganed, cr) if "fake_eta" in observables else None,
      "histograms": hists,
      "corner": corner_hists,
      "timing_s": {"dcor_matrices": t1 - t0, "chi": t2 - t1, "onedim_and_histograms": t3 - t2},
  }
  return _json_safe(result)


def format_onedim_table(result: dict) -> str:
  """Markdown table: S^2 and KS of GANed CR vs MC SR next to MC CR vs MC SR, per observable."""
  lines = ["| observable | S^2 GANed CR | S^2 MC CR | KS GANed CR | KS MC CR |", "|---|---|---|---|---|"]
  for r in result["onedim"]:
    lines.append(f"| {r['observable']} | {r['s2']['ganed']:.2e} | {r['s2']['cr']:.2e} | "
                 f"{r['ks']['ganed']:.4f} | {r['ks']['cr']:.4f} |")
  return "\n".join(lines)


def format_summary(result: dict) -> str:
  """Markdown summary: chi, the named pairs above threshold and the 1D table."""
  s = result["summary"]
  g = result["chi"]["ganed_vs_sr"]
  out = [f"# Validation of the GANed CR against the MC SR",
         "", f"Events: {result['n_events']}", "",
         f"chi (GANed CR vs MC SR) = {s['chi']:.3f} over {s['n_pairs']} pairs "
         f"(MC CR vs MC SR: {s['chi_cr_vs_sr']:.3f}); null expectation sqrt(2/pi) = 0.80.",
         f"sigma_ij: {g['sigma_method']}: {g['n_batches']['sr']} (MC SR) and {g['n_batches']['cr']} "
         f"(GANed CR) batches of {g['batch_size']} events.", "",
         f"Pairs with sqrt(chi2_ij) > {g['threshold']:g}: {len(g['pairs_above_threshold'])}", ""]
  for p in g["pairs_above_threshold"]:
    out.append(f"- {p['pair'][0]} x {p['pair'][1]}: sqrt(chi2) = {p['sqrt_chi2']:.2f} "
               f"(d_SR = {p['d_sr']:.4f}, d_GANed = {p['d_cr']:.4f}, sigma = {p['sigma']:.4f})")
  out += ["", format_onedim_table(result), ""]
  return "\n".join(out)


def write_report(result: dict, outdir: str, experiment: str = "") -> list[str]:
  """Write validation.json, summary.md and the plots (Figs. 5, 6, 7 and the sqrt(chi2_ij) matrices) into
  outdir; returns the written paths. experiment: the label of real data ("CMS Open Data"; "" for simulation)."""
  from ganjax.io import write_json
  from ganjax.plots import validation as vplots

  os.makedirs(outdir, exist_ok=True)
  paths = [os.path.join(outdir, "validation.json"), os.path.join(outdir, "summary.md")]
  write_json(paths[0], result)
  tmp = paths[1] + ".tmp"
  with open(tmp, "w") as f:
    f.write(format_summary(result))
  os.replace(tmp, paths[1])
  labels = result["labels"]
  s2 = {r["observable"]: r["s2"] for r in result["onedim"]}
  for obs in result["observables"]:
    path = os.path.join(outdir, f"hist_{obs}.png")
    vplots.hist_ratio(result["histograms"][obs], labels[obs], path, SAMPLES, s2=s2[obs], unit=UNITS.get(obs),
                      experiment=experiment)
    paths.append(path)
  if result.get("corner"):
    paths.append(os.path.join(outdir, "corner.png"))
    vplots.corner(result["corner"], labels, paths[-1], ref_label=SAMPLES["sr"], other_label=SAMPLES["ganed"],
                  experiment=experiment)
  names = result["observables"]
  paths.append(os.path.join(outdir, "dcor_matrices.png"))
  vplots.matrices({SAMPLES[k]: result["dcor"][k] for k in ("sr", "ganed", "cr")},
                  [labels[k] for k in names], paths[-1], title="distance correlation")
  paths.append(os.path.join(outdir, "sqrt_chi2.png"))
  vplots.sqrt_chi2_matrices(
      {f"{SAMPLES['ganed']} vs {SAMPLES['sr']}": result["chi"]["ganed_vs_sr"],
       f"{SAMPLES['cr']} vs {SAMPLES['sr']}": result["chi"]["cr_vs_sr"]},
      [labels[k] for k in names], paths[-1])
  return paths
