"""Quantile transform to a uniform distribution on [-1, 1], as a pytree (hgg paper, Sec. 2.5).

The paper found sklearn's QuantileTransformer(output_distribution='uniform') the best preprocessing. Here it is
a piecewise-linear map through `n_quantiles` knots per feature, fitted on the SR training set only, stored as
arrays (so it is checkpointed with the model and applied identically in numpy and inside jitted JAX code), and
exactly invertible on its support [knot_0, knot_last] up to float rounding. The output is 2u - 1 so that it
matches the generator's tanh range.

Integer features (n_jets, n_vtx) are de-quantised before fitting (n -> n + U(0, 1)) so that the transform
has no flat steps, and re-discretised with floor on the way back; `dequantize` / `requantize` do this.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class QuantileTransform:
  """Per-feature knots: knots_DxQ[d] are the sorted quantiles of feature d at probabilities probs_Q."""

  knots_DxQ: jax.Array
  probs_Q: jax.Array

  @property
  def n_features(self) -> int:
    return self.knots_DxQ.shape[0]

  def forward(self, x_NxD):
    """Physical -> [-1, 1]. Values outside the fitted support are clamped to the ends."""
    xp = jnp if isinstance(x_NxD, jax.Array) else np
    cols = [xp.interp(x_NxD[..., d], self.knots_DxQ[d], self.probs_Q) for d in range(self.n_features)]
    return 2.0 * xp.stack(cols, axis=-1) - 1.0

  def inverse(self, y_NxD):
    """[-1, 1] -> physical (inputs outside [-1, 1] are clamped)."""
    xp = jnp if isinstance(y_NxD, jax.Array) else np
    u = (y_NxD + 1.0) * 0.5
    cols = [xp.interp(u[..., d], self.probs_Q, self.knots_DxQ[d]) for d in range(self.n_features)]
    return xp.stack(cols, axis=-1)

  def select(self, idx: Sequence[int]) -> "QuantileTransform":
    """The transform of a subset of features (in the given order)."""
    return QuantileTransform(knots_DxQ=self.knots_DxQ[np.asarray(list(idx), dtype=np.int64)],
                             probs_Q=self.probs_Q)


def fit_quantile_transform(x_NxD: np.ndarray, n_quantiles: int = 1000) -> QuantileTransform:
  """Fit knots on a training sample. Knots are made strictly increasing so the map is a bijection."""
  x_NxD = np.asarray(x_NxD, np.float64)
  if x_NxD.ndim != 2 or x_NxD.shape[0] < 2:
    raise ValueError(f"need a 2D sample with at least 2 rows, got shape {x_NxD.shape}")
  n_q = int(min(n_quantiles, x_NxD.shape[0]))
  probs = np.linspace(0.0, 1.0, n_q)
  knots = np.quantile(x_NxD, probs, axis=0).T.astype(np.float32)  # D x Q
  # Ties (repeated values) would give flat steps: lift each knot to the next float above its predecessor.
  for d in range(knots.shape[0]):
    for q in range(1, n_q):
      if knots[d, q] <= knots[d, q - 1]:
        knots[d, q] = np.nextafter(knots[d, q - 1], np.float32(np.inf))
  return QuantileTransform(knots_DxQ=knots, probs_Q=np.asarray(probs, np.float32))


def dequantize(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Integer values -> continuous: n + U(0, 1)."""
  return np.asarray(n, np.float64) + rng.random(np.shape(n))


def requantize(x) -> np.ndarray:
  """Continuous values back to integers: floor (exact inverse of `dequantize`)."""
  return np.floor(x)
