"""Feature preprocessing for analysis-specific generation (paper: analysis-specific-gan, Sec. 3, App. A).

A feature is one of four kinds; each maps the physical value x to a smooth "model-space" value u that
the GAN learns, and back:

  continuous  u = x                                   x = u
  asinh       u = asinh(x / s)                        x = s sinh(u)          (heavy tails, e.g. d_xy)
  discrete    u = n + 1/2 + sigma z, z ~ N(0, 1)      n = floor(u)           (App. A, Gaussian smearing)
  zero_spike  u = log x           for x > 0           x = exp(u) if u >= t0 else 0
              u = t0 - w |z|      for x == 0          (t0 = log of the smallest positive training value)

Discrete: App. A smears an integer n with a Gaussian of width sigma centred on n and takes the floor of
the generator output. Centred on n, floor() returns n or n-1 with equal probability for sigma = 0.5 (the
mean shifts by -1/2); centred on n + 1/2 it returns n with probability erf(1 / (2 sqrt(2) sigma)) and
n +- k symmetrically otherwise, so the integer distribution comes back exactly for sigma << 1 and up to a
symmetric (mean-preserving) +-1 smear for sigma = 0.5 on "pseudo-continuous" counts. We centre on n + 1/2.

Zero spike (the paper's "sharp edge", Sec. 5.2: lepton isolation is exactly 0 for most muons): a delta
function is not learnable by a generator with a smooth output, so the zeros are unfolded into a smooth
half-Gaussian below the smallest positive value in log space (a left-censored variable, like a Tobit
model); decoding clips back to exactly 0. The spike fraction becomes the generated mass below t0, a
smooth functional the GAN can learn, and the positive part is learned in log space (no edge at 0).

The random parts (smearing, spike filling) are redrawn for every batch inside the training graph
(`augment`), so the generator sees the smooth density, not one frozen draw. The fitted preprocessing is
a pytree (`Preproc`) of arrays; `decode` is pure jnp and differentiable a.e. with `discretize=False`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

KINDS = ("continuous", "asinh", "discrete", "zero_spike")


@struct.dataclass
class Preproc:
  """Fitted preprocessing: per-feature kind (static), parameter, and standardisation of u."""
  param_D: jax.Array   # asinh: scale s; discrete: sigma; zero_spike: t0; continuous: unused (0)
  width_D: jax.Array   # zero_spike: w (half-Gaussian width in log units); else 0
  mean_D: jax.Array    # mean of u on the (augmented) training sample
  std_D: jax.Array     # std of u on the (augmented) training sample
  names: tuple = struct.field(pytree_node=False)
  kinds: tuple = struct.field(pytree_node=False)


def feature_kinds(names: Sequence[str], discrete: Mapping[str, float] | None = None,
                  zero_spike: Sequence[str] | None = None,
                  asinh: Mapping[str, float] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
  """Kinds and parameters (sigma / scale) per feature from the config's name lists."""
  discrete, asinh, zero_spike = dict(discrete or {}), dict(asinh or {}), tuple(zero_spike or ())
  for group in (discrete, asinh, zero_spike):
    unknown = [n for n in group if n not in names]
    if unknown:
      raise ValueError(f"features {unknown} are given a kind but are not in the feature list {list(names)}")
  kinds, params = [], []
  for n in names:
    tagged = [k for k, g in (("discrete", discrete), ("asinh", asinh), ("zero_spike", zero_spike)) if n in g]
    if len(tagged) > 1:
      raise ValueError(f"feature {n!r} is given two kinds {tagged}")
    kind = tagged[0] if tagged else "continuous"
    kinds.append(kind)
    params.append({"discrete": discrete.get(n, 0.0), "asinh": asinh.get(n, 0.0)}.get(kind, 0.0))
  return tuple(kinds), np.asarray(params, np.float64)


def encode_raw(features: Mapping[str, np.ndarray], names: Sequence[str], kinds: Sequence[str],
               param_D: np.ndarray, t0_D: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic part of the encoding (numpy): physical columns -> raw u_NxD (before noise).

  Discrete values go to n + 1/2, zero-spike zeros go to t0 - 1 (below the threshold; `augment` redraws
  them). Returns (u_NxD float32, t0_D) where t0 is fitted here unless given.
  """
  cols, t0 = [], np.zeros(len(names)) if t0_D is None else np.asarray(t0_D, np.float64).copy()
  for j, (n, kind) in enumerate(zip(names, kinds)):
    x = np.asarray(features[n], np.float64)
    if kind == "continuous":
      u = x
    elif kind == "asinh":
      u = np.arcsinh(x / param_D[j])
    elif kind == "discrete":
      if np.any(x != np.round(x)):
        raise ValueError(f"discrete feature {n!r} has {int(np.sum(x != np.round(x)))} non-integer values")
      u = x + 0.5
    elif kind == "zero_spike":
      neg = int(np.sum(x < 0))
      if neg:
        raise ValueError(f"zero_spike feature {n!r} has {neg} negative values")
      pos = x[x > 0]
      if t0_D is None:
        if pos.size == 0:
          raise ValueError(f"zero_spike feature {n!r} has no positive values")
        t0[j] = np.log(pos.min())
      u = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), t0[j] - 1.0)
    else:
      raise ValueError(f"unknown feature kind {kind!r} for {n!r}; kinds: {KINDS}")
    cols.append(u)
  return np.stack(cols, axis=1).astype(np.float32), t0


def augment(param_D: jax.Array, width_D: jax.Array, kinds: Sequence[str], u_BxD: jax.Array,
            key: jax.Array) -> jax.Array:
  """Redraw the random parts: Gaussian smearing of discrete features, zero-spike filling (jnp)."""
  z_BxD = jax.random.normal(key, u_BxD.shape, u_BxD.dtype)
  is_disc = jnp.asarray([k == "discrete" for k in kinds])
  is_spike = jnp.asarray([k == "zero_spike" for k in kinds])
  u = jnp.where(is_disc, u_BxD + param_D * z_BxD, u_BxD)
  zero = is_spike & (u_BxD < param_D)
  return jnp.where(zero, param_D - width_D * jnp.abs(z_BxD), u)


def fit(features: Mapping[str, np.ndarray], names: Sequence[str], discrete=None, zero_spike=None,
        asinh=None, spike_width: float = 1.0, seed: int = 0) -> tuple[Preproc, np.ndarray]:
  """Fit the preprocessing on training columns; returns (Preproc, raw u_NxD for `augment`)."""
  names = tuple(names)
  missing = [n for n in names if n not in features]
  if missing:
    raise ValueError(f"features {missing} not in the table; available: {list(features)}")
  kinds, par = feature_kinds(names, discrete, zero_spike, asinh)
  raw, t0 = encode_raw(features, names, kinds, par)
  param = np.where(np.asarray(kinds) == "zero_spike", t0, par).astype(np.float32)
  width = np.where(np.asarray(kinds) == "zero_spike", spike_width, 0.0).astype(np.float32)
  u = np.asarray(augment(jnp.asarray(param), jnp.asarray(width), kinds, jnp.asarray(raw),
                         jax.random.PRNGKey(seed)))
  std = u.std(0)
  std = np.where(std > 0, std, 1.0)
  pre = Preproc(jnp.asarray(param), jnp.asarray(width), jnp.asarray(u.mean(0), jnp.float32),
                jnp.asarray(std, jnp.float32), names, kinds)
  return pre, raw


def standardize(pre: Preproc, u_BxD: jax.Array) -> jax.Array:
  return (u_BxD - pre.mean_D) / pre.std_D


def decode(pre: Preproc, x_BxD: jax.Array, discretize: bool = True) -> dict[str, jax.Array]:
  """Standardised model output -> physical columns {name: (B,)} (jnp).

  discretize=False gives the differentiable version used in the regression terms: discrete features
  stay continuous (u - 1/2), zero-spike features are exp(u) above t0 and 0 below.
  """
  u_BxD = x_BxD * pre.std_D + pre.mean_D
  out = {}
  for j, (n, kind) in enumerate(zip(pre.names, pre.kinds)):
    u, p = u_BxD[:, j], pre.param_D[j]
    if kind == "continuous":
      out[n] = u
    elif kind == "asinh":
      out[n] = p * jnp.sinh(jnp.clip(u, -30.0, 30.0))
    elif kind == "discrete":
      out[n] = jnp.floor(u) if discretize else u - 0.5
    else:
      out[n] = jnp.where(u >= p, jnp.exp(jnp.clip(u, None, 30.0)), 0.0)
  return out
