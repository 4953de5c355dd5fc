"""Conditional normalizing flow: rational-quadratic spline couplings (Durkan et al. 2019, arXiv:1906.04032).

x_NxD (data) <-> z_NxD ~ N(0, 1)^D through L layers; layer l permutes the features (a fixed permutation
drawn from l), leaves the first D//2 unchanged and maps each of the others through a monotone
rational-quadratic spline whose K bin widths, K heights and K-1 inner derivatives are produced by an MLP
(the conditioner) from the unchanged features and the context vector cond_NxC (Durkan et al. Sec. 3.1,
Eqs. 4-8 and App. A). log p(x|c) = log N(z; 0, 1) + sum_l log|det J_l| (change of variables).

Bounds and tails: each spline maps [-B, B] onto [-B, B] and is the identity outside (linear tails,
derivative 1 at both ends, so the map is C^1 and invertible on the whole real line): inputs at, beyond or far
outside the bounds give finite values and log-determinants (clipped inputs are used inside the spline
arithmetic, so the unused branch never produces NaNs in values or gradients). The inputs may be scaled
first by a fixed 1 / x_scale (an exact affine layer), so that the data fill the splines' range: the main
job's quantile-preprocessed features lie in [-1, 1] (uniform marginals), with x_scale = 1 and B = 3 the
Gaussian base's +-3 sigma are covered; the GANplifying toys reach |x| ~ 8, with x_scale = 4.

The flow is also a generator: `Flow()(z, cond)` = the inverse map of latent normals, so a flow is used
exactly like a GAN generator G(z, cond) (latent size = D), with `log_prob`, `forward` (x -> z, log|det|),
`inverse` (z -> x, log|det|) and `sample(key, cond)` besides. A final zero-initialised conditioner layer
makes every layer the identity at initialisation.

The existing JAX flow libraries were not used (docs/flow.md): flowjax's flows are Equinox modules (parameters
inside the module objects, not a Flax parameter tree the engine's optimizers, vmapped ensembles and orbax
checkpoints handle), and distrax needs the TFP JAX substrate (tfp-nightly); the spline is ~60 lines.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MIN_BIN = 1e-3     # smallest bin width / height, as a fraction of 2B (Durkan et al.'s default)
MIN_DERIV = 1e-3   # smallest knot derivative
_SOFTPLUS_1 = float(np.log(np.expm1(1.0 - MIN_DERIV)))  # raw derivative parameter giving derivative 1


def _knots(raw_K, bound: float):
  """Unnormalised bin sizes -> knot positions_K+1 from -B to B and bin sizes_K (each >= MIN_BIN * 2B)."""
  k = raw_K.shape[-1]
  size = 2.0 * bound * (MIN_BIN + (1.0 - MIN_BIN * k) * jax.nn.softmax(raw_K, axis=-1))
  pos = jnp.concatenate([jnp.full(size.shape[:-1] + (1,), -bound), -bound + jnp.cumsum(size, -1)], -1)
  pos = pos.at[..., -1].set(bound)  # exactly B despite rounding of the cumulative sum
  return pos, pos[..., 1:] - pos[..., :-1]


def rq_spline(x, w_raw_K, h_raw_K, d_raw_Km1, bound: float, inverse: bool = False):
  """Elementwise monotone rational-quadratic spline on [-B, B], identity outside (Durkan et al. Eqs. 4-8).

  x: (...); w_raw_K, h_raw_K: (..., K) unnormalised bin widths and heights; d_raw_Km1: (..., K-1) unnormalised
  inner knot derivatives (the two boundary derivatives are 1). Returns (y, log|dy/dx|) of the forward map, or
  of the inverse map with inverse=True (then x is the spline's output and the result its input)."""
  xk_Kp1, w_K = _knots(w_raw_K, bound)
  yk_Kp1, h_K = _knots(h_raw_K, bound)
  ones = jnp.ones(d_raw_Km1.shape[:-1] + (1,), d_raw_Km1.dtype)
  d_Kp1 = jnp.concatenate([ones, MIN_DERIV + jax.nn.softplus(d_raw_Km1 + _SOFTPLUS_1), ones], -1)
  inside = (x > -bound) & (x < bound)
  xc = jnp.clip(x, -bound, bound)  # safe input for the spline branch; the tails take x itself
  knots = yk_Kp1 if inverse else xk_Kp1
  k = jnp.clip(jnp.sum(xc[..., None] >= knots[..., :-1], -1) - 1, 0, w_K.shape[-1] - 1)
  take = lambda a: jnp.take_along_axis(a, k[..., None], -1)[..., 0]
  x0, y0, wk, hk, d0, d1 = take(xk_Kp1), take(yk_Kp1), take(w_K), take(h_K), take(d_Kp1), take(d_Kp1[..., 1:])
  s = hk / wk
  if inverse:  # solve the quadratic of Durkan et al. App. A for xi in [0, 1] (the stable root)
    dy = xc - y0
    a = hk * (s - d0) + dy * (d1 + d0 - 2.0 * s)
    b = hk * d0 - dy * (d1 + d0 - 2.0 * s)
    c = -s * dy
    xi = jnp.clip(2.0 * c / (-b - jnp.sqrt(jnp.maximum(b * b - 4.0 * a * c, 0.0))), 0.0, 1.0)
    out = x0 + xi * wk
  else:
    xi = (xc - x0) / wk
    out = y0 + hk * (s * xi ** 2 + d0 * xi * (1.0 - xi)) / (s + (d1 + d0 - 2.0 * s) * xi * (1.0 - xi))
  den = s + (d1 + d0 - 2.0 * s) * xi * (1.0 - xi)
  logdet = (2.0 * jnp.log(s) + jnp.log(d1 * xi ** 2 + 2.0 * s * xi * (1.0 - xi) + d0 * (1.0 - xi) ** 2)
            - 2.0 * jnp.log(den))  # Eq. 5: log d(forward)/dx at xi
  if inverse:
    logdet = -logdet
  return jnp.where(inside, out, x), jnp.where(inside, logdet, 0.0)


def layer_permutation(n_features: int, layer: int) -> np.ndarray:
  """The fixed feature permutation of layer l (a reversal for l = 0, then seeded random ones)."""
  if layer == 0:
    return np.arange(n_features)[::-1].copy()
  return np.random.default_rng(layer).permutation(n_features)


class Coupling(nn.Module):
  """One permutation + spline coupling layer: x -> y with log|det dy/dx| per row."""

  n_features: int
  layer: int
  n_bins: int = 8
  hidden: Sequence[int] = (64, 64)
  bound: float = 3.0

  @nn.compact
  def __call__(self, x_NxD, cond_NxC, inverse: bool = False):
    d, k = self.n_features, self.n_bins
    perm = layer_permutation(d, self.layer)
    n_id = d // 2  # unchanged features (0 in 1D: the spline is then conditioned on cond alone)
    if not inverse:
      x_NxD = x_NxD[:, perm]
    ctx = jnp.concatenate([x_NxD[:, :n_id], cond_NxC], -1)
    if ctx.shape[-1] == 0:  # unconditional 1D: the spline parameters are free (a constant input)
      ctx = jnp.ones((x_NxD.shape[0], 1), x_NxD.dtype)
    h = ctx
    for width in self.hidden:
      h = nn.gelu(nn.Dense(width)(h))
    n_tr = d - n_id
    p = nn.Dense(n_tr * (3 * k - 1), kernel_init=nn.initializers.zeros)(h).reshape(-1, n_tr, 3 * k - 1)
    y_tr, logdet = rq_spline(x_NxD[:, n_id:], p[..., :k], p[..., k:2 * k], p[..., 2 * k:], self.bound, inverse)
    y = jnp.concatenate([x_NxD[:, :n_id], y_tr], -1)
    if inverse:
      y = y[:, np.argsort(perm)]
    return y, logdet.sum(-1)


class Flow(nn.Module):
  """p(x | cond) on R^D: n_layers couplings of n_bins-bin splines on [-bound, bound] (after x / x_scale)."""

  n_features: int
  n_layers: int = 4
  n_bins: int = 8
  hidden: Sequence[int] = (64, 64)
  bound: float = 3.0
  x_scale: float = 1.0
  clip: float | None = None  # generated values clipped to [-clip, clip] by __call__ (a bounded support)

  def setup(self):
    self.layers = [Coupling(self.n_features, l, self.n_bins, tuple(self.hidden), self.bound)
                   for l in range(self.n_layers)]

  def _cond(self, x_NxD, cond_NxC):
    return jnp.zeros((x_NxD.shape[0], 0), x_NxD.dtype) if cond_NxC is None else cond_NxC

  def forward(self, x_NxD, cond_NxC=None):
    """x -> z and log|det dz/dx|_N."""
    cond = self._cond(x_NxD, cond_NxC)
    z = x_NxD / self.x_scale
    logdet = jnp.full(x_NxD.shape[:1], -self.n_features * np.log(self.x_scale), x_NxD.dtype)
    for layer in self.layers:
      z, ld = layer(z, cond)
      logdet = logdet + ld
    return z, logdet

  def inverse(self, z_NxD, cond_NxC=None):
    """z -> x and log|det dx/dz|_N."""
    cond = self._cond(z_NxD, cond_NxC)
    x, logdet = z_NxD, jnp.zeros(z_NxD.shape[:1], z_NxD.dtype)
    for layer in self.layers[::-1]:
      x, ld = layer(x, cond, inverse=True)
      logdet = logdet + ld
    return x * self.x_scale, logdet + self.n_features * np.log(self.x_scale)

  def log_prob(self, x_NxD, cond_NxC=None):
    """log p(x | cond)_N, exact: log N(z; 0, 1) + log|det dz/dx|."""
    z, logdet = self.forward(x_NxD, cond_NxC)
    return jnp.sum(-0.5 * z ** 2 - 0.5 * np.log(2.0 * np.pi), -1) + logdet

  def __call__(self, z_NxD, cond_NxC=None):
    """The flow as a generator: x = f^-1(z | cond) for latent normals z (clipped to [-clip, clip] if set)."""
    x = self.inverse(z_NxD, cond_NxC)[0]
    return x if self.clip is None else jnp.clip(x, -self.clip, self.clip)

  def sample(self, key, cond_NxC, n: int | None = None):
    """One x per row of cond (or n unconditional ones when cond is None)."""
    n = cond_NxC.shape[0] if cond_NxC is not None else n
    return self(jax.random.normal(key, (n, self.n_features)), cond_NxC)


def flops_per_object(flow: Flow, n_cond: int) -> dict[str, int]:
  """Multiply-adds of the conditioners per generated object (analytic) and the spline evaluations."""
  d, k = flow.n_features, flow.n_bins
  n_id = d // 2
  widths = [max(n_id + n_cond, 1), *flow.hidden, (d - n_id) * (3 * k - 1)]
  macs = flow.n_layers * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
  return {"macs": int(macs), "flops": int(2 * macs), "spline_evaluations": int(flow.n_layers * (d - n_id))}
