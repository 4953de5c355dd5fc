"""Losses shared by the methods: one binary cross-entropy, label noise, gradient penalties, the NLL of a flow.

bce(logit, label) = label softplus(-logit) + (1 - label) softplus(logit) = -label ln d - (1 - label) ln(1 - d)
with d = sigmoid(logit), in its stable form; every GAN and classifier loss of ganjax is built from it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def neg_log_d(logit: jax.Array) -> jax.Array:
  """-ln d with d = sigmoid(logit): the cross-entropy of a real-labelled event, softplus(-logit)."""
  return jax.nn.softplus(-logit)


def neg_log_1md(logit: jax.Array) -> jax.Array:
  """-ln(1 - d) with d = sigmoid(logit): the cross-entropy of a generated-labelled event, softplus(logit)."""
  return jax.nn.softplus(logit)


def bce(logit: jax.Array, label) -> jax.Array:
  """Per-event binary cross-entropy of sigmoid(logit) against a label in [0, 1] (noisy or smoothed labels)."""
  return label * neg_log_d(logit) + (1.0 - label) * neg_log_1md(logit)


def noisy_labels(key: jax.Array, n: int, real: bool, eps) -> jax.Array:
  """Label noise (hgg paper Sec. 2.3): real labels uniform in [1-eps, 1], generated ones in [0, eps]."""
  u = jax.random.uniform(key, (n,), minval=0.0, maxval=eps)
  return 1.0 - u if real else u


def discriminator_bce(logit_real: jax.Array, logit_fake: jax.Array, label_real=1.0, label_fake=0.0) -> jax.Array:
  """The discriminator's loss of the minimax game (hgg paper Eq. 1, DCTR paper Eq. 1): the mean of the real and
  the generated halves' cross-entropies."""
  return 0.5 * (bce(logit_real, label_real).mean() + bce(logit_fake, label_fake).mean())


def generator_nonsaturating(logit_fake: jax.Array) -> jax.Array:
  """The generator's loss -mean ln d(g(z)) (the non-saturating form of Eq. 1)."""
  return bce(logit_fake, 1.0).mean()


def r1_penalty(logit_fn, x_NxD: jax.Array) -> jax.Array:
  """E_x |grad_x logit(x)|^2 over the rows of x_NxD (R1 of Mescheder et al. 2018, arXiv:1801.04406, Eq. 9,
  without its gamma / 2). logit_fn acts row by row, so the gradient of the summed logits is per event."""
  g_NxD = jax.grad(lambda x: jnp.sum(logit_fn(x)))(x_NxD)
  return jnp.mean(jnp.sum(g_NxD ** 2, axis=-1))


def logits_and_input_grad(logit_fn, x_NxD: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(logits, d(sum of logits)/dx): the per-event input gradient of a row-wise discriminator."""
  logits, vjp = jax.vjp(logit_fn, x_NxD)
  return logits, vjp(jnp.ones_like(logits))[0]


def roth_penalty(logit_real, grad_real, logit_fake, grad_fake) -> jax.Array:
  """Roth et al. 2017's regulariser (GANplifying Sec. 2):
  Omega = E_real[(1 - D)^2 |grad_x logit|^2] + E_fake[D^2 |grad_x logit|^2]."""
  return (jnp.mean(jax.nn.sigmoid(-logit_real) ** 2 * jnp.sum(grad_real ** 2, -1))
          + jnp.mean(jax.nn.sigmoid(logit_fake) ** 2 * jnp.sum(grad_fake ** 2, -1)))


def neg_log_likelihood(log_prob_N: jax.Array) -> jax.Array:
  """The maximum-likelihood loss of a density model (a normalizing flow): -mean log p(x | cond)."""
  return -jnp.mean(log_prob_N)
