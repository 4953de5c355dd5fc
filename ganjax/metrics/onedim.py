"""One-dimensional agreement of observables: separation power S^2 and the two-sample KS statistic.

S^2 is the DCTR paper's Eq. 15 (ganjax.metrics.separation); the KS statistic D = sup_t |F_1(t) - F_2(t)|
uses (optionally weighted) empirical CDFs. `onedim_table` compares each sample (e.g. GANed CR, MC CR) with a
reference (MC SR) on common bins, as the hgg paper's Fig. 5/6 do by eye.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import scipy.stats

from ganjax.metrics.separation import histogram_edges, separation_power


def _weights(x: np.ndarray, w: np.ndarray | None, name: str) -> np.ndarray:
  if w is None:
    return np.ones_like(x)
  w = np.asarray(w, np.float64).ravel()
  if w.shape != x.shape:
    raise ValueError(f"{name}: {w.shape[0]} weights for {x.shape[0]} values")
  if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
    raise ValueError(f"{name}: weights must be finite, non-negative and not all zero")
  return w


def ks_2samp(x1: np.ndarray, x2: np.ndarray, w1: np.ndarray | None = None,
             w2: np.ndarray | None = None) -> tuple[float, float]:
  """Two-sample KS statistic D = sup_t |F_1(t) - F_2(t)| with weighted ECDFs, and its asymptotic p-value.

  Unweighted this is scipy.stats.ks_2samp(x1, x2, method="asymp"). The p-value is kstwo.sf(D, round(n_e)),
  n_e = n1 n2 / (n1 + n2) with Kish effective sizes n = (sum w)^2 / sum w^2 when weighted; with 1e5 events
  it rejects differences far below what matters for a template, so read D (or S^2) first.
  """
  x1 = np.asarray(x1, np.float64).ravel()
  x2 = np.asarray(x2, np.float64).ravel()
  if x1.size == 0 or x2.size == 0:
    raise ValueError(f"KS needs two non-empty samples, got {x1.size} and {x2.size} values")
  w1 = _weights(x1, w1, "sample 1")
  w2 = _weights(x2, w2, "sample 2")
  o1, o2 = np.argsort(x1, kind="stable"), np.argsort(x2, kind="stable")
  x1, w1, x2, w2 = x1[o1], w1[o1], x2[o2], w2[o2]
  c1 = np.concatenate([[0.0], np.cumsum(w1)]) / w1.sum()
  c2 = np.concatenate([[0.0], np.cumsum(w2)]) / w2.sum()
  # ECDFs are right-continuous steps: the sup is attained at one of the data points (after its ties).
  t = np.concatenate([x1, x2])
  d = float(np.max(np.abs(c1[np.searchsorted(x1, t, side="right")]
                          - c2[np.searchsorted(x2, t, side="right")])))
  n1 = w1.sum()**2 / np.sum(w1**2)
  n2 = w2.sum()**2 / np.sum(w2**2)
  en = n1 * n2 / (n1 + n2)
  p = float(np.clip(scipy.stats.kstwo.sf(d, max(1, int(np.round(en)))), 0.0, 1.0))
  return d, p


def observable_edges(reference: np.ndarray, n_bins: int = 50,
                     quantile_range: tuple[float, float] = (0.001, 0.999),
                     max_integer_bins: int = 100) -> np.ndarray:
  """Bin edges from the reference sample: unit bins centred on the integers for an integer-valued
  observable with at most `max_integer_bins` values in range (n_jets, n_vtx), else `n_bins` equal-width
  bins over the reference's quantile range (values outside go to the end bins when histogrammed)."""
  x = np.asarray(reference, np.float64).ravel()
  if np.all(x == np.round(x)):
    lo, hi = np.quantile(x, quantile_range)
    if hi - lo + 1 <= max_integer_bins:
      return np.arange(lo - 0.5, hi + 1.0, 1.0)
  return histogram_edges(x, n_bins=n_bins, quantile_range=quantile_range)


def histogram(x: np.ndarray, edges: np.ndarray, w: np.ndarray | None = None) -> dict:
  """Counts and sum of squared weights per bin, end bins including under/overflow (as S^2 does)."""
  x = np.clip(np.asarray(x, np.float64).ravel(), edges[0], edges[-1])
  w = _weights(x, w, "histogram")
  counts, _ = np.histogram(x, bins=edges, weights=w)
  sumw2, _ = np.histogram(x, bins=edges, weights=w**2)
  return {"counts": counts.tolist(), "sumw2": sumw2.tolist()}


def onedim_table(reference: Mapping[str, np.ndarray], samples: Mapping[str, Mapping[str, np.ndarray]],
                 observables: Sequence[str], weight: str | None = None, n_bins: int = 50,
                 quantile_range: tuple[float, float] = (0.001, 0.999)) -> tuple[list[dict], dict]:
  """S^2 and KS of every sample against the reference, per observable, on the reference's bins.

  reference, samples[name]: dicts of 1D columns; `weight` names an optional per-event weight column.
  Returns (rows, histograms): rows[k] = {"observable", "s2": {name: ...}, "ks": {...}, "ks_pvalue": {...}}
  and histograms[observable] = {"edges", "reference": {counts, sumw2}, name: {...}} for the plots.
  """
  tables = {"reference": reference, **samples}
  for name, cols in tables.items():
    missing = [k for k in list(observables) + ([weight] if weight else []) if k not in cols]
    if missing:
      raise ValueError(f"{name}: missing columns {missing}")
    for k in observables:
      bad = int(np.sum(~np.isfinite(np.asarray(cols[k], np.float64))))
      if bad:
        raise ValueError(f"{name}: column {k!r} has {bad} non-finite values out of {len(cols[k])}")
  w = {name: (np.asarray(cols[weight], np.float64) if weight else None) for name, cols in tables.items()}
  rows, hists = [], {}
  for obs in observables:
    x_ref = np.asarray(reference[obs], np.float64)
    edges = observable_edges(x_ref, n_bins, quantile_range)
    row = {"observable": obs, "s2": {}, "ks": {}, "ks_pvalue": {}}
    hists[obs] = {"edges": edges.tolist(), "reference": histogram(x_ref, edges, w["reference"])}
    for name, cols in samples.items():
      x = np.asarray(cols[obs], np.float64)
      row["s2"][name] = separation_power(x, x_ref, edges, w[name], w["reference"])
      row["ks"][name], row["ks_pvalue"][name] = ks_2samp(x, x_ref, w[name], w["reference"])
      hists[obs][name] = histogram(x, edges, w[name])
    rows.append(row)
  return rows, hists
