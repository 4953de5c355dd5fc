"""Distances between a generated and a true sample of feature vectors (Kansal et al. 2211.10295, Sec. 3-4;
the definitions of the jetnet.evaluation package, re-implemented here in numpy without torch):

- Frechet physics distance (FPD): the Frechet (2-Wasserstein) distance between Gaussians with the samples'
  means and covariances, ||mu_1 - mu_2||^2 + tr(C_1 + C_2 - 2 (C_1^1/2 C_2 C_1^1/2)^1/2). Its estimator is
  biased at finite N by ~k/N (Kansal et al. Eq. 4, after Chong & Forsyth 2020), so it is evaluated on random
  subsets of sizes N_1 < ... < N_P and extrapolated linearly in 1/N to N -> infinity (the intercept);
  a truth-vs-truth FPD then extrapolates to ~0.
- Kernel physics distance (KPD): the unbiased estimator of the squared maximum mean discrepancy (MMD^2,
  Gretton et al. 2012) with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, over batches; the median
  over batches is reported. Unbiased: its expectation is exactly 0 for two samples of one distribution.
- Per-feature 1-Wasserstein distance W1 = int |F_1(t) - F_2(t)| dt of the marginal CDFs (weights allowed).

Every function takes x_NxD arrays (float) and optional per-event weights (a generated sample after DCTR
weighting). Errors come from bootstrap replicas (W1, FPD) or the spread over batches (KPD).
"""

from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- Frechet distance


def _weighted_moments(x_NxD: np.ndarray, w_N: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (unbiased for unit weights; reliability weights otherwise)."""
  x = np.asarray(x_NxD, np.float64)
  if w_N is None:
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))
  w = np.asarray(w_N, np.float64)
  return np.average(x, axis=0, weights=w), np.atleast_2d(np.cov(x, rowvar=False, aweights=w))


def _sqrt_psd(c_DxD: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
  vals, vecs = np.linalg.eigh(0.5 * (c_DxD + c_DxD.T))
  return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
  """||mu1 - mu2||^2 + tr(C1 + C2 - 2 sqrt(C1^1/2 C2 C1^1/2)) (Kansal et al. Eq. 3; symmetric-root form,
  which equals tr sqrt(C1 C2) and stays real for PSD inputs)."""
  s1 = _sqrt_psd(np.asarray(cov1, np.float64))
  cross = _sqrt_psd(s1 @ np.asarray(cov2, np.float64) @ s1)
  d = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
  return float(d @ d + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(cross))


def frechet_samples(x_NxD, y_MxD, wx_N=None, wy_M=None) -> float:
  """The Frechet distance of two samples' (weighted) means and covariances, no extrapolation."""
  mx, cx = _weighted_moments(x_NxD, wx_N)
  my, cy = _weighted_moments(y_MxD, wy_M)
  return frechet_distance(mx, cx, my, cy)


def standardizer(reference_NxD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) of a reference sample (std 1 for constant features): FPD/KPD/W1 in units of the
  reference's spread, so features in GeV and radians weigh alike."""
  r = np.asarray(reference_NxD, np.float64)
  sd = r.std(0)
  return r.mean(0), np.where(sd > 0, sd, 1.0)


def fpd(x_NxD, y_MxD, wx_N=None, wy_M=None, *, n_min: int | None = None, n_max: int | None = None,
        n_points: int = 10, n_batches: int = 20, n_boot: int = 50, seed: int = 0) -> dict:
  """FPD extrapolated to infinite N in 1/N (Kansal et al. Sec. 4; jetnet.evaluation.fpd).

  For each of n_points subset sizes N in [n_min, n_max] (defaults: min(sizes)/5 .. min(sizes)), the mean
  over n_batches random subsets (without replacement, drawn independently from both samples) of the Frechet
  distance; FD(N) = FPD_inf + k / N fitted by least squares. error: the std of the intercept over n_boot
  bootstrap replicas of the batches at each N. Weights (if given) weigh each subset's moments.
  """
  x, y = np.asarray(x_NxD, np.float64), np.asarray(y_MxD, np.float64)
  n_small = min(len(x), len(y))
  n_max = int(min(n_max or n_small, n_small))
  n_min = int(max(min(n_min or n_max // 5, n_max), x.shape[1] + 2))
  sizes = np.unique(np.linspace(n_min, n_max, n_points).astype(int))
  rng = np.random.default_rng(seed)
  fd_PxB = np.empty((len(sizes), n_batches))
  for p, n in enumerate(sizes):  # n_points x n_batches small moment computations
    for b in range(n_batches):
      ix = rng.choice(len(x), n, replace=False)
      iy = rng.choice(len(y), n, replace=False)
      fd_PxB[p, b] = frechet_samples(x[ix], y[iy], None if wx_N is None else np.asarray(wx_N)[ix],
                                     None if wy_M is None else np.asarray(wy_M)[iy])
  design = np.stack([np.ones(len(sizes)), 1.0 / sizes], 1)

  def intercept(fd_P):
    return float(np.linalg.lstsq(design, fd_P, rcond=None)[0][0])

  value = intercept(fd_PxB.mean(1))
  boot = [intercept(fd_PxB[np.arange(len(sizes))[:, None], rng.integers(0, n_batches, (len(sizes), n_batches))]
                    .mean(1)) for _ in range(n_boot)]
  return {"value": value, "error": float(np.std(boot, ddof=1)), "sizes": sizes.tolist(),
          "fd_at_sizes": fd_PxB.mean(1).tolist(), "fd_at_n_max": float(fd_PxB[-1].mean())}


# ----------------------------------------------------------------------------- kernel distance


def poly_kernel_sums(x_NxD, y_MxD, wx_N=None, wy_M=None, block: int = 2048) -> float:
  """sum_ij wx_i wy_j k(x_i, y_j) with k = (x.y / d + 1)^3, in row blocks (memory block x M)."""
  x, y = np.asarray(x_NxD, np.float64), np.asarray(y_MxD, np.float64)
  wx = np.ones(len(x)) if wx_N is None else np.asarray(wx_N, np.float64)
  wy = np.ones(len(y)) if wy_M is None else np.asarray(wy_M, np.float64)
  d = x.shape[1]
  total = 0.0
  for s in range(0, len(x), block):
    k = x[s:s + block] @ (y.T / d) + 1.0
    total += float(wx[s:s + block] @ (k * k * k) @ wy)  # k*k*k: much faster than the float power
  return total


def mmd2_unbiased(x_NxD, y_MxD, wx_N=None, wy_M=None) -> float:
  """Unbiased MMD^2 with the cubic polynomial kernel (Gretton et al. 2012, Lemma 6): the within-sample
  sums leave out i = j. With weights, every pair is weighted by w_i w_j (normalised by the same sums
  without the diagonal), which reduces to the U-statistic for unit weights."""
  x, y = np.asarray(x_NxD, np.float64), np.asarray(y_MxD, np.float64)
  d = x.shape[1]
  wx = np.ones(len(x)) if wx_N is None else np.asarray(wx_N, np.float64)
  wy = np.ones(len(y)) if wy_M is None else np.asarray(wy_M, np.float64)

  def within(a, w):
    diag = (np.einsum("nd,nd->n", a, a) / d + 1.0) ** 3
    return (poly_kernel_sums(a, a, w, w) - np.sum(w * w * diag)) / (w.sum() ** 2 - np.sum(w * w))

  return within(x, wx) + within(y, wy) - 2.0 * poly_kernel_sums(x, y, wx, wy) / (wx.sum() * wy.sum())


def kpd(x_NxD, y_MxD, wx_N=None, wy_M=None, *, n_batches: int = 10, batch_size: int = 5000,
        seed: int = 0) -> dict:
  """KPD (Kansal et al. Sec. 4; jetnet.evaluation.kpd): unbiased MMD^2 on n_batches pairs of random subsets
  of batch_size (capped at the smaller sample; without replacement within a batch). value: the median over
  batches; error: half the 16-84% spread of the batch values over sqrt(n_batches)."""
  x, y = np.asarray(x_NxD, np.float64), np.asarray(y_MxD, np.float64)
  n = int(min(batch_size, len(x), len(y)))
  rng = np.random.default_rng(seed)
  vals = []
  for _ in range(n_batches):  # a few large blocked kernel sums
    ix, iy = rng.choice(len(x), n, replace=False), rng.choice(len(y), n, replace=False)
    vals.append(mmd2_unbiased(x[ix], y[iy], None if wx_N is None else np.asarray(wx_N)[ix],
                              None if wy_M is None else np.asarray(wy_M)[iy]))
  vals = np.asarray(vals)
  lo, hi = np.percentile(vals, [16, 84])
  return {"value": float(np.median(vals)), "error": float(0.5 * (hi - lo) / np.sqrt(n_batches)),
          "batch_size": n, "n_batches": n_batches}


# ----------------------------------------------------------------------------- 1-Wasserstein per feature


def wasserstein_1d(u_N, v_M, wu_N=None, wv_M=None) -> float:
  """W1 = int |F_u - F_v| of two (weighted) 1D samples, exact (as scipy.stats.wasserstein_distance)."""
  u, v = np.asarray(u_N, np.float64), np.asarray(v_M, np.float64)
  wu = np.ones(len(u)) if wu_N is None else np.asarray(wu_N, np.float64)
  wv = np.ones(len(v)) if wv_M is None else np.asarray(wv_M, np.float64)
  iu, iv = np.argsort(u), np.argsort(v)
  u, wu, v, wv = u[iu], wu[iu], v[iv], wv[iv]
  allv = np.sort(np.concatenate([u, v]))
  deltas = np.diff(allv)
  cu = np.concatenate([[0.0], np.cumsum(wu)])[np.searchsorted(u, allv[:-1], "right")] / wu.sum()
  cv = np.concatenate([[0.0], np.cumsum(wv)])[np.searchsorted(v, allv[:-1], "right")] / wv.sum()
  return float(np.sum(np.abs(cu - cv) * deltas))


def wasserstein_features(x_NxD, y_MxD, wx_N=None, wy_M=None, *, n_boot: int = 20, seed: int = 0) -> dict:
  """Per-feature W1 with bootstrap errors (both samples resampled with replacement, weights carried);
  `value` is the mean of the per-feature W1 (the summary statistic; per-feature values under `per_feature`)."""
  x, y = np.asarray(x_NxD, np.float64), np.asarray(y_MxD, np.float64)
  wx = None if wx_N is None else np.asarray(wx_N, np.float64)
  wy = None if wy_M is None else np.asarray(wy_M, np.float64)

  def all_features(ix, iy):
    return np.array([wasserstein_1d(x[ix, k], y[iy, k], None if wx is None else wx[ix],
                                    None if wy is None else wy[iy]) for k in range(x.shape[1])])

  w1 = all_features(np.arange(len(x)), np.arange(len(y)))
  rng = np.random.default_rng(seed)
  boot = np.array([all_features(rng.integers(0, len(x), len(x)), rng.integers(0, len(y), len(y)))
                   for _ in range(n_boot)])
  err = boot.std(0, ddof=1)
  return {"value": float(w1.mean()), "error": float(boot.mean(1).std(ddof=1)),
          "per_feature": w1.tolist(), "per_feature_error": err.tolist()}
