"""Model-selection metrics of the analysis-specific GAN (paper Sec. 5): the KS statistics of a few
quantities against held-out real events (their sum selects the model) and, for comparison, the main
job's binned -2 ln Lambda on the same quantities."""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
  """Two-sample Kolmogorov-Smirnov statistic sup|F_a - F_b| (ganjax.metrics.onedim, tested vs scipy)."""
  from ganjax.metrics.onedim import ks_2samp

  return ks_2samp(a, b)[0]


def ks_scores(sample: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], names) -> np.ndarray:
  """KS statistic per selection quantity (Sec. 5); their sum is the figure of merit."""
  return np.asarray([ks_statistic(sample[n], reference[n]) for n in names])


def neg2lnl(sample: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], names,
            train: Mapping[str, np.ndarray], n_bins: int = 10) -> float:
  """-2 ln Lambda of the main job (ganjax.metrics.likelihood) on the selection quantities.

  Each quantity is mapped to [-1, 1] by the empirical CDF of the training sample (2F - 1), so the n_bins
  equal bins per dimension hold equal training fractions, as the main job's quantile transform does;
  `reference` (real events) is scored against the binned `sample` (generated events).
  """
  from ganjax.metrics import likelihood

  def u(cols):
    return np.stack([2.0 * np.searchsorted(np.sort(train[n]), cols[n], side="right") / len(train[n]) - 1.0
                     for n in names], axis=1)

  real = np.asarray(likelihood.histogram(jnp.asarray(u(reference)), n_bins))
  gen = np.asarray(likelihood.histogram(jnp.asarray(u(sample)), n_bins))
  return likelihood.neg2_log_likelihood(real, gen)
