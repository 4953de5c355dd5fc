"""Eq. (1) losses and the label noise of Sec. 2.3."""

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.train.gan import discriminator_loss, generator_loss, noisy_labels


def test_label_noise_ranges():
  eps = 0.15
  real = np.asarray(noisy_labels(jax.random.PRNGKey(0), 20_000, True, eps))
  fake = np.asarray(noisy_labels(jax.random.PRNGKey(1), 20_000, False, eps))
  assert real.min() >= 1 - eps and real.max() <= 1.0
  assert fake.min() >= 0.0 and fake.max() <= eps
  # Uniform on the interval: mean in the middle, std eps / sqrt(12).
  np.testing.assert_allclose([real.mean(), fake.mean()], [1 - eps / 2, eps / 2], atol=0.002)
  np.testing.assert_allclose([real.std(), fake.std()], eps / np.sqrt(12), rtol=0.03)
  assert np.all(np.asarray(noisy_labels(jax.random.PRNGKey(2), 100, True, 0.0)) == 1.0)


def test_losses_match_eq1():
  rng = np.random.default_rng(0)
  lr, lf = rng.normal(size=50), rng.normal(size=50)
  yr, yf = rng.uniform(0.85, 1, 50), rng.uniform(0, 0.15, 50)
  d = lambda logit: 1 / (1 + np.exp(-logit))
  bce = lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p))
  expected_d = 0.5 * (bce(d(lr), yr).mean() + bce(d(lf), yf).mean())
  np.testing.assert_allclose(discriminator_loss(jnp.asarray(lr), jnp.asarray(lf), jnp.asarray(yr),
                                                jnp.asarray(yf)), expected_d, rtol=1e-5)
  np.testing.assert_allclose(generator_loss(jnp.asarray(lf)), -np.log(d(lf)).mean(), rtol=1e-5)
