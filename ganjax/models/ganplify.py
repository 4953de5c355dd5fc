"""The GANplifying networks (Sec. 2, Fig. 3) in flax.linen: an FCN generator and a DeepSets discriminator.

Generator: n_noise uniform inputs in [-1, 1] (paper: 1000) -> depth x (width, ELU, 50% dropout) -> d outputs.
Dropout stays active when generating (paper), so it is on by default.

Discriminator: for each point x_i of the batch B (n x d): B - x_i (n x d) -> embedding Phi by three
kernel-size-1 convolutions (256, 256, m=32 filters; a kernel-size-1 conv is a Dense on the feature axis),
LeakyReLU(0.01) each -> aggregation F = standard deviation over the batch axis -> concat [x_i, F] (d + m)
-> depth x (width, LeakyReLU 0.01, 50% dropout) -> 1 logit (the sigmoid is folded into the loss).

Layers use PyTorch's default Linear/Conv1d initialisation (weights and biases U(-1/sqrt(fan_in),
1/sqrt(fan_in))), since the paper's networks are PyTorch. Dropout draws from the 'dropout' rng stream.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class TorchDense(nn.Module):
  """Dense layer with torch.nn.Linear's default init (also a kernel-size-1 Conv1d along the last axis)."""
  features: int

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    bound = 1.0 / np.sqrt(fan_in)
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)  # noqa: E731
    kernel = self.param("kernel", init, (fan_in, self.features))
    bias = self.param("bias", init, (self.features,))
    return x @ kernel + bias


class Generator(nn.Module):
  """x_NxD = G(z_NxZ), z uniform in [-1, 1]^Z (Sec. 2)."""
  out_dim: int
  width: int = 256
  depth: int = 7
  dropout: float = 0.5
  deterministic: bool = False  # paper: dropout kept active during generation

  @nn.compact
  def __call__(self, z_NxZ):
    h = z_NxZ
    for _ in range(self.depth):
      h = nn.Dropout(self.dropout, deterministic=self.deterministic)(nn.elu(TorchDense(self.width)(h)))
    return TorchDense(self.out_dim)(h)


class DeepSetsDiscriminator(nn.Module):
  """logit_N = D(x_i, B) for every point of the batch B = x_NxD (Sec. 2, Fig. 3)."""
  width: int = 256
  depth: int = 7
  embed: Sequence[int] = (256, 256, 32)
  dropout: float = 0.5
  slope: float = 0.01
  std_eps: float = 1e-8  # keeps the std's gradient finite if a feature is constant over the batch
  deterministic: bool = False

  @nn.compact
  def __call__(self, x_NxD):
    h = x_NxD[None, :, :] - x_NxD[:, None, :]  # [i, j] = B_j - x_i, N x N x D
    for m in self.embed:  # Phi: kernel-size-1 convolutions over the batch axis j
      h = nn.leaky_relu(TorchDense(m)(h), self.slope)
    n = h.shape[1]
    var = jnp.sum((h - h.mean(axis=1, keepdims=True)) ** 2, axis=1) / max(n - 1, 1)  # torch.std: ddof=1
    agg_NxM = jnp.sqrt(var + self.std_eps)  # F: std along the batch
    h = jnp.concatenate([x_NxD, agg_NxM], axis=-1)
    for _ in range(self.depth):
      h = nn.Dropout(self.dropout, deterministic=self.deterministic)(
          nn.leaky_relu(TorchDense(self.width)(h), self.slope))
    return TorchDense(1)(h)[:, 0]
