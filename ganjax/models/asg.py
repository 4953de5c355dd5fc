"""Generator and discriminator of the analysis-specific GAN (paper: analysis-specific-gan, Sec. 4, Fig. 3).

G: N Gaussian noise numbers -> 64-128-256-512-256-128 (leaky ReLU) -> N (linear).
D: N features -> 128-128-256-256-128-64-32-16-8 (leaky ReLU) -> 1 (sigmoid). D returns the logit; the
sigmoid is applied inside the binary cross-entropy (ganjax.engine.losses.bce), which is the same function,
computed stably. Leaky-ReLU slope 0.2 and Glorot-uniform kernels as in the authors'
Keras code (DY-GAN); the paper's extra "mass output" of D is the regression term of Eq. 2, computed in
the training code (ganjax.asg.train) from the generated features.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

G_HIDDEN = (64, 128, 256, 512, 256, 128)
D_HIDDEN = (128, 128, 256, 256, 128, 64, 32, 16, 8)


class MLP(nn.Module):
  """Dense stack with leaky-ReLU hidden layers and a linear output layer of width n_out."""
  hidden: Sequence[int]
  n_out: int
  slope: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = nn.initializers.glorot_uniform()
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width, kernel_init=init)(x), self.slope)
    return nn.Dense(self.n_out, kernel_init=init)(x)


def generator(n_features: int, hidden: Sequence[int] = G_HIDDEN, slope: float = 0.2) -> MLP:
  """G(z_BxN) -> x_BxN (standardised model-space features); noise size = N (Sec. 4)."""
  return MLP(tuple(hidden), n_features, slope)


def discriminator(hidden: Sequence[int] = D_HIDDEN, slope: float = 0.2) -> MLP:
  """D(x_BxN) -> logit_Bx1; sigmoid(logit) is the probability that x is real."""
  return MLP(tuple(hidden), 1, slope)
