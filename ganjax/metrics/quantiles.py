"""Quantile MSE (GANplifying Eq. 2), its sampling expectation, equivalent events and amplification.

MSE = 1/Nq sum_j (x_j - 1/Nq)^2, x_j the estimated probability in exact quantile j. For N events sampled
from the truth, counts are multinomial(N, 1/Nq), so

  E[MSE_sample](N) = (Nq - 1) / (Nq^2 N),

which we invert to read off the number of sampled events a given MSE is worth:
N_eq(MSE) = (Nq - 1) / (Nq^2 MSE); amplification = N_eq / N_train (Sec. 2). For an estimator with
quantile probabilities q_j sampled N times, E[MSE] = 1/Nq sum (q_j - 1/Nq)^2 + 1/Nq sum q_j (1 - q_j) / N;
the second (pure sampling) term is estimated without bias by 1/Nq sum x_j (1 - x_j) / (N - 1), which gives
the large-N asymptote of a GAN curve from a finite number of GANned events.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def quantile_mse(probs_K):
  """Eq. (2) for estimated probabilities x_j (last axis = quantiles); works on numpy or jax arrays."""
  k = probs_K.shape[-1]
  return ((probs_K - 1.0 / k) ** 2).mean(-1)


def sample_mse_expectation(n_events, n_quantiles):
  """E[MSE] of N events sampled from the truth: (Nq - 1) / (Nq^2 N)."""
  n_events = np.asarray(n_events, np.float64)
  return (n_quantiles - 1.0) / (n_quantiles ** 2 * n_events)


def equivalent_events(mse, n_quantiles):
  """Number of truth-sampled events whose expected quantile MSE equals `mse` (inverse of the above)."""
  mse = np.asarray(mse, np.float64)
  with np.errstate(divide="ignore"):
    return np.where(mse > 0, (n_quantiles - 1.0) / (n_quantiles ** 2 * np.maximum(mse, 1e-300)), np.inf)


def amplification(mse, n_quantiles, n_train):
  """Amplification factor = equivalent sampled events / training events (Sec. 2)."""
  return equivalent_events(mse, n_quantiles) / float(n_train)


def mse_curve(sample_fn: Callable[[jax.Array, int], jax.Array], key: jax.Array,
              to_coords: Callable[[jax.Array], jax.Array], binnings: Sequence, n_chunks: int,
              chunk: int) -> dict[str, jax.Array]:
  """Quantile MSE of the first k*chunk events of a stream, k = 1..n_chunks, without storing the events.

  sample_fn(key, chunk) -> x_CxD (a GAN or the truth); chunk k uses fold_in(key, k). Returns
  mse_KxB and noise_KxB (the unbiased sampling-noise estimate, see module doc) for the B binnings, and the
  final counts per binning. Jit/vmap friendly (one lax.scan over chunks).
  """
  if n_chunks < 1 or chunk < 1:
    raise ValueError(f"mse_curve: n_chunks and chunk must be >= 1, got {n_chunks}, {chunk}")

  def body(counts, i):
    c = to_coords(sample_fn(jax.random.fold_in(key, i), chunk))
    n = ((i + 1) * chunk).astype(jnp.float32)
    new, mse, noise = [], [], []
    for b, cnt in zip(binnings, counts):  # a few binnings: static unroll
      cnt = cnt + jnp.bincount(b.assign(c), length=b.n_bins)
      p = cnt.astype(jnp.float32) / n
      new.append(cnt)
      mse.append(quantile_mse(p))
      noise.append((p * (1.0 - p)).mean() / jnp.maximum(n - 1.0, 1.0))
    return new, (jnp.stack(mse), jnp.stack(noise))

  counts0 = [jnp.zeros(b.n_bins, jnp.int32) for b in binnings]
  counts, (mse, noise) = jax.lax.scan(body, counts0, jnp.arange(n_chunks))
  return {"mse": mse, "noise": noise, "counts": counts}


def counts_mse(x_NxD: jax.Array, to_coords: Callable, binnings: Sequence) -> jax.Array:
  """Quantile MSE of one fixed sample (e.g. a training sample) for each binning: mse_B."""
  c = to_coords(x_NxD)
  n = x_NxD.shape[0]
  return jnp.stack([quantile_mse(jnp.bincount(b.assign(c), length=b.n_bins) / n) for b in binnings])


def band(values_M, axis: int = 0) -> dict[str, np.ndarray]:
  """Ensemble band: mean and standard deviation (ddof=1) over members, as in the paper's error bands."""
  v = np.asarray(values_M, np.float64)
  return {"mean": v.mean(axis), "std": v.std(axis, ddof=1) if v.shape[axis] > 1 else np.zeros_like(v.mean(axis))}


def amplification_summary(mse_M, noise_M, n_quantiles: int, n_train: int) -> dict[str, float]:
  """Amplification read-off at the largest number of GANned events, with the ensemble band.

  `mse_M` is each member's MSE at the largest N; `noise_M` its sampling-noise estimate. Reports the
  amplification of the ensemble-mean MSE (the paper's read-off of the saturated curve), its band from
  mean -/+ std of the MSE, the same for the noise-subtracted asymptote, and the median and 16/84%
  percentiles of the per-member amplification.
  """
  mse = np.asarray(mse_M, np.float64)
  asym = mse - np.asarray(noise_M, np.float64)
  out = {}
  for tag, v in (("", mse), ("asymptote_", asym)):
    b = band(v)
    out[f"{tag}mse_mean"] = float(b["mean"])
    out[f"{tag}mse_std"] = float(b["std"])
    out[f"{tag}amplification"] = float(amplification(b["mean"], n_quantiles, n_train))
    out[f"{tag}amplification_lo"] = float(amplification(b["mean"] + b["std"], n_quantiles, n_train))
    out[f"{tag}amplification_hi"] = float(amplification(b["mean"] - b["std"], n_quantiles, n_train))
  per_member = amplification(mse, n_quantiles, n_train)
  out["member_amplification_p16"], out["member_amplification_median"], out["member_amplification_p84"] = (
      float(q) for q in np.percentile(per_member, [16, 50, 84]))
  return out
