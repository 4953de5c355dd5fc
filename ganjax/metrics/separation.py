"""Separation power <S^2> between two (weighted) histograms (DCTR paper, Eq. 15).

S^2 = 1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i), with h1, h2 normalised to unit sum: 0 for identical
histograms, 1 for histograms that never overlap. Bins empty in both are skipped (0/0 contributes 0).
"""

from __future__ import annotations

import numpy as np


def histogram_edges(reference: np.ndarray, n_bins: int = 50, quantile_range=(0.0, 1.0)) -> np.ndarray:
  """Equal-width bin edges spanning the given quantile range of a reference sample."""
  lo, hi = np.quantile(np.asarray(reference, np.float64), quantile_range)
  if hi <= lo:
    hi = lo + 1.0
  return np.linspace(lo, hi, n_bins + 1)


def separation_power_hist(h1: np.ndarray, h2: np.ndarray) -> float:
  """S^2 of two histograms (counts or weights); each is normalised to unit sum first."""
  h1 = np.asarray(h1, np.float64)
  h2 = np.asarray(h2, np.float64)
  h1 = h1 / h1.sum()
  h2 = h2 / h2.sum()
  den = h1 + h2
  num = (h1 - h2) ** 2
  return float(0.5 * np.sum(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))


def separation_power(x1: np.ndarray, x2: np.ndarray, edges: np.ndarray,
                     w1: np.ndarray | None = None, w2: np.ndarray | None = None) -> float:
  """S^2 of two samples histogrammed on common edges (values outside go to the end bins)."""
  x1 = np.clip(np.asarray(x1, np.float64), edges[0], edges[-1])
  x2 = np.clip(np.asarray(x2, np.float64), edges[0], edges[-1])
  h1, _ = np.histogram(x1, bins=edges, weights=w1)
  h2, _ = np.histogram(x2, bins=edges, weights=w2)
  return separation_power_hist(h1, h2)


def separation_power_floor(reference_counts: np.ndarray, n1: float, n2: float, n_rep: int = 200,
                           seed: int = 0, quantile: float = 0.95) -> dict:
  """The statistical floor of S^2 at these sample sizes: S^2 between two samples of n1 and n2 events drawn
  from ONE distribution (the reference histogram's bin probabilities), over `n_rep` multinomial draws.

  Returns {"mean", "std", "quantile", "q": the `quantile` of the draws, "expected"}; "expected" is the
  large-sample value (B - 1)(1/n1 + 1/n2) / 4 for B occupied bins (each bin's (h1 - h2)^2 has variance
  p(1 - p)(1/n1 + 1/n2) over a denominator 2p). An S^2 below "q" is indistinguishable from two samples of
  one distribution."""
  p = np.asarray(reference_counts, np.float64)
  p = p / p.sum()
  rng = np.random.default_rng(seed)
  n1, n2 = max(1, int(round(n1))), max(1, int(round(n2)))
  h1 = rng.multinomial(n1, p, size=n_rep)
  h2 = rng.multinomial(n2, p, size=n_rep)
  s2 = np.array([separation_power_hist(a, b) for a, b in zip(h1, h2)])
  occupied = int(np.sum(p > 0))
  return {"mean": float(s2.mean()), "std": float(s2.std(ddof=1)), "quantile": quantile,
          "q": float(np.quantile(s2, quantile)), "expected": (occupied - 1) * (1.0 / n1 + 1.0 / n2) / 4.0}
