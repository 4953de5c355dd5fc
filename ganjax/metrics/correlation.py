"""Distance correlation of univariate pairs in O(n log n), its matrices, and the chi of hgg Sec. 3.2.

Distance correlation (Szekely, Rizzo & Bakirov 2007; Ref. [26] of hgg-background-gan, used for Fig. 7):
with a_ij = |x_i - x_j|, b_ij = |y_i - y_j| and the three sums

  S1 = sum_ij a_ij b_ij,  S2 = sum_i a_i. b_i.,  S3 = a.. b..

the (biased, V-statistic) squared distance covariance is dCov^2 = S1/n^2 - 2 S2/n^3 + S3/n^4 and
dCor^2 = dCov^2(x, y) / sqrt(dCov^2(x, x) dCov^2(y, y)); this is `dcor.distance_correlation`. The
bias-corrected (U-centred, Szekely & Rizzo 2014) version uses
S1/(n(n-3)) - 2 S2/(n(n-2)(n-3)) + S3/(n(n-1)(n-2)(n-3)) (`dcor.u_distance_correlation_sqr`).

Row sums a_i. come from one sort and a cumulative sum, sum_ij a_ij^2 = 2n sum x^2 - 2 (sum x)^2, and S1 by
a Fenwick tree over y-ranks while sweeping x in ascending order (the O(n log n) idea of Huo & Szekely 2016 /
Chaudhuri & Hu 2019). For a D-column matrix each column is sorted once; only S1 is computed per pair,
in parallel over pairs (numba prange).

chi (hgg Eq. in Sec. 3.2): chi = 1/N_pairs sum_{i<j} sqrt(chi2_ij), chi2_ij = (d_ij^CR - d_ij^SR)^2 /
sigma_ij^2. sigma_ij comes from independent subsamples ("batch means"), see `dcor_chi`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _cross_sum(xs: np.ndarray, ys: np.ndarray, ry: np.ndarray, tree: np.ndarray) -> float:
  """S1 = sum_ij |x_i - x_j| |y_i - y_j| for xs ascending, ys aligned with xs, ry the 0-based ranks of ys.

  Sweep i in x order; a Fenwick tree over y-ranks holds (count, sum y, sum x, sum xy) of the events already
  seen. For j before i, (x_i - x_j)|y_i - y_j| = s (x_i y_i - x_i y_j - x_j y_i + x_j y_j) with s = +1 if
  y_j < y_i else -1; ties in x or y contribute 0 whichever side they fall on.
  """
  n = xs.shape[0]
  tree[:, :] = 0.0
  tot_c = 0.0
  tot_y = 0.0
  tot_x = 0.0
  tot_xy = 0.0
  s1 = 0.0
  for i in range(n):
    xi = xs[i]
    yi = ys[i]
    # prefix sums over ranks < ry[i]
    lc = 0.0
    ly = 0.0
    lx = 0.0
    lxy = 0.0
    k = ry[i]
    while k > 0:
      lc += tree[k, 0]
      ly += tree[k, 1]
      lx += tree[k, 2]
      lxy += tree[k, 3]
      k -= k & (-k)
    low = xi * yi * lc - xi * ly - yi * lx + lxy
    every = xi * yi * tot_c - xi * tot_y - yi * tot_x + tot_xy
    s1 += 2.0 * low - every
    k = ry[i] + 1
    xy = xi * yi
    while k <= n:
      tree[k, 0] += 1.0
      tree[k, 1] += yi
      tree[k, 2] += xi
      tree[k, 3] += xy
      k += k & (-k)
    tot_c += 1.0
    tot_y += yi
    tot_x += xi
    tot_xy += xy
  return 2.0 * s1


@numba.njit(cache=True, parallel=True)
def _pair_cross_sums(z_DxN: np.ndarray, order_DxN: np.ndarray, rank_DxN: np.ndarray,
                     pairs_Px2: np.ndarray) -> np.ndarray:
  """S1 for every pair (p, q) of columns, parallel over pairs."""
  n = z_DxN.shape[1]
  n_pairs = pairs_Px2.shape[0]
  out = np.empty(n_pairs)
  for k in numba.prange(n_pairs):
    p = pairs_Px2[k, 0]
    q = pairs_Px2[k, 1]
    idx = order_DxN[p]
    xs = np.empty(n)
    ys = np.empty(n)
    ry = np.empty(n, np.int64)
    for i in range(n):
      xs[i] = z_DxN[p, idx[i]]
      ys[i] = z_DxN[q, idx[i]]
      ry[i] = rank_DxN[q, idx[i]]
    out[k] = _cross_sum(xs, ys, ry, np.empty((n + 1, 4)))
  return out


def _as_float_columns(x_NxD: np.ndarray) -> np.ndarray:
  x_NxD = np.asarray(x_NxD, np.float64)
  if x_NxD.ndim == 1:
    x_NxD = x_NxD[:, None]
  if x_NxD.ndim != 2:
    raise ValueError(f"expected an (n_events, n_columns) array, got shape {x_NxD.shape}")
  if x_NxD.shape[0] < 4:
    raise ValueError(f"distance correlation needs at least 4 events, got {x_NxD.shape[0]}")
  bad = ~np.isfinite(x_NxD)
  if bad.any():
    cols = np.nonzero(bad.any(axis=0))[0].tolist()
    raise ValueError(f"non-finite values in columns {cols} ({int(bad.sum())} entries)")
  return x_NxD


def _dcov_terms(x_NxD: np.ndarray, unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
  """Squared distance covariances: the DxD matrix (diagonal = distance variances) and the weights used."""
  n, d = x_NxD.shape
  # dCor is invariant under x -> a x + b: standardise for numerical range (the sums cancel strongly).
  scale = x_NxD.std(axis=0)
  z_DxN = ((x_NxD - x_NxD.mean(axis=0)) / np.where(scale > 0, scale, 1.0)).T.copy()
  order_DxN = np.argsort(z_DxN, axis=1, kind="stable")
  rank_DxN = np.empty_like(order_DxN)
  np.put_along_axis(rank_DxN, order_DxN, np.arange(n)[None, :], axis=1)
  zs_DxN = np.take_along_axis(z_DxN, order_DxN, axis=1)
  # Row sums a_i. = sum_j |z_i - z_j| from the sorted column, scattered back to event order.
  csum_DxN = np.cumsum(zs_DxN, axis=1)
  rows_sorted = (2.0 * np.arange(1, n + 1) - n) * zs_DxN + csum_DxN[:, -1:] - 2.0 * csum_DxN
  rows_DxN = np.empty_like(rows_sorted)
  np.put_along_axis(rows_DxN, order_DxN, rows_sorted, axis=1)
  rowtot_D = rows_DxN.sum(axis=1)

  iu, ju = np.triu_indices(d, k=1)
  s1 = np.empty((d, d))
  s1[np.arange(d), np.arange(d)] = 2.0 * n * np.sum(z_DxN**2, axis=1) - 2.0 * np.sum(z_DxN, axis=1)**2
  if len(iu):
    cross = _pair_cross_sums(z_DxN, order_DxN, rank_DxN, np.stack([iu, ju], axis=1).astype(np.int64))
    s1[iu, ju] = cross
    s1[ju, iu] = cross
  s2 = rows_DxN @ rows_DxN.T
  s3 = np.outer(rowtot_D, rowtot_D)
  if unbiased:
    return (s1 / (n * (n - 3.0)) - 2.0 * s2 / (n * (n - 2.0) * (n - 3.0))
            + s3 / (n * (n - 1.0) * (n - 2.0) * (n - 3.0))), scale
  return s1 / n**2 - 2.0 * s2 / n**3 + s3 / n**4, scale


def dcor_matrix_array(x_NxD: np.ndarray, unbiased: bool = False) -> np.ndarray:
  """DxD distance-correlation matrix of the columns of x_NxD.

  unbiased=False: dCor (as `dcor.distance_correlation`, in [0, 1]); unbiased=True: the bias-corrected
  squared dCor (as `dcor.u_distance_correlation_sqr`, may be slightly negative). A constant column gives 0
  against everything (dcor's convention).
  """
  x_NxD = _as_float_columns(x_NxD)
  dcov_DxD, _ = _dcov_terms(x_NxD, unbiased)
  var_D = np.diag(dcov_DxD).copy()
  den_DxD = np.sqrt(np.abs(np.outer(var_D, var_D)))
  corr_sqr = np.divide(dcov_DxD, den_DxD, out=np.zeros_like(dcov_DxD), where=den_DxD > 0)
  if unbiased:
    return corr_sqr
  return np.sqrt(np.clip(corr_sqr, 0.0, None))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
  """dCor of two 1D samples (biased estimator, equal to `dcor.distance_correlation`)."""
  x, y = np.ravel(x), np.ravel(y)
  if x.shape != y.shape:
    raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
  return float(dcor_matrix_array(np.stack([x, y], axis=1))[0, 1])


def u_distance_correlation_sqr(x: np.ndarray, y: np.ndarray) -> float:
  """Bias-corrected squared dCor of two 1D samples (equal to `dcor.u_distance_correlation_sqr`)."""
  x, y = np.ravel(x), np.ravel(y)
  if x.shape != y.shape:
    raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
  return float(dcor_matrix_array(np.stack([x, y], axis=1), unbiased=True)[0, 1])


def columns_to_array(columns: Mapping[str, np.ndarray], names: Sequence[str],
                     sample: str = "sample") -> np.ndarray:
  """Stack named columns into an (n_events, n_names) float64 array; ValueError on a missing, ragged,
  non-finite or constant column, naming the sample, the column and the count."""
  missing = [k for k in names if k not in columns]
  if missing:
    raise ValueError(f"{sample}: missing columns {missing} (has {sorted(columns)})")
  arrays = [np.asarray(columns[k], np.float64).ravel() for k in names]
  n = arrays[0].shape[0] if arrays else 0
  for k, a in zip(names, arrays):
    if a.shape[0] != n:
      raise ValueError(f"{sample}: column {k!r} has {a.shape[0]} rows, {names[0]!r} has {n}")
    bad = int(np.sum(~np.isfinite(a)))
    if bad:
      raise ValueError(f"{sample}: column {k!r} has {bad} non-finite values out of {n}")
    if n and np.all(a == a[0]):
      raise ValueError(f"{sample}: column {k!r} is constant over its {n} events (no correlation defined)")
  return np.stack(arrays, axis=1) if arrays else np.empty((0, 0))


def distance_correlation_matrix(columns: Mapping[str, np.ndarray], names: Sequence[str],
                                unbiased: bool = False, sample: str = "sample") -> np.ndarray:
  """Distance-correlation matrix (hgg Fig. 7) of the named columns of a dict of 1D arrays."""
  return dcor_matrix_array(columns_to_array(columns, names, sample), unbiased=unbiased)


def batch_dcor(x_NxD: np.ndarray, batch_size: int, rng: np.random.Generator,
               unbiased: bool = False) -> np.ndarray:
  """dCor matrices of floor(n / batch_size) disjoint random subsamples: (n_batches, D, D)."""
  n = x_NxD.shape[0]
  n_batches = n // batch_size
  if n_batches < 2:
    raise ValueError(f"need >= 2 batches of {batch_size} events, sample has only {n}")
  perm = rng.permutation(n)[: n_batches * batch_size].reshape(n_batches, batch_size)
  return np.stack([dcor_matrix_array(x_NxD[idx], unbiased=unbiased) for idx in perm])


def dcor_chi(x_sr_NxD: np.ndarray, x_cr_NxD: np.ndarray, names: Sequence[str], n_batches: int = 20,
             seed: int = 0, threshold: float = 3.0, unbiased: bool = False) -> dict:
  """chi of hgg Sec. 3.2 between the dCor matrices of two samples, sigma_ij from independent subsamples.

  Both samples are split at random into disjoint batches of one common size m = min(n_SR, n_CR) //
  n_batches (the larger sample gives more batches). d_ij^X is the mean of the batch dCors and
  sigma_ij^2 = s_SR^2 / K_SR + s_CR^2 / K_CR (s: std over batches, K: number of batches), so sigma is the
  measured spread of exactly the quantity compared and combines both samples. Why not the bootstrap:
  it costs one full matrix per replica (the batches together cost about one), duplicated events bias
  dCor upwards for weakly dependent pairs (the bootstrap is inconsistent for such degenerate V-statistics),
  and the biased dCor of independent variables is ~ c / sqrt(n), so comparing full samples of different
  size would shift d^CR - d^SR; equal batch sizes cancel that bias exactly.

  Under the null (same distribution) sqrt(chi2_ij) ~ |N(0, 1)|, so E[chi] = sqrt(2/pi) ~ 0.80 (slightly
  more with the estimated sigma); the paper's chi ~ 1.1 is "compatible with statistical fluctuations".
  Returns JSON-ready lists: d_sr, d_cr, sigma, sqrt_chi2 (D x D, 0 on the diagonal), chi, and the pairs
  with sqrt(chi2_ij) > threshold, largest first.
  """
  n_sr, n_cr = x_sr_NxD.shape[0], x_cr_NxD.shape[0]
  batch_size = min(n_sr, n_cr) // n_batches
  if n_batches < 2 or batch_size < 20:
    raise ValueError(f"chi needs n_batches >= 2 batches of >= 20 events: n_SR={n_sr}, n_CR={n_cr}, "
                     f"n_batches={n_batches}")
  rng = np.random.default_rng(seed)
  b_sr = batch_dcor(x_sr_NxD, batch_size, rng, unbiased)
  b_cr = batch_dcor(x_cr_NxD, batch_size, rng, unbiased)
  d_sr, d_cr = b_sr.mean(0), b_cr.mean(0)
  var = b_sr.var(0, ddof=1) / len(b_sr) + b_cr.var(0, ddof=1) / len(b_cr)
  sigma = np.sqrt(var)
  diff = np.abs(d_cr - d_sr)
  sqrt_chi2 = np.divide(diff, sigma, out=np.zeros_like(diff), where=sigma > 0)
  sqrt_chi2[(sigma == 0) & (diff > 0)] = np.inf
  np.fill_diagonal(sqrt_chi2, 0.0)
  iu, ju = np.triu_indices(len(names), k=1)
  chi = float(np.mean(sqrt_chi2[iu, ju])) if len(iu) else 0.0
  worst = sorted(
      ({"pair": [names[i], names[j]], "sqrt_chi2": float(sqrt_chi2[i, j]), "d_sr": float(d_sr[i, j]),
        "d_cr": float(d_cr[i, j]), "sigma": float(sigma[i, j])}
       for i, j in zip(iu, ju) if sqrt_chi2[i, j] > threshold),
      key=lambda r: -r["sqrt_chi2"])
  return {"chi": chi, "n_pairs": int(len(iu)), "threshold": threshold, "pairs_above_threshold": worst,
          "sqrt_chi2": sqrt_chi2.tolist(), "d_sr": d_sr.tolist(), "d_cr": d_cr.tolist(),
          "sigma": sigma.tolist(), "batch_size": int(batch_size),
          "n_batches": {"sr": int(len(b_sr)), "cr": int(len(b_cr))},
          "sigma_method": "independent subsamples (batch means), equal batch size in both samples"}
