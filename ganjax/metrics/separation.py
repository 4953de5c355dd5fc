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
