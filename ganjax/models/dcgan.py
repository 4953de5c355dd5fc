"""Conditional DC-GAN of the hgg-background-gan paper (Sec. 3.1), in Flax.

Generator: dense 1024 -> three 2D deconvolutions with 32/16/8 filters of size 4x4/2x2/2x2 -> one 2D
convolution with 4 filters 3x3 -> dense n_out with tanh. Discriminator: dense 256 -> three 2D convolutions
with 32/64/64 filters of size 2x2/2x2/4x4 and LeakyReLU -> dropout 0.2 -> dense 1 (a logit; the paper's
sigmoid is applied in the loss, which is the numerically stable form of the same thing).

The paper gives neither the reshape geometry nor the strides. Chosen here (and in `configs/hgg.py`):
- G: dense 1024 reshaped to 4x4x64; deconvolution 32@4x4 stride 2 -> 8x8x32; 16@2x2 stride 1 -> 8x8x16;
  8@2x2 stride 1 -> 8x8x8; convolution 4@3x3 -> 8x8x4; flatten (256) -> dense n_out, tanh. ReLU between
  layers (DC-GAN's choice for G). One upsampling keeps the image small: ~0.7 M multiply-adds and ~5k
  activations (20 kB in fp32) per generated object, which matters because the validation metric generates
  100 objects per event.
- D: dense 256 reshaped to 4x4x16; convolutions 32@2x2 stride 1 -> 4x4x32; 64@2x2 stride 2 -> 2x2x64;
  64@4x4 stride 1 -> 2x2x64; LeakyReLU(0.2); flatten -> dropout 0.2 -> dense 1.
`width` scales every layer's width (1.0 = the paper; the quick preset uses less) and keeps the geometry.

Both networks take the conditional features: G sees concat(z, cond), D sees concat(object, cond).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


def _scaled(n: int, width: float) -> int:
  return max(1, int(round(n * width)))


class Deconv(nn.Module):
  """2D transposed convolution ("deconvolution"), SAME padding.

  Stride 1 is flax's ConvTranspose. Stride s > 1 is computed in its sub-pixel form (Shi et al. 2016): a
  convolution with kernel k/s to s*s*features channels, then depth-to-space, plus one bias per output
  channel. It has exactly the parameters of a k x k stride-s transposed convolution (k*k*C_in*features
  weights + features biases) and spans the same functions up to the boundary padding, but runs on XLA's
  regular convolution path, which is ~4x faster on CPU than the input-dilated transposed convolution.
  """

  features: int
  kernel: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxC):
    f, k, s = self.features, self.kernel, self.stride
    if s == 1:
      return nn.ConvTranspose(f, (k, k), padding="SAME", dtype=self.dtype)(x_BxHxWxC)
    if k % s:
      raise ValueError(f"kernel {k} must be a multiple of stride {s}")
    y = nn.Conv(f * s * s, (k // s, k // s), padding="SAME", use_bias=False, dtype=self.dtype)(x_BxHxWxC)
    b, h, w = y.shape[:-3], y.shape[-3], y.shape[-2]
    y = y.reshape(b + (h, w, s, s, f))
    y = jnp.swapaxes(y, -4, -3).reshape(b + (h * s, w * s, f))
    return y + self.param("bias", nn.initializers.zeros, (f,)).astype(y.dtype)


class Generator(nn.Module):
  """z_BxL, cond_BxC -> object_BxO: in (-1, 1) with the paper's tanh output, unbounded with `output="linear"`
  (for targets in normal quantile coordinates, ganjax/data/preprocess.py)."""

  n_out: int = 4
  width: float = 1.0
  dense: int = 1024
  reshape: Sequence[int] = (4, 4, 64)
  filters: Sequence[int] = (32, 16, 8)
  kernels: Sequence[int] = (4, 2, 2)
  strides: Sequence[int] = (2, 1, 1)
  conv_filters: int = 4
  conv_kernel: int = 3
  output: str = "tanh"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BxL, cond_BxC=None):
    x = z_BxL if cond_BxC is None or cond_BxC.shape[-1] == 0 else jnp.concatenate([z_BxL, cond_BxC], -1)
    h, w, c = self.reshape
    c = _scaled(c, self.width)
    x = nn.relu(nn.Dense(h * w * c, dtype=self.dtype)(x.astype(self.dtype)))
    x = x.reshape(x.shape[:-1] + (h, w, c))
    for f, k, s in zip(self.filters, self.kernels, self.strides):
      x = nn.relu(Deconv(_scaled(f, self.width), k, s, dtype=self.dtype)(x))
    x = nn.relu(nn.Conv(self.conv_filters, (self.conv_kernel, self.conv_kernel), padding="SAME",
                        dtype=self.dtype)(x))
    x = x.reshape(x.shape[:-3] + (-1,))
    y = nn.Dense(self.n_out, dtype=self.dtype)(x)
    return (jnp.tanh(y) if self.output == "tanh" else y).astype(jnp.float32)


class Discriminator(nn.Module):
  """object_BxO, cond_BxC -> logit_B (the probability of 'real' is sigmoid(logit))."""

  width: float = 1.0
  reshape: Sequence[int] = (4, 4, 16)
  filters: Sequence[int] = (32, 64, 64)
  kernels: Sequence[int] = (2, 2, 4)
  strides: Sequence[int] = (1, 2, 1)
  dropout: float = 0.2
  negative_slope: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, y_BxO, cond_BxC=None, *, train: bool = False):
    x = y_BxO if cond_BxC is None or cond_BxC.shape[-1] == 0 else jnp.concatenate([y_BxO, cond_BxC], -1)
    h, w, c = self.reshape
    c = _scaled(c, self.width)
    x = nn.leaky_relu(nn.Dense(h * w * c, dtype=self.dtype)(x.astype(self.dtype)), self.negative_slope)
    x = x.reshape(x.shape[:-1] + (h, w, c))
    for f, k, s in zip(self.filters, self.kernels, self.strides):
      x = nn.leaky_relu(nn.Conv(_scaled(f, self.width), (k, k), strides=(s, s), padding="SAME",
                                dtype=self.dtype)(x), self.negative_slope)
    x = x.reshape(x.shape[:-3] + (-1,))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(1, dtype=self.dtype)(x)[..., 0].astype(jnp.float32)


def generator_flops_per_object(n_in: int, model: Generator) -> dict[str, int]:
  """Multiply-adds and activation counts per generated object for the chosen geometry (analytic)."""
  h, w, c = model.reshape
  c = _scaled(c, model.width)
  macs = n_in * h * w * c
  acts = h * w * c
  cin = c
  for f, k, s in zip(model.filters, model.kernels, model.strides):
    f = _scaled(f, model.width)
    macs += h * w * cin * k * k * f  # transposed conv: every input element scatters k*k*f products
    h, w, cin = h * s, w * s, f
    acts += h * w * f
  macs += h * w * model.conv_filters * model.conv_kernel ** 2 * cin
  acts += h * w * model.conv_filters
  macs += h * w * model.conv_filters * model.n_out
  acts += model.n_out
  return {"macs": int(macs), "flops": int(2 * macs), "activations": int(acts)}
