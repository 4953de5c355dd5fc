"""Timing of the 15x15 distance-correlation matrix (105 pairs) and of validate() on 100k events.

Command:  /work/venv/bin/python benchmarks/dcor_matrix.py [--n 100000] [--dcor-pairs 105]
Device:   any CPU (numba threads = the cores numba sees; --threads to pin). Runtime ~2-3 min on 2 cores,
          most of it in the dcor-package comparison.
Compares  ganjax.metrics.correlation (Fenwick-tree O(n log n), columns sorted once, pairs in parallel)
with      dcor's fast univariate method (method="mergesort", O(n log n) per call, distance variances reused)
and       dcor's naive O(n^2) method on small n, extrapolated as n^2 (at 1e5 it would need 80 GB per
          distance matrix, so it cannot actually run).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np


def hgg_like(n: int, rng: np.random.Generator) -> np.ndarray:
  """15 columns shaped like the slides' observables: heavy tails, integer columns (ties), uniform angles,
  a mix of strong, weak and no dependence."""
  g = rng.multivariate_normal(np.zeros(4), [[1, .5, .3, 0], [.5, 1, .2, 0], [.3, .2, 1, .4], [0, 0, .4, 1]], n)
  pt1, pt2 = 35 * np.exp(0.5 * g[:, 0]), 25 * np.exp(0.5 * g[:, 1])
  eta1, eta2 = g[:, 2], 0.5 * g[:, 2] + rng.normal(size=n)
  phi1 = rng.uniform(-np.pi, np.pi, n)
  phi2 = np.mod(phi1 + np.pi + rng.normal(0, .3, n) + np.pi, 2 * np.pi) - np.pi
  nvtx = rng.poisson(20, n)
  njets = 1 + rng.poisson(0.5 + 0.3 * np.log(pt1 / 35).clip(0) + 0.02 * nvtx)
  deta = eta1 - eta2
  dphi = np.abs(np.mod(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi)
  mgg = np.sqrt(2 * pt1 * pt2 * (np.cosh(deta) - np.cos(dphi)))
  ptgg = np.hypot(pt1 * np.cos(phi1) + pt2 * np.cos(phi2), pt1 * np.sin(phi1) + pt2 * np.sin(phi2))
  cols = [np.tanh(1 + 0.4 * g[:, 3]), pt2, eta2, phi2, np.tanh(2 + 0.3 * rng.normal(size=n)), pt1, eta1, phi1,
          njets, nvtx, ptgg / mgg, ptgg, mgg, deta, dphi]
  return np.stack(cols, axis=1).astype(np.float64)


def timed(fn, *args, repeat=1, **kw):
  best = np.inf
  for _ in range(repeat):
    t = time.perf_counter()
    out = fn(*args, **kw)
    best = min(best, time.perf_counter() - t)
  return best, out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=100_000)
  ap.add_argument("--dcor-pairs", type=int, default=105, help="pairs timed with the dcor package")
  ap.add_argument("--threads", type=int, default=0)
  args = ap.parse_args()
  if args.threads:
    numba.set_num_threads(args.threads)
  import dcor

  from ganjax import validation
  from ganjax.metrics.correlation import dcor_chi, dcor_matrix_array

  rng = np.random.default_rng(0)
  x = hgg_like(args.n, rng)
  d = x.shape[1]
  rows = []
  t0 = time.perf_counter()
  dcor_matrix_array(x[:50])  # numba compile / cache load
  rows.append(("ganjax: first call (numba compile or cache load), n=50", time.perf_counter() - t0))
  t, m = timed(dcor_matrix_array, x, repeat=3)
  rows.append((f"ganjax: 15x15 dCor matrix, n={args.n}, {numba.get_num_threads()} numba threads", t))
  numba.set_num_threads(1)
  t1, _ = timed(dcor_matrix_array, x, repeat=2)
  rows.append((f"ganjax: 15x15 dCor matrix, n={args.n}, 1 thread", t1))
  numba.set_num_threads(args.threads or numba.config.NUMBA_NUM_THREADS)

  # dcor package, fast univariate method: reuse the 15 distance variances, 105 cross covariances
  dcor.distance_covariance_sqr(x[:100, 0], x[:100, 1], method="mergesort")  # compile
  iu, ju = np.triu_indices(d, 1)
  n_pairs = min(args.dcor_pairs, len(iu))
  t = time.perf_counter()
  var = [dcor.distance_covariance_sqr(x[:, k], x[:, k], method="mergesort") for k in range(d)]
  err = 0.0
  for i, j in list(zip(iu, ju))[:n_pairs]:
    c = dcor.distance_covariance_sqr(x[:, i], x[:, j], method="mergesort")
    err = max(err, abs(np.sqrt(max(c, 0) / np.sqrt(var[i] * var[j])) - m[i, j]))
  t_dcor = time.perf_counter() - t
  t_dcor_full = t_dcor * (d + len(iu)) / (d + n_pairs)
  rows.append((f"dcor mergesort: 15 variances + {n_pairs} pairs, n={args.n}" +
               ("" if n_pairs == len(iu) else " (extrapolated to 105 pairs)"), t_dcor_full))
  rows.append(("max |ganjax - dcor| over those pairs", err))

  # naive O(n^2), extrapolated
  for n_small in (1000, 2000, 4000):
    t, _ = timed(dcor.distance_correlation, x[:n_small, 0], x[:n_small, 1], method="naive")
    rows.append((f"dcor naive, 1 pair, n={n_small}", t))
  rows.append((f"dcor naive extrapolated: 105 pairs x (n={args.n})^2", t * len(iu) * (args.n / n_small)**2))

  # the whole validation and the chi alone
  sr, cr, gan = x, hgg_like(args.n, np.random.default_rng(1)), hgg_like(args.n, np.random.default_rng(2))
  t, _ = timed(dcor_chi, sr, gan, validation.HGG_OBSERVABLES)
  rows.append((f"ganjax: chi (20 batches each of two samples of n={args.n})", t))
  cols = {name: dict(zip(validation.HGG_OBSERVABLES, a.T)) for name, a in (("sr", sr), ("cr", cr), ("g", gan))}
  t, res = timed(validation.validate, cols["sr"], cols["cr"], cols["g"])
  rows.append((f"ganjax: validate() on 3 x {args.n} events (3 matrices, 2 chis, 1D table, histograms)", t))

  print("| what | seconds |\n|---|---|")
  for k, v in rows:
    print(f"| {k} | {v:.3g} |")


if __name__ == "__main__":
  main()
