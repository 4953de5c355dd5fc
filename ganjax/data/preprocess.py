"""Quantile transform to a uniform distribution on [-1, 1] or to a standard normal, as a pytree (hgg paper,
Sec. 2.5).

The paper found sklearn's QuantileTransformer(output_distribution='uniform') the best preprocessing. Here it is
a piecewise-linear map through `n_quantiles` knots per feature, fitted on the SR training set only, stored as
arrays (so it is checkpointed with the model and applied identically in numpy and inside jitted JAX code), and
exactly invertible on its support [knot_0, knot_last] up to float rounding. The uniform output is 2u - 1 (the
range of the paper's tanh generator output); the normal output is Phi^-1(e + (1 - 2e) u) with e = 1/(2Q), a
bijection of the support onto [-z_e, z_e] (z_e = 3.1 at Q = 500), for a generator with a linear output layer.

Why the normal output exists (measured on the main job's quick preset): the fake photon follows its parent
jet, so the generator must learn y_fake ~ y_jet. With uniform coordinates and a tanh output that is
tanh(h) = y_jet, i.e. h = atanh(y_jet), which diverges at the ends: the generated fake eta and phi never left
|y| < 0.97, so the 2.2% of SR fakes in the endcap (|y| > 0.98) were never generated and the mass piled up at
|eta| = 1.40. In normal coordinates the same relation is close to the identity.

Excluded intervals ("gaps", e.g. the ECAL barrel-endcap gap 1.4442 < |eta| < 1.566 where no photon is
reconstructed): a feature with a gap (a, b) is first squeezed, |x| -> |x| - (b - a) + 1e-6 for |x| >= b
(sign kept; the gap itself into a 1e-6 sliver, so the map stays a bijection), and the knots see a hole-free
support. Without it the linear piece between the last knot below the gap and the first above spreads
generated values into the gap (0.3% of a perfect generator's events at 500 knots, measured); with it a
generated value lands in the gap with probability ~1e-6.

Integer features (n_jets, n_vtx) are de-quantised before fitting (n -> n + U(0, 1)) so that the transform
has no flat steps, and re-discretised with floor on the way back; `dequantize` / `requantize` do this.
"""

from __future__ import annotations

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
import scipy.special


TAILS = ("knots", "sample")
OUTPUTS = ("uniform", "normal")


def _xp(x):
  return jnp if isinstance(x, jax.Array) else np


def _ndtr(xp, z):
  return jax.scipy.special.ndtr(z) if xp is jnp else scipy.special.ndtr(z)


def _ndtri(xp, p):
  return jax.scipy.special.ndtri(p) if xp is jnp else scipy.special.ndtri(p)


GAP_KEEP = 1e-6  # width the squeezed gap keeps, so that the squeeze stays a bijection at its edges


def _gap_widths(xp, gaps_Dx2):
  """(a, b, width, kept width) of each feature's gap a < |x| < b; a row (0, 0) has width 0."""
  a, b = gaps_Dx2[:, 0], gaps_Dx2[:, 1]
  w = xp.maximum(b - a, 0.0)
  return a, b, w, xp.minimum(w, GAP_KEEP)


def squeeze_gaps(x, gaps_Dx2):
  """Shrink each feature's excluded interval a < |x| < b to width GAP_KEEP (sign kept): |x| >= b ->
  |x| - (b - a) + GAP_KEEP, the gap linearly into (a, a + GAP_KEEP). A row (0, 0) is the identity."""
  xp = _xp(x)
  a, b, w, keep = _gap_widths(xp, gaps_Dx2)
  ax = xp.abs(x)
  inside = a + (ax - a) * keep / xp.where(w > 0, w, 1.0)
  s = xp.where(ax >= b, ax - w + keep, xp.where(ax > a, inside, ax))
  return xp.sign(x) * s


def unsqueeze_gaps(s, gaps_Dx2):
  """Inverse of `squeeze_gaps`: |s| >= a + GAP_KEEP -> |s| + (b - a) - GAP_KEEP; the kept sliver (no data,
  probability ~1e-6 for a generated value) back into the gap."""
  xp = _xp(s)
  a, _, w, keep = _gap_widths(xp, gaps_Dx2)
  a_s = xp.abs(s)
  inside = a + (a_s - a) * w / xp.where(keep > 0, keep, 1.0)
  x = xp.where(a_s >= a + keep, a_s + w - keep, xp.where(a_s > a, inside, a_s))
  return xp.sign(s) * x


def tail_eps(output: str, n_quantiles: int, n_rows: int, tails: str = "knots") -> float:
  """The probability e below the lowest (and above the highest) knot's normal coordinate: 1/(2Q) for the
  "knots" tails (Q = min(n_quantiles, N) knots), 1/(2N) for the "sample" tails (N fitted rows)."""
  if tails not in TAILS:
    raise ValueError(f"quantile tails {tails!r}: one of {TAILS}")
  return 0.5 / n_rows if tails == "sample" and output == "normal" else 0.5 / min(n_quantiles, n_rows)


def output_bound(output: str, n_quantiles: int, n_rows: int | None = None, tails: str = "knots") -> float:
  """The largest |coordinate| a fitted transform produces: 1 for the uniform output, Phi^-1(1 - e) for the
  normal one, e from `tail_eps` (knots: 3.09 at Q = 500, 3.29 at Q = 1000; sample: 4.10 at N = 24k,
  4.42 at N = 100k)."""
  if output not in OUTPUTS:
    raise ValueError(f"quantile output {output!r}: one of {OUTPUTS}")
  n_rows = n_quantiles if n_rows is None else n_rows
  return 1.0 if output == "uniform" else float(scipy.special.ndtri(1.0 - tail_eps(output, n_quantiles, n_rows,
                                                                                    tails)))


@flax.struct.dataclass
class QuantileTransform:
  """Per-feature knots: knots_DxQ[d] are the sorted quantiles of feature d at probabilities probs_Q (of the
  squeezed feature when gaps_Dx2[d] is a gap); `output` is "uniform" ([-1, 1]) or "normal"."""

  knots_DxQ: jax.Array
  probs_Q: jax.Array
  gaps_Dx2: jax.Array | None = None
  output: str = flax.struct.field(pytree_node=False, default="uniform")
  eps: float | None = flax.struct.field(pytree_node=False, default=None)  # None: 1/(2Q) (`tail_eps`)

  @property
  def n_features(self) -> int:
    return self.knots_DxQ.shape[0]

  @property
  def _eps(self) -> float:
    return 0.5 / self.probs_Q.shape[0] if self.eps is None else self.eps

  def forward(self, x_NxD):
    """Physical -> [-1, 1] (uniform) or normal coordinates. Values outside the fitted support are clamped
    to the ends."""
    xp = _xp(x_NxD)
    if self.gaps_Dx2 is not None:
      x_NxD = squeeze_gaps(x_NxD, self.gaps_Dx2)
    cols = [xp.interp(x_NxD[..., d], self.knots_DxQ[d], self.probs_Q) for d in range(self.n_features)]
    u = xp.stack(cols, axis=-1)
    if self.output == "normal":
      return _ndtri(xp, self._eps + (1.0 - 2.0 * self._eps) * u)
    return 2.0 * u - 1.0

  def to_uniform(self, y_NxD):
    """Model coordinates -> the uniform [-1, 1] ones (identity for the uniform output); for the binned metric."""
    if self.output == "uniform":
      return y_NxD
    xp = _xp(y_NxD)
    u = xp.clip((_ndtr(xp, y_NxD) - self._eps) / (1.0 - 2.0 * self._eps), 0.0, 1.0)
    return 2.0 * u - 1.0

  def inverse(self, y_NxD):
    """Model coordinates -> physical (inputs beyond the support's image are clamped to its ends)."""
    xp = _xp(y_NxD)
    u = (self.to_uniform(y_NxD) + 1.0) * 0.5
    cols = [xp.interp(u[..., d], self.probs_Q, self.knots_DxQ[d]) for d in range(self.n_features)]
    x = xp.stack(cols, axis=-1)
    return unsqueeze_gaps(x, self.gaps_Dx2) if self.gaps_Dx2 is not None else x

  def select(self, idx: Sequence[int]) -> "QuantileTransform":
    """The transform of a subset of features (in the given order)."""
    idx = np.asarray(list(idx), dtype=np.int64)
    return QuantileTransform(knots_DxQ=self.knots_DxQ[idx], probs_Q=self.probs_Q,
                             gaps_Dx2=None if self.gaps_Dx2 is None else self.gaps_Dx2[idx], output=self.output,
                             eps=self.eps)


def knot_probs(output: str, n_quantiles: int, n_rows: int, tails: str = "knots") -> np.ndarray:
  """The knots' probabilities. "knots": equally spaced in probability, the normal coordinate ending at
  +-Phi^-1(1 - 1/(2Q)); every one of the outer intervals holds 1/Q of the sample, mapped linearly, so the
  sample's steep tail beyond the 1 - 1/Q quantile comes back flat, and a generator's mass beyond the bound
  lands on the sample's extreme value. "sample" (normal output): equally spaced in the normal coordinate
  out to +-Phi^-1(1 - 1/(2N)), so the tails are resolved down to single events (their knots are the
  sample's order statistics) and a standard normal loses only ~1/N of its mass to the bound."""
  n_q = min(n_quantiles, n_rows)
  if tails == "knots" or output != "normal":
    return np.linspace(0.0, 1.0, n_q)
  eps = tail_eps(output, n_quantiles, n_rows, tails)
  b = scipy.special.ndtri(1.0 - eps)
  probs = np.clip((scipy.special.ndtr(np.linspace(-b, b, n_q)) - eps) / (1.0 - 2.0 * eps), 0.0, 1.0)
  probs[0], probs[-1] = 0.0, 1.0
  return probs


def fit_quantile_transform(x_NxD: np.ndarray, n_quantiles: int = 1000, output: str = "uniform",
                           gaps_Dx2: np.ndarray | None = None, tails: str = "knots") -> QuantileTransform:
  """Fit knots on a training sample. Knots are made strictly increasing so the map is a bijection.
  gaps_Dx2: per feature an excluded interval (a, b) of |x| (0 <= a < b), or (0, 0) for none.
  tails: "knots" or "sample", how the normal output resolves the sample's tails (`knot_probs`)."""
  if output not in OUTPUTS:
    raise ValueError(f"quantile output must be one of {OUTPUTS}, got {output!r}")
  if tails not in TAILS:
    raise ValueError(f"quantile tails must be one of {TAILS}, got {tails!r}")
  x_NxD = np.asarray(x_NxD, np.float64)
  if x_NxD.ndim != 2 or x_NxD.shape[0] < 2:
    raise ValueError(f"need a 2D sample with at least 2 rows, got shape {x_NxD.shape}")
  if gaps_Dx2 is not None:
    gaps_Dx2 = np.asarray(gaps_Dx2, np.float32).reshape(x_NxD.shape[1], 2)
    if np.any(gaps_Dx2[:, 0] < 0) or np.any(gaps_Dx2[:, 1] < gaps_Dx2[:, 0]):
      raise ValueError(f"gaps must be (a, b) with 0 <= a <= b, got {gaps_Dx2.tolist()}")
    x_NxD = np.asarray(squeeze_gaps(x_NxD, gaps_Dx2.astype(np.float64)), np.float64)
  n_q = int(min(n_quantiles, x_NxD.shape[0]))
  probs = knot_probs(output, n_quantiles, x_NxD.shape[0], tails)
  if np.any(np.diff(probs.astype(np.float32)) <= 0):
    raise ValueError(f"{n_q} knots on {x_NxD.shape[0]} rows: probabilities not distinct in float32")
  knots = np.quantile(x_NxD, probs, axis=0).T.astype(np.float32)  # D x Q
  # Ties (repeated values) would give flat steps: lift each knot to the next float above its predecessor.
  for d in range(knots.shape[0]):
    for q in range(1, n_q):
      if knots[d, q] <= knots[d, q - 1]:
        knots[d, q] = np.nextafter(knots[d, q - 1], np.float32(np.inf))
  eps = tail_eps(output, n_quantiles, x_NxD.shape[0], tails) if tails == "sample" and output == "normal" else None
  return QuantileTransform(knots_DxQ=knots, probs_Q=np.asarray(probs, np.float32), gaps_Dx2=gaps_Dx2,
                           output=output, eps=eps)


def dequantize(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Integer values -> continuous: n + U(0, 1)."""
  return np.asarray(n, np.float64) + rng.random(np.shape(n))


def requantize(x) -> np.ndarray:
  """Continuous values back to integers: floor (exact inverse of `dequantize`)."""
  return np.floor(x)
