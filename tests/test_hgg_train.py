"""Eq. (1) losses and the label noise of Sec. 2.3 (from ganjax.engine.losses), the cosine decay of Sec. 3.1,
and the per-member hyperparameters of the conditional GAN's TrainSpec."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import load_config

from ganjax.engine import losses
from ganjax.hgg.train import make_train, set_member_hyperparams


def test_label_noise_ranges():
  eps = 0.15
  real = np.asarray(losses.noisy_labels(jax.random.PRNGKey(0), 20_000, True, eps))
  fake = np.asarray(losses.noisy_labels(jax.random.PRNGKey(1), 20_000, False, eps))
  assert real.min() >= 1 - eps and real.max() <= 1.0
  assert fake.min() >= 0.0 and fake.max() <= eps
  # Uniform on the interval: mean in the middle, std eps / sqrt(12).
  np.testing.assert_allclose([real.mean(), fake.mean()], [1 - eps / 2, eps / 2], atol=0.002)
  np.testing.assert_allclose([real.std(), fake.std()], eps / np.sqrt(12), rtol=0.03)
  assert np.all(np.asarray(losses.noisy_labels(jax.random.PRNGKey(2), 100, True, 0.0)) == 1.0)


def test_losses_match_eq1():
  rng = np.random.default_rng(0)
  lr, lf = rng.normal(size=50), rng.normal(size=50)
  yr, yf = rng.uniform(0.85, 1, 50), rng.uniform(0, 0.15, 50)
  d = lambda logit: 1 / (1 + np.exp(-logit))
  bce = lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p))
  expected_d = 0.5 * (bce(d(lr), yr).mean() + bce(d(lf), yf).mean())
  np.testing.assert_allclose(losses.discriminator_bce(jnp.asarray(lr), jnp.asarray(lf), jnp.asarray(yr),
                                                      jnp.asarray(yf)), expected_d, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_nonsaturating(jnp.asarray(lf)), -np.log(d(lf)).mean(), rtol=1e-5)


def _data():
  rng = np.random.default_rng(0)
  return {"gen": jnp.asarray(rng.uniform(-1, 1, (512, 4)), jnp.float32),
          "cond": jnp.asarray(rng.uniform(-1, 1, (512, 5)), jnp.float32)}


def _moved(a, b):
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_lr_reaches_zero_after_decay_length_and_the_weights_stop():
  """Sec. 3.1: cosine decay reaching 0 after train.optimizer.decay_length epochs; the paper's Fig. 2 trains
  on past it (6000 epochs, decay over 5000), where the generator no longer moves."""
  data = _data()
  train = make_train(load_config("hgg:test", **{"train.epochs": 4, "train.optimizer.decay_length": 2}),
                     n_cond=5, n_out=4, n_train=512)
  spe = train.spec.sampler.steps_per_epoch
  segment = jax.jit(train.train_segment, static_argnums=2)
  s0 = train.init(jax.random.PRNGKey(0))
  s1, _ = segment(s0, data, spe)
  s2, _ = segment(s1, data, spe)
  s4, metrics = segment(s2, data, 2 * spe)
  assert _moved(s0.params["g"], s1.params["g"]) > 0 and _moved(s1.params["g"], s2.params["g"]) > 0
  assert _moved(s2.params["g"], s4.params["g"]) == 0.0 and int(s4.epoch) == 4   # lr = 0 after epoch 2
  assert _moved(s2.params["d"], s4.params["d"]) == 0.0
  assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
  assert set(metrics) == {"d_loss", "g_loss"} and metrics["d_loss"].shape == (2,)  # per-epoch means
  # decay_length = 0 is "over all epochs": the weights still move in the last epoch.
  train = make_train(load_config("hgg:test", **{"train.epochs": 4}), n_cond=5, n_out=4, n_train=512)
  segment = jax.jit(train.train_segment, static_argnums=2)
  t3, _ = segment(train.init(jax.random.PRNGKey(0)), data, 3 * spe)
  t4, _ = segment(t3, data, spe)
  assert _moved(t3.params["g"], t4.params["g"]) > 0


def test_member_hyperparameters_live_in_the_state():
  """A member with the config's own values trains exactly like the default state; another label noise or
  peak learning rate (set under vmap, as train_members does) trains differently."""
  data = _data()
  train = make_train(load_config("hgg:test"), n_cond=5, n_out=4, n_train=512)
  spe = train.spec.sampler.steps_per_epoch
  segment = jax.jit(train.train_segment, static_argnums=2)
  s0 = train.init(jax.random.PRNGKey(0))
  assert float(s0.hyper["label_noise"]) == np.float32(0.15)
  same = set_member_hyperparams(s0, learning_rate=1e-3, b1=0.9, label_noise=0.15)
  ref, _ = segment(s0, data, spe)
  assert _moved(ref.params["g"], segment(same, data, spe)[0].params["g"]) == 0.0
  stacked = jax.tree.map(lambda a: jnp.stack([a, a]), s0)
  varied = jax.vmap(set_member_hyperparams)(stacked, learning_rate=jnp.array([1e-3, 1e-3]),
                                            label_noise=jnp.array([0.15, 0.0]))
  assert np.asarray(varied.hyper["label_noise"]).tolist() == [np.float32(0.15), 0.0]
  other = jax.tree.map(lambda a: a[1], varied)
  assert _moved(ref.params["d"], segment(other, data, spe)[0].params["d"]) > 0
