"""Analytic toy truths of the GANplifying paper with exact CDFs and exact quantile boundaries.

* camel (1D, Eq. 1):  P(x) = (N(-4,1) + N(4,1)) / 2.
* ring  (2D, Eq. 3):  P(r) = N_{4,1}(r) + N_{-4,1}(r) for r >= 0 (|4 + z|, z ~ N(0,1)), phi uniform;
  trained in Cartesian (x, y).
* shell (5D, Eq. 4):  the same radial profile times a uniform density on the 4-sphere ("uniform angular
  density"). In hyperspherical angles (phi1, phi2, phi3 in [0, pi], phi4 in [0, 2 pi)) the surface element
  sin^3(phi1) sin^2(phi2) sin(phi3) factorises, so each angle has its own exact CDF.

Every truth factorises in its "quantile coordinates" (x; r, phi; r, phi1..phi4), hence a product of 1D
quantiles per coordinate (e.g. 7x7, 3^5) holds exactly 1/N_bins of the truth mass. Boundaries are found by
bisection of the exact CDFs to float64 precision; bin assignment is jnp (jit/vmap friendly).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr

TWO_PI = 2.0 * np.pi


# ---- exact 1D CDFs (numpy, float64) -------------------------------------------------------------------

def camel_cdf(x):
  """CDF of Eq. (1)."""
  x = np.asarray(x, np.float64)
  return 0.5 * (ndtr(x + 4.0) + ndtr(x - 4.0))


def radial_cdf(r):
  """CDF of P(r) = N_{4,1}(r) + N_{-4,1}(r), r >= 0 (Eqs. 3, 4): the folded normal |N(4,1)|."""
  r = np.maximum(np.asarray(r, np.float64), 0.0)
  return ndtr(r - 4.0) + ndtr(r + 4.0) - 1.0


def sin_power_cdf(power: int) -> Callable[[np.ndarray], np.ndarray]:
  """CDF of a polar angle on [0, pi] with density proportional to sin(phi)**power (power 1, 2, 3)."""
  def cdf1(p):
    return 0.5 * (1.0 - np.cos(p))

  def cdf2(p):
    return (p - np.sin(p) * np.cos(p)) / np.pi

  def cdf3(p):
    c = np.cos(p)
    return (2.0 - 3.0 * c + c ** 3) / 4.0

  table = {1: cdf1, 2: cdf2, 3: cdf3}
  if power not in table:
    raise ValueError(f"sin_power_cdf: power must be 1, 2 or 3, got {power}")
  f = table[power]
  return lambda p: f(np.clip(np.asarray(p, np.float64), 0.0, np.pi))


def azimuth_cdf(p):
  """CDF of a uniform azimuth on [0, 2 pi)."""
  return np.clip(np.asarray(p, np.float64), 0.0, TWO_PI) / TWO_PI


def invert_cdf(cdf: Callable, probs: np.ndarray, lo: float, hi: float, n_iter: int = 200) -> np.ndarray:
  """Vectorised bisection: x with cdf(x) = probs for a monotone cdf on [lo, hi] (float64 exact)."""
  probs = np.asarray(probs, np.float64)
  a = np.full_like(probs, lo)
  b = np.full_like(probs, hi)
  for _ in range(n_iter):  # fixed count: converges to adjacent floats well before 200 halvings
    m = 0.5 * (a + b)
    below = cdf(m) < probs
    a = np.where(below, m, a)
    b = np.where(below, b, m)
  return 0.5 * (a + b)


# ---- coordinates -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Coordinate:
  """One quantile coordinate: its name, exact CDF and support used to bracket the inversion."""
  name: str
  cdf: Callable[[np.ndarray], np.ndarray]
  lo: float
  hi: float


@dataclasses.dataclass(frozen=True)
class Binning:
  """Product quantiles: n_per_coord exact quantiles in each of `coords`; n_bins = n_per_coord**len(coords).

  inner_edges[k] holds the n_per_coord - 1 interior boundaries of coordinate coords[k].
  """
  name: str
  coords: tuple[int, ...]
  n_per_coord: int
  inner_edges: tuple[np.ndarray, ...]

  @property
  def n_bins(self) -> int:
    return self.n_per_coord ** len(self.coords)

  def assign(self, c_NxK: jax.Array) -> jax.Array:
    """Flat bin index in [0, n_bins) of each point given its quantile coordinates (row-major)."""
    idx = jnp.zeros(c_NxK.shape[:-1], jnp.int32)
    for k, edges in zip(self.coords, self.inner_edges):  # a few coordinates: static unroll
      i_k = jnp.searchsorted(jnp.asarray(edges, c_NxK.dtype), c_NxK[..., k], side="right",
                             method="compare_all")  # <= 49 edges: one vectorised comparison
      idx = idx * self.n_per_coord + i_k.astype(jnp.int32)
    return idx


@dataclasses.dataclass(frozen=True)
class Toy:
  """A truth: Cartesian sampler (jnp), map to quantile coordinates and back, exact per-coordinate CDFs."""
  name: str
  dim: int
  coordinates: tuple[Coordinate, ...]
  sample: Callable[[jax.Array, int], jax.Array]          # (key, n) -> x_NxD float32
  to_coords: Callable[[jax.Array], jax.Array]            # x_NxD -> c_NxK
  from_coords: Callable[[jax.Array], jax.Array]          # c_NxK -> x_NxD

  @functools.lru_cache(maxsize=None)
  def inner_edges(self, coord: int, n_quantiles: int) -> np.ndarray:
    """The n-1 interior boundaries of n exact quantiles of one coordinate (each holds mass 1/n)."""
    if n_quantiles < 1:
      raise ValueError(f"{self.name}: n_quantiles must be >= 1, got {n_quantiles}")
    if not 0 <= coord < len(self.coordinates):
      raise ValueError(f"{self.name}: coordinate {coord} out of range 0..{len(self.coordinates) - 1}")
    c = self.coordinates[coord]
    probs = np.arange(1, n_quantiles) / n_quantiles
    return invert_cdf(c.cdf, probs, c.lo, c.hi)

  def binning(self, name: str, coords: Sequence[int], n_per_coord: int) -> Binning:
    coords = tuple(int(c) for c in coords)
    return Binning(name, coords, int(n_per_coord),
                   tuple(self.inner_edges(c, int(n_per_coord)) for c in coords))


# ---- samplers and coordinate maps --------------------------------------------------------------------

def _radius(key, n):
  return jnp.abs(4.0 + jax.random.normal(key, (n,)))


def _camel_sample(key, n):
  ks, kn = jax.random.split(key)
  sign = jnp.where(jax.random.bernoulli(ks, 0.5, (n,)), 1.0, -1.0)
  return (4.0 * sign + jax.random.normal(kn, (n,)))[:, None]


def _ring_sample(key, n):
  kr, kp = jax.random.split(key)
  r = _radius(kr, n)
  phi = jax.random.uniform(kp, (n,), maxval=TWO_PI)
  return jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi)], -1)


def _azimuth(y, x):
  """atan2 mapped to [0, 2 pi) (a tiny negative angle would otherwise round up to 2 pi in float32)."""
  a = jnp.arctan2(y, x)
  a = jnp.where(a < 0, a + TWO_PI, a)
  return jnp.where(a >= TWO_PI, 0.0, a)


def _ring_coords(x_Nx2):
  r = jnp.hypot(x_Nx2[:, 0], x_Nx2[:, 1])
  phi = _azimuth(x_Nx2[:, 1], x_Nx2[:, 0])
  return jnp.stack([r, phi], -1)


def _ring_from_coords(c_Nx2):
  r, phi = c_Nx2[:, 0], c_Nx2[:, 1]
  return jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi)], -1)


def _shell_sample(key, n):
  kr, kd = jax.random.split(key)
  g = jax.random.normal(kd, (n, 5))
  u = g / jnp.linalg.norm(g, axis=-1, keepdims=True)  # isotropic direction on the 4-sphere
  return _radius(kr, n)[:, None] * u


def _shell_coords(x_Nx5):
  """Hyperspherical (r, phi1, phi2, phi3, phi4): x1 = r cos phi1, ..., x5 = r sin phi1..sin phi3 sin phi4."""
  tail = jnp.sqrt(jnp.cumsum((x_Nx5 ** 2)[:, ::-1], axis=-1))[:, ::-1]  # |x_k..x_5|, k = 1..5
  r = tail[:, 0]
  polar = [jnp.arccos(jnp.clip(x_Nx5[:, k] / jnp.maximum(tail[:, k], 1e-30), -1.0, 1.0)) for k in range(3)]
  phi4 = _azimuth(x_Nx5[:, 4], x_Nx5[:, 3])
  return jnp.stack([r, *polar, phi4], -1)


def _shell_from_coords(c_Nx5):
  r, p1, p2, p3, p4 = (c_Nx5[:, k] for k in range(5))
  s1, s2, s3 = jnp.sin(p1), jnp.sin(p2), jnp.sin(p3)
  return jnp.stack([r * jnp.cos(p1), r * s1 * jnp.cos(p2), r * s1 * s2 * jnp.cos(p3),
                    r * s1 * s2 * s3 * jnp.cos(p4), r * s1 * s2 * s3 * jnp.sin(p4)], -1)


_R = Coordinate("r", radial_cdf, 0.0, 30.0)

TOYS: dict[str, Toy] = {
    "camel": Toy("camel", 1, (Coordinate("x", camel_cdf, -30.0, 30.0),), _camel_sample,
                 lambda x: x, lambda c: c),
    "ring": Toy("ring", 2, (_R, Coordinate("phi", azimuth_cdf, 0.0, TWO_PI)), _ring_sample,
                _ring_coords, _ring_from_coords),
    "shell": Toy("shell", 5, (_R, Coordinate("phi1", sin_power_cdf(3), 0.0, np.pi),
                              Coordinate("phi2", sin_power_cdf(2), 0.0, np.pi),
                              Coordinate("phi3", sin_power_cdf(1), 0.0, np.pi),
                              Coordinate("phi4", azimuth_cdf, 0.0, TWO_PI)),
                 _shell_sample, _shell_coords, _shell_from_coords),
}


def get_toy(name: str) -> Toy:
  if name not in TOYS:
    raise ValueError(f"unknown toy {name!r}; choose one of {sorted(TOYS)}")
  return TOYS[name]


def make_binnings(toy: Toy, specs: Sequence[tuple[str, Sequence[int], int]]) -> tuple[Binning, ...]:
  """Binnings from (name, coordinate indices, quantiles per coordinate) triples, e.g. ("7x7", (0, 1), 7)."""
  return tuple(toy.binning(name, coords, n) for name, coords, n in specs)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def training_samples(toy: Toy, key: jax.Array, n_members: int, n_train: int) -> jax.Array:
  """Independent training samples, one per ensemble member: x_MxNxD (member m from fold_in(key, m))."""
  keys = jax.vmap(lambda m: jax.random.fold_in(key, m))(jnp.arange(n_members))
  return jax.vmap(lambda k: toy.sample(k, n_train))(keys)
