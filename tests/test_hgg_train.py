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


def test_lr_reaches_zero_after_decay_epochs_and_the_weights_stop():
  """Sec. 3.1: cosine decay reaching 0 after train.decay_epochs; the paper's Fig. 2 trains on past it
  (6000 epochs, decay over 5000), where the generator no longer moves."""
  from configs import hgg as hgg_config
  from ganjax.train.gan import make_train
  c = hgg_config.get_config("test")
  c.train.epochs, c.train.decay_epochs = 4, 2
  fns = make_train(c, n_cond=5, n_out=4, n_train=512)
  rng = np.random.default_rng(0)
  data = {"gen": jnp.asarray(rng.uniform(-1, 1, (512, 4)), jnp.float32),
          "cond": jnp.asarray(rng.uniform(-1, 1, (512, 5)), jnp.float32)}
  segment = jax.jit(fns.train_segment, static_argnums=3)
  key = jax.random.PRNGKey(1)
  s0 = fns.init(jax.random.PRNGKey(0))
  s1, _ = segment(s0, key, data, 1)
  s2, _ = segment(s1, key, data, 1)
  s4, losses = segment(s2, key, data, 2)
  moved = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in
                           zip(jax.tree.leaves(a.params_g), jax.tree.leaves(b.params_g)))
  assert moved(s0, s1) > 0 and moved(s1, s2) > 0          # still decaying: the generator learns
  assert moved(s2, s4) == 0.0 and int(s4.epoch) == 4       # lr = 0 after epoch 2: frozen (G and D)
  assert all(bool(jnp.all(x == y)) for x, y in zip(jax.tree.leaves(s2.params_d), jax.tree.leaves(s4.params_d)))
  assert np.isfinite(np.asarray(losses)).all()
  # decay_epochs = 0 is "over all epochs": the weights still move in the last epoch.
  c.train.decay_epochs = 0
  fns = make_train(c, n_cond=5, n_out=4, n_train=512)
  segment = jax.jit(fns.train_segment, static_argnums=3)
  t3, _ = segment(fns.init(jax.random.PRNGKey(0)), key, data, 3)
  t4, _ = segment(t3, key, data, 1)
  assert moved(t3, t4) > 0
