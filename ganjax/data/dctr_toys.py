"""Multimodal Gaussian toys with analytic densities (DCTR paper Sec. III A, Eqs. 12-14).

Each toy is an equal-weight mixture of isotropic Gaussians with common width sigma:
  bimodal: 1D, means -1 and +1, sigma 0.4                                   (Eq. 12)
  circle:  2D, 8 means (cos(2 pi i/8), sin(2 pi i/8)), i = 1..8, sigma 0.1  (Eq. 13)
  grid:    2D, 25 means (i + 0.1, j + 0.1), i, j = 1..5, sigma 0.1          (Eq. 14, as printed)
Samplers are pure JAX functions of a key; densities are exact, so ideal DCTR weights p_T/p_G can be formed
for any analytic p_G.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

TOY_NAMES = ("bimodal", "circle", "grid")


@partial(jax.jit, static_argnums=3)
def _sample_mixture(key: jax.Array, means_KxD: jax.Array, sigma: jax.Array, n: int) -> jax.Array:
  k_comp, k_noise = jax.random.split(key)
  comp_N = jax.random.randint(k_comp, (n,), 0, means_KxD.shape[0])
  return means_KxD[comp_N] + sigma * jax.random.normal(k_noise, (n, means_KxD.shape[1]), jnp.float32)


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """Equal-weight mixture of isotropic Gaussians: means_KxD, common sigma."""

  name: str
  means_KxD: np.ndarray
  sigma: float

  @property
  def dim(self) -> int:
    return int(self.means_KxD.shape[1])

  def sample(self, key: jax.Array, n: int) -> jax.Array:
    """x_NxD drawn from the mixture (pure; one compiled program per n)."""
    return _sample_mixture(key, jnp.asarray(self.means_KxD, jnp.float32), jnp.float32(self.sigma), int(n))

  def log_density(self, x_NxD: np.ndarray) -> np.ndarray:
    """log p(x) in float64 (numpy), exact."""
    x = np.asarray(x_NxD, np.float64).reshape(-1, self.dim)
    d2_NxK = np.sum((x[:, None, :] - self.means_KxD[None, :, :]) ** 2, axis=-1)
    log_comp = -0.5 * d2_NxK / self.sigma**2 - self.dim * np.log(np.sqrt(2 * np.pi) * self.sigma)
    m = log_comp.max(axis=1, keepdims=True)
    return (m[:, 0] + np.log(np.mean(np.exp(log_comp - m), axis=1)))

  def density(self, x_NxD: np.ndarray) -> np.ndarray:
    return np.exp(self.log_density(x_NxD))

  @property
  def center(self) -> np.ndarray:
    return self.means_KxD.mean(axis=0)


def get_toy(name: str) -> GaussianMixture:
  """The toy of Eq. 12 ('bimodal'), Eq. 13 ('circle') or Eq. 14 ('grid')."""
  if name == "bimodal":
    return GaussianMixture(name, np.array([[-1.0], [1.0]]), 0.4)
  if name == "circle":
    ang = 2 * np.pi * np.arange(1, 9) / 8
    return GaussianMixture(name, np.stack([np.cos(ang), np.sin(ang)], axis=1), 0.1)
  if name == "grid":
    ij = np.arange(1, 6) + 0.1
    gi, gj = np.meshgrid(ij, ij, indexing="ij")
    return GaussianMixture(name, np.stack([gi.ravel(), gj.ravel()], axis=1), 0.1)
  raise ValueError(f"unknown DCTR toy {name!r}; known: {TOY_NAMES}")


def observables(x_NxD: np.ndarray, center: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """1D observables used to judge a (weighted) sample of a toy.

  1D: x and |x - center| (the fold that compares the two modes' shapes). 2D: x, y, their sum and
  difference, and the radius and azimuth about `center` (the mixture's centre of mass; the origin for
  the circle), which probe the rotational and diagonal structure.
  """
  x = np.asarray(x_NxD, np.float64)
  if x.ndim != 2 or x.shape[1] not in (1, 2):
    raise ValueError(f"toy observables need x of shape (N, 1) or (N, 2), got {x.shape}")
  c = np.zeros(x.shape[1]) if center is None else np.asarray(center, np.float64).reshape(x.shape[1])
  if x.shape[1] == 1:
    return {"x": x[:, 0], "abs_x": np.abs(x[:, 0] - c[0])}
  x0, x1 = x[:, 0], x[:, 1]
  return {
    "x": x0,
    "y": x1,
    "x_plus_y": x0 + x1,
    "x_minus_y": x0 - x1,
    "radius": np.hypot(x0 - c[0], x1 - c[1]),
    "angle": np.arctan2(x1 - c[1], x0 - c[0]),
  }
