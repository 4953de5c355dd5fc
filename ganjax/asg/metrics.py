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


# ---- the shape of a mass peak -------------------------------------------------------------------------

Z_MASS = 91.1876  # GeV (PDG)


def gaussian_fit(x: np.ndarray, lo: float, hi: float, bin_width: float = 0.25) -> tuple[float, float]:
  """(mean, sigma) of a Gaussian fitted to the values of x in [lo, hi] by a binned Poisson likelihood of the
  Gaussian truncated to the range: the expected count of bin [a, b] is N (Phi_b - Phi_a) / (Phi_hi - Phi_lo), N the
  values in range (the Gaussian integrated over each bin: no binning bias). A pure Gaussian gives back its
  maximum-likelihood mean and sigma on any range."""
  from scipy import optimize, special

  x = np.asarray(x, np.float64)
  edges = np.linspace(lo, hi, max(int(round((hi - lo) / bin_width)), 1) + 1)
  n_B = np.histogram(x, edges)[0].astype(np.float64)
  if n_B.sum() < 10:
    raise ValueError(f"gaussian_fit: {int(n_B.sum())} values in [{lo}, {hi}], need at least 10")
  inside = x[(x >= lo) & (x <= hi)]

  def nll(p):
    cdf = 0.5 * special.erfc(-(edges - p[0]) / (np.exp(p[1]) * np.sqrt(2.0)))
    p_B = np.maximum(np.diff(cdf), 1e-300) / max(cdf[-1] - cdf[0], 1e-300)
    return -np.sum(n_B * np.log(p_B))

  start = np.asarray([inside.mean(), np.log(max(inside.std(), 0.1 * bin_width))])
  r = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
  return float(r.x[0]), float(np.exp(r.x[1]))


def core_fit(x: np.ndarray, lo: float, hi: float, n_sigma: float = 2.0, iterations: int = 20) -> tuple[float, float]:
  """(mean, width) of the Gaussian core of a peak: gaussian_fit in [lo, hi], then refitted in
  [mean - n_sigma width, mean + n_sigma width] (inside [lo, hi]) until the range is stable.

  A resonance is not a Gaussian (Breit-Wigner and radiative tails): one Gaussian over all of [lo, hi] is
  pulled wide by the tails, the iterated +-2 sigma fit measures the core (detector resolution and width).
  """
  mu, sigma = gaussian_fit(x, lo, hi)
  for _ in range(iterations):
    a, b = max(lo, mu - n_sigma * sigma), min(hi, mu + n_sigma * sigma)
    if not (b - a > 0.5 and np.sum((x >= a) & (x <= b)) >= 10):
      return float("nan"), float("nan")  # no peak inside [lo, hi] (e.g. an untrained generator)
    mu_new, sigma_new = gaussian_fit(x, a, b)
    done = abs(sigma_new - sigma) < 1e-4 * sigma and abs(mu_new - mu) < 1e-4 * sigma
    mu, sigma = mu_new, sigma_new
    if done:
      break
  return mu, sigma


def mass_peak(m: np.ndarray, window: tuple[float, float] = (60.0, 120.0), core: tuple[float, float] = (70.0, 110.0),
              peak: float = Z_MASS, half_width: float = 5.0) -> dict:
  """Figures of a mass peak (e.g. M_ll in GeV) for the events inside `window` (the analysis selection): mean,
  RMS, the Gaussian core (mean, width) fitted in `core` (core_fit), the fraction within +-half_width of
  `peak`, and the fraction of all events inside the window."""
  m = np.asarray(m, np.float64)
  inw = (m > window[0]) & (m < window[1])
  x = m[inw]
  if x.size == 0:
    nan = float("nan")
    return {"n": 0, "fraction_in_window": 0.0, "mean": nan, "rms": nan, "core_mean": nan, "core_width": nan,
            "fraction_near_peak": nan}
  try:
    mu, sigma = core_fit(x, *core)
  except ValueError:  # fewer than 10 events in the core range
    mu, sigma = float("nan"), float("nan")
  return {"n": int(x.size), "fraction_in_window": float(inw.mean()), "mean": float(x.mean()), "rms": float(x.std()),
          "core_mean": mu, "core_width": sigma, "fraction_near_peak": float(np.mean(np.abs(x - peak) < half_width))}


def mass_peak_comparison(m_gen: np.ndarray, m_real: np.ndarray, **kwargs) -> dict:
  """mass_peak of generated and real events (inside the window) with the relative deviations of the mean, the
  RMS and the core width, and the two-sample KS statistic and p-value (scipy.stats.ks_2samp) of the generated
  vs the real masses inside the window; the p-value is that of the samples' sizes."""
  from scipy import stats

  g, r = mass_peak(m_gen, **kwargs), mass_peak(m_real, **kwargs)
  window = kwargs.get("window", (60.0, 120.0))
  inw = lambda m: np.asarray(m)[(np.asarray(m) > window[0]) & (np.asarray(m) < window[1])]  # noqa: E731
  g_in, r_in = inw(m_gen), inw(m_real)
  ks, p = stats.ks_2samp(g_in, r_in)[:2] if g_in.size and r_in.size else (1.0, 0.0)  # nothing in the window
  return {"generated": g, "real": r, "ks": float(ks), "ks_pvalue": float(p),
          "mean_rel_dev": g["mean"] / r["mean"] - 1, "rms_rel_dev": g["rms"] / r["rms"] - 1,
          "core_width_rel_dev": g["core_width"] / r["core_width"] - 1}
