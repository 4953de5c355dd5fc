"""Event-level statistical errors of the multi-sample metric -2 ln Lambda (hgg-background-gan paper, Eq. 2).

The S generated objects of one event share its conditioning, so they are correlated; the real event and
its S generations are therefore resampled together: a bootstrap replica draws N events with replacement
(multiplicities c_i) and rebuilds both histograms, m_k = sum_i c_i [real_i in k] and
n_k = sum_i c_i sum_s [gen_is in k]. The std of -2lnL over replicas is its event-level error; per bin, the
std of d_k = m_k - n_k sum(m) / sum(n) (real minus generated expectation) gives the per-bin pulls and a
chi^2 that, unlike a Poisson chi^2 on the S x N objects, does not count correlated objects as independent.
`difference` is the paired version for two generators evaluated on the same events (model selection).
"""

from __future__ import annotations

import numpy as np

from ganjax.metrics.likelihood import neg2_log_likelihood


def _replica_counts(real_idx_N, gen_idx_NxS, n_bins_total: int, c_N):
  m = np.bincount(real_idx_N, weights=c_N, minlength=n_bins_total)
  n = np.bincount(gen_idx_NxS.ravel(), weights=np.repeat(c_N, gen_idx_NxS.shape[1]), minlength=n_bins_total)
  return m, n


def _multiplicities(rng, n: int, n_boot: int):
  for _ in range(n_boot):
    yield np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def neg2lnl(real_idx_N, gen_idx_NxS, n_bins_total: int, *, n_boot: int = 200, seed: int = 0) -> dict:
  """-2lnL with its event-bootstrap error and the per-bin comparison (real_idx_N: flat bin of each real
  event; gen_idx_NxS: flat bins of its S generated objects)."""
  real_idx_N = np.asarray(real_idx_N, np.int64)
  gen_idx_NxS = np.asarray(gen_idx_NxS, np.int64).reshape(len(real_idx_N), -1)
  n = len(real_idx_N)
  m0, n0 = _replica_counts(real_idx_N, gen_idx_NxS, n_bins_total, np.ones(n))
  value = neg2_log_likelihood(m0, n0)
  rng = np.random.default_rng(seed)
  vals, diffs = [], []
  for c in _multiplicities(rng, n, n_boot):
    m, g = _replica_counts(real_idx_N, gen_idx_NxS, n_bins_total, c)
    vals.append(neg2_log_likelihood(m, g))
    diffs.append(m - g * m.sum() / g.sum())
  var_k = np.var(np.asarray(diffs), 0, ddof=1)
  d0 = m0 - n0 * m0.sum() / n0.sum()
  used = var_k > 0
  pulls = d0[used] / np.sqrt(var_k[used])
  return {"value": value, "error": float(np.std(vals, ddof=1)), "n_boot": n_boot, "n_events": n,
          "n_samples": int(gen_idx_NxS.shape[1]),
          "per_bin": {"chi2": float(np.sum(pulls ** 2)), "n_bins": int(used.sum()),
                      "max_abs_pull": float(np.max(np.abs(pulls))) if pulls.size else 0.0,
                      "n_bins_above_3": int(np.sum(np.abs(pulls) > 3))}}


def difference(real_idx_N, gen_a_NxS, gen_b_NxS, n_bins_total: int, *, n_boot: int = 200,
               seed: int = 0) -> dict:
  """-2lnL(a) - -2lnL(b) on the same events and its paired event-bootstrap error (same replicas for both)."""
  real_idx_N = np.asarray(real_idx_N, np.int64)
  n = len(real_idx_N)
  a = np.asarray(gen_a_NxS, np.int64).reshape(n, -1)
  b = np.asarray(gen_b_NxS, np.int64).reshape(n, -1)

  def d(c):
    m, ga = _replica_counts(real_idx_N, a, n_bins_total, c)
    _, gb = _replica_counts(real_idx_N, b, n_bins_total, c)
    return neg2_log_likelihood(m, ga) - neg2_log_likelihood(m, gb)

  rng = np.random.default_rng(seed)
  vals = [d(c) for c in _multiplicities(rng, n, n_boot)]
  return {"value": d(np.ones(n)), "error": float(np.std(vals, ddof=1))}
