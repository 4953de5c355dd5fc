"""Conditional-GAN training as pure functions (hgg-background-gan paper, Sec. 2.3 and 3.1).

`make_train(config, n_cond, n_out, n_train)` returns `TrainFns` whose `init(key)` and
`train_segment(state, key, data, n_epochs)` are pure: the epoch loop and the batch loop are `lax.scan`s,
batches come from an in-graph permutation per epoch, and every random number derives from
fold_in(key, epoch) and fold_in(., step), so a resumed run is bit-identical to an uninterrupted one and
`jax.vmap(init)` / `jax.vmap(train_segment)` over keys is an ensemble.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from ganjax.models.dcgan import Discriminator, Generator


@flax.struct.dataclass
class GANState:
  epoch: jax.Array          # completed epochs
  params_g: Any
  params_d: Any
  opt_g: Any
  opt_d: Any


class TrainFns(NamedTuple):
  init: Callable
  train_segment: Callable   # (state, key, data, n_epochs) -> (state, per-epoch mean losses)
  generator: Generator
  discriminator: Discriminator
  steps_per_epoch: int


def make_optimizer(name: str, schedule, beta1: float = 0.9) -> optax.GradientTransformation:
  """LAMB (paper default), Adam or SGD on a learning-rate schedule."""
  if name == "lamb":
    return optax.lamb(schedule, b1=beta1)
  if name == "adam":
    return optax.adam(schedule, b1=beta1)
  if name == "sgd":
    return optax.sgd(schedule, momentum=0.9)
  raise ValueError(f"unknown optimizer {name!r}; use lamb, adam or sgd")


def noisy_labels(key, n: int, real: bool, eps: float):
  """Label noise (Sec. 2.3): real labels uniform in [1-eps, 1], generated ones in [0, eps]."""
  u = jax.random.uniform(key, (n,), minval=0.0, maxval=eps)
  return 1.0 - u if real else u


def discriminator_loss(logit_real, logit_fake, label_real, label_fake):
  """L_d of Eq. (1) with the sign that makes it a loss: binary cross-entropy on noisy labels."""
  return 0.5 * (optax.sigmoid_binary_cross_entropy(logit_real, label_real).mean()
                + optax.sigmoid_binary_cross_entropy(logit_fake, label_fake).mean())


def generator_loss(logit_fake):
  """L_g of Eq. (1): -mean ln d(g(x_cond, z)) (non-saturating form)."""
  return -jax.nn.log_sigmoid(logit_fake).mean()


def make_train(config, n_cond: int, n_out: int, n_train: int) -> TrainFns:
  """Build pure init / train_segment functions closed over the static config."""
  batch = int(config.train.batch_size)
  steps_per_epoch = n_train // batch
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {batch} is larger than the {n_train} training events")
  latent = int(config.model.latent_dim)
  eps = float(config.train.label_noise)
  total_steps = int(config.train.epochs) * steps_per_epoch
  schedule = optax.cosine_decay_schedule(config.train.learning_rate, decay_steps=max(total_steps, 1))
  tx_g = make_optimizer(config.train.optimizer, schedule, config.train.beta1)
  tx_d = make_optimizer(config.train.optimizer, schedule, config.train.beta1)
  gen = Generator(n_out=n_out, width=config.model.g_width)
  disc = Discriminator(width=config.model.d_width, dropout=config.model.dropout)

  def init(key) -> GANState:
    kg, kd = jax.random.split(key)
    z = jnp.zeros((1, latent))
    cond = jnp.zeros((1, n_cond))
    params_g = gen.init(kg, z, cond)
    params_d = disc.init(kd, jnp.zeros((1, n_out)), cond)
    return GANState(epoch=jnp.zeros((), jnp.int32), params_g=params_g, params_d=params_d,
                    opt_g=tx_g.init(params_g), opt_d=tx_d.init(params_d))

  def train_step(state: GANState, key, real_BxO, cond_BxC):
    """One discriminator update, then one generator update (Eq. 1)."""
    kz1, kz2, kl1, kl2, kdrop_r, kdrop_f, kdrop_g = jax.random.split(key, 7)
    fake = gen.apply(state.params_g, jax.random.normal(kz1, (batch, latent)), cond_BxC)
    fake = jax.lax.stop_gradient(fake)
    l_real = noisy_labels(kl1, batch, True, eps)
    l_fake = noisy_labels(kl2, batch, False, eps)

    def d_loss_fn(pd):
      lr = disc.apply(pd, real_BxO, cond_BxC, train=True, rngs={"dropout": kdrop_r})
      lf = disc.apply(pd, fake, cond_BxC, train=True, rngs={"dropout": kdrop_f})
      return discriminator_loss(lr, lf, l_real, l_fake)

    loss_d, grads_d = jax.value_and_grad(d_loss_fn)(state.params_d)
    upd_d, opt_d = tx_d.update(grads_d, state.opt_d, state.params_d)
    params_d = optax.apply_updates(state.params_d, upd_d)

    def g_loss_fn(pg):
      y = gen.apply(pg, jax.random.normal(kz2, (batch, latent)), cond_BxC)
      return generator_loss(disc.apply(params_d, y, cond_BxC, train=True, rngs={"dropout": kdrop_g}))

    loss_g, grads_g = jax.value_and_grad(g_loss_fn)(state.params_g)
    upd_g, opt_g = tx_g.update(grads_g, state.opt_g, state.params_g)
    params_g = optax.apply_updates(state.params_g, upd_g)
    state = state.replace(params_g=params_g, params_d=params_d, opt_g=opt_g, opt_d=opt_d)
    return state, jnp.stack([loss_d, loss_g])

  def train_epoch(state: GANState, key, data):
    """One pass over the training set in shuffled batches (in-graph permutation, lax.scan)."""
    key_perm, key_e = jax.random.split(jax.random.fold_in(key, state.epoch))
    perm = jax.random.permutation(key_perm, n_train)
    idx_SxB = perm[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)

    def body(st, xs):
      i, idx = xs
      return train_step(st, jax.random.fold_in(key_e, i), data["gen"][idx], data["cond"][idx])

    state, losses = jax.lax.scan(body, state, (jnp.arange(steps_per_epoch), idx_SxB))
    return state.replace(epoch=state.epoch + 1), losses.mean(0)

  def train_segment(state: GANState, key, data, n_epochs: int):
    """`n_epochs` epochs as one scan; returns the new state and per-epoch mean (loss_d, loss_g)."""
    return jax.lax.scan(lambda s, _: train_epoch(s, key, data), state, None, length=n_epochs)

  return TrainFns(init=init, train_segment=train_segment, generator=gen, discriminator=disc,
                  steps_per_epoch=steps_per_epoch)
