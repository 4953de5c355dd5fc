"""Statistical cost of weighted events: dilution r and effective sample size (DCTR paper Sec. II B).

A weighted generated sample estimates E_T[f] by sum_i w_i f(x_i) / sum_i w_i. Its sampling uncertainty
(Eqs. 6-8, with the integrals replaced by their sampling estimates as the paper recommends) is

  sigma_G[f] = sqrt(sum_i w_i^2 (f_i - fbar)^2) / sum_i w_i,     fbar = sum_i w_i f_i / sum_i w_i,

which for weights normalised to sum N_G (Eq. 10) is sqrt(Var_G[W df] / N_G) of Eq. 8, and for w = 1 is the
usual std / sqrt(N) of Eq. 7. The dilution of an observable is r = sigma_G[f] / sigma_T[f] (the ratio quoted
in the paper's Figs. 3-6 and 8). The effective sample size N_eff = (sum w)^2 / sum w^2 is the number of
unweighted events with the same precision for an observable uncorrelated with the weights.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ganjax.metrics.separation import histogram_edges, separation_power


def as_weights(w: np.ndarray | None, n: int, name: str, what: str = "weights") -> np.ndarray:
  """n float64 weights (ones for None); shape, sign, finiteness and a positive sum are checked by name."""
  if w is None:
    return np.ones(n, np.float64)
  w = np.asarray(w, np.float64)
  if w.shape != (n,):
    raise ValueError(f"{name}: {what} have shape {w.shape}, expected ({n},)")
  bad = int(np.sum(~np.isfinite(w) | (w < 0)))
  if bad:
    raise ValueError(f"{name}: {bad} of {n} {what} are negative or not finite")
  if w.sum() <= 0:
    raise ValueError(f"{name}: {what} sum to zero")
  return w


def effective_sample_size(w: np.ndarray) -> float:
  """N_eff = (sum w)^2 / sum w^2; equals N for constant weights, <= N always."""
  w = as_weights(w, len(np.atleast_1d(w)), "effective_sample_size")
  return float(w.sum() ** 2 / np.sum(w * w))


def mean_uncertainty(f: np.ndarray, w: np.ndarray | None = None) -> float:
  """Sampling estimate of the standard error of the weighted mean of f (Eqs. 6-8, see module doc)."""
  f = np.asarray(f, np.float64).ravel()
  w = as_weights(w, f.size, "mean_uncertainty")
  sw = w.sum()
  fbar = np.sum(w * f) / sw
  return float(np.sqrt(np.sum(w * w * (f - fbar) ** 2)) / sw)


def dilution(f_gen: np.ndarray, w_gen: np.ndarray | None, f_truth: np.ndarray,
             w_truth: np.ndarray | None = None) -> float:
  """r = uncertainty of the (weighted) generated mean of f over that of the truth mean (Sec. II B)."""
  return mean_uncertainty(f_gen, w_gen) / mean_uncertainty(f_truth, w_truth)


def equal_precision_ratio(f_truth: np.ndarray, w_at_truth: np.ndarray) -> float:
  """N_G / N_T needed for equal precision on <f>, Eq. 9, from a truth sample and W evaluated on it.

  With the ideal W = p_T/p_G and weights normalised to sum N_G, r^2 -> (N_T / N_G) * this ratio.
  """
  f = np.asarray(f_truth, np.float64).ravel()
  w = as_weights(w_at_truth, f.size, "equal_precision_ratio")
  df2 = (f - f.mean()) ** 2
  return float(np.sum(w * df2) / np.sum(df2))


def weighted_histogram(x: np.ndarray, edges: np.ndarray, w: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
  """(sum of weights, sqrt(sum of squared weights)) per bin; values outside go to the end bins."""
  x = np.clip(np.asarray(x, np.float64).ravel(), edges[0], edges[-1])
  w = as_weights(w, x.size, "weighted_histogram")
  counts, _ = np.histogram(x, bins=edges, weights=w)
  sumw2, _ = np.histogram(x, bins=edges, weights=w * w)
  return counts, np.sqrt(sumw2)


def separation_noise_floor(x1: np.ndarray, x2: np.ndarray, edges: np.ndarray,
                           w1: np.ndarray | None = None, w2: np.ndarray | None = None) -> float:
  """Expected <S^2> (Eq. 15) from sampling noise alone if both samples had the same density.

  E[(h1_i - h2_i)^2] = Var h1_i + Var h2_i with Var h_i ~ sum_bin w^2 / (sum w)^2, so an observed S^2 near this
  floor means the two histograms agree within their statistics.
  """
  c1, e1 = weighted_histogram(x1, edges, w1)
  c2, e2 = weighted_histogram(x2, edges, w2)
  h1, h2 = c1 / c1.sum(), c2 / c2.sum()
  var = (e1 / c1.sum()) ** 2 + (e2 / c2.sum()) ** 2
  den = h1 + h2
  return float(0.5 * np.sum(np.divide(var, den, out=np.zeros_like(var), where=den > 0)))


def observable_report(truth: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                      weights: np.ndarray, observables: Sequence[str] | None = None, n_bins: int = 50,
                      truth_weights: np.ndarray | None = None,
                      quantile_range: tuple[float, float] = (0.0, 1.0)) -> dict:
  """Per-observable <S^2> (Eq. 15) and r before/after weighting, plus a summary (the numbers of Fig. 8).

  truth, generated: dicts of 1D observable columns; weights: DCTR weights of the generated events.
  Bins: n_bins equal-width bins over `quantile_range` of the truth; outside values go to the end bins.
  """
  observables = list(truth) if observables is None else list(observables)
  for name, table in (("truth", truth), ("generated", generated)):
    missing = [o for o in observables if o not in table]
    if missing:
      raise ValueError(f"{name}: missing observable columns {missing}")
  n_gen = len(np.asarray(generated[observables[0]]))
  w = as_weights(weights, n_gen, "generated weights")
  per = {}
  for o in observables:
    xt = np.asarray(truth[o], np.float64)
    xg = np.asarray(generated[o], np.float64)
    edges = histogram_edges(xt, n_bins, quantile_range)
    s2_before = separation_power(xg, xt, edges, None, truth_weights)
    s2_after = separation_power(xg, xt, edges, w, truth_weights)
    per[o] = {
      "s2_unweighted": s2_before,
      "s2_weighted": s2_after,
      "s2_ratio": s2_after / s2_before if s2_before > 0 else float("nan"),
      "s2_floor_unweighted": separation_noise_floor(xg, xt, edges, None, truth_weights),
      "s2_floor_weighted": separation_noise_floor(xg, xt, edges, w, truth_weights),
      "r_unweighted": dilution(xg, None, xt, truth_weights),
      "r_weighted": dilution(xg, w, xt, truth_weights),
    }
  ratios = np.array([per[o]["s2_ratio"] for o in observables])
  r_after = np.array([per[o]["r_weighted"] for o in observables])
  summary = {
    "median_s2_ratio": float(np.nanmedian(ratios)),
    "median_r_weighted": float(np.median(r_after)),
    "max_r_weighted": float(np.max(r_after)),
    "fraction_improved": float(np.mean(ratios < 1.0)),
    "n_generated": int(n_gen),
    "n_truth": int(len(np.asarray(truth[observables[0]]))),
    "n_eff": effective_sample_size(w),
    "n_eff_fraction": effective_sample_size(w) / n_gen,
  }
  return {"observables": per, "summary": summary, "n_bins": int(n_bins)}
