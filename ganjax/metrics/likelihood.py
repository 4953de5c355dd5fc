"""Binned multi-sample log-likelihood metric -2 ln Lambda (hgg-background-gan paper, Eq. 2, Sec. 2.4-2.5).

Every binned dimension is first mapped to [-1, 1] by the SR-training quantile transform, so 10 equal bins per
dimension hold ~10% of the SR training events each and N_b = n_bins^K. With m_k real events and n_k of the
S x N generated objects in bin k, p_Y(k) = n_k / (S N) and -2 ln Lambda = -2 sum_k m_k ln p_Y(k).

Empty generated bins: a bin with m_k > 0 but n_k = 0 would make the metric infinite. It is given half a
count, p_Y(k) = 0.5 / (S N): the penalty stays finite, is large (ln of a tiny probability) and shrinks as S
grows, so models that leave real events uncovered are still ranked last.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

EMPTY_BIN_COUNT = 0.5


def flat_bin_index(u_NxK, n_bins: int):
  """Flat bin number of points in [-1, 1]^K with n_bins equal bins per dimension (edges clipped)."""
  xp = jnp if not isinstance(u_NxK, np.ndarray) else np
  b = xp.clip(xp.floor((u_NxK + 1.0) * 0.5 * n_bins), 0, n_bins - 1).astype(xp.int32)
  strides = n_bins ** xp.arange(u_NxK.shape[-1], dtype=xp.int32)
  return (b * strides).sum(-1)


def histogram(u_NxK, n_bins: int, mask_N=None):
  """Counts per flat bin (int32, length n_bins^K); masked-out points are not counted."""
  idx = flat_bin_index(u_NxK, n_bins)
  w = jnp.ones(idx.shape, jnp.int32) if mask_N is None else mask_N.astype(jnp.int32)
  return jnp.zeros(n_bins ** u_NxK.shape[-1], jnp.int32).at[idx].add(w)


def neg2_log_likelihood(real_counts, gen_counts) -> float:
  """-2 ln Lambda(X|Y) = -2 sum_k m_k ln p_Y(k), p_Y(k) = n_k / sum(n), empty bins at half a count.

  Evaluated in float64 on the host from integer counts (N_b is small), so it is exact to rounding.
  """
  m = np.asarray(real_counts, np.float64)
  n = np.asarray(gen_counts, np.float64)
  p = np.maximum(n, EMPTY_BIN_COUNT) / n.sum()
  return float(-2.0 * np.sum(np.where(m > 0, m * np.log(p), 0.0)))
