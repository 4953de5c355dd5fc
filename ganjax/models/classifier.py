"""Fully connected networks: a generic MLP and a binary classifier returning logits.

The DCTR reweighter h (DCTR paper Sec. II C), the toy GAN discriminators D and generators G (Sec. III A) are
all plain MLPs; this module is their one implementation. Models hold no training logic.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_ACTIVATIONS = {
  "relu": nn.relu,
  "leaky_relu": lambda x: nn.leaky_relu(x, 0.01),
  "tanh": jnp.tanh,
  "gelu": nn.gelu,
  "silu": nn.silu,
}


def activation_fn(name: str):
  """The activation function called `name` (ValueError listing the known names otherwise)."""
  if name not in _ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


class MLP(nn.Module):
  """x_NxD -> y_NxO: Dense layers of widths `hidden` with `activation`, then a linear Dense(out_dim)."""

  hidden: Sequence[int]
  out_dim: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, x_NxD: jax.Array) -> jax.Array:
    act = activation_fn(self.activation)
    h = x_NxD
    for width in self.hidden:
      h = act(nn.Dense(int(width))(h))
    return nn.Dense(int(self.out_dim))(h)


class MLPClassifier(nn.Module):
  """x_NxD -> logit_N of a binary classifier; h(x) = sigmoid(logit).

  Returning the logit (not the sigmoid) keeps the BCE loss and the DCTR weight
  w = h / (1 - h) = exp(logit) numerically exact for confident outputs.
  """

  hidden: Sequence[int]
  activation: str = "relu"

  @nn.compact
  def __call__(self, x_NxD: jax.Array) -> jax.Array:
    return MLP(self.hidden, 1, self.activation)(x_NxD)[..., 0]
