"""Conditional-GAN training as pure functions (hgg-background-gan paper, Sec. 2.3 and 3.1).

`make_train(config, n_cond, n_out, n_train)` returns `TrainFns` whose `init(key)` and
`train_segment(state, key, data, n_epochs)` are pure: the epoch loop and the batch loop are `lax.scan`s,
batches come from an in-graph permutation per epoch, and every random number derives from
fold_in(key, epoch) and fold_in(., step), so a resumed run is bit-identical to an uninterrupted one and
`jax.vmap(init)` / `jax.vmap(train_segment)` over keys is an ensemble. The label noise and the peak learning
rate live in the state (the latter through optax.inject_hyperparams), so members of such an ensemble may
differ in them too (`set_hyperparams`). With a `mesh`, the batch axis is split over its devices
(ganjax/parallel.py): data-parallel training with all-reduced gradients.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from ganjax.models.dcgan import Discriminator, Generator
from ganjax.parallel import shard_batch


@flax.struct.dataclass
class GANState:
  epoch: jax.Array          # completed epochs
  params_g: Any
  params_d: Any
  opt_g: Any
  opt_d: Any
  label_noise: jax.Array    # eps of the label noise (Sec. 2.3), per member in an ensemble


class TrainFns(NamedTuple):
  init: Callable
  train_segment: Callable   # (state, key, data, n_epochs) -> (state, per-epoch mean losses)
  generator: Generator
  discriminator: Discriminator
  steps_per_epoch: int


def make_optimizer(name: str, learning_rate, beta1: float = 0.9) -> optax.GradientTransformation:
  """LAMB (paper default), Adam or SGD at a learning rate (a number or a schedule)."""
  if name == "lamb":
    return optax.lamb(learning_rate, b1=beta1)
  if name == "adam":
    return optax.adam(learning_rate, b1=beta1)
  if name == "sgd":
    return optax.sgd(learning_rate, momentum=0.9)
  raise ValueError(f"unknown optimizer {name!r}; use lamb, adam or sgd")


def make_scheduled_optimizer(name: str, peak_lr: float, beta1: float, total_steps: int):
  """The optimiser at `peak_lr` with its learning rate and beta1 injected into the state (so they can differ
  between vmapped members), times the cosine decay 1 -> 0 over `total_steps` and 0 after it (paper Sec. 3.1). Every
  optimiser here applies its learning rate as a final linear scale, so this equals a cosine-decayed lr."""
  kwargs = {"learning_rate": peak_lr} if name == "sgd" else {"learning_rate": peak_lr, "beta1": beta1}
  inner = optax.inject_hyperparams(make_optimizer, static_args=("name",))(name=name, **kwargs)
  return optax.chain(inner, optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, max(total_steps, 1))))


def set_hyperparams(state: GANState, learning_rate=None, beta1=None, label_noise=None) -> GANState:
  """A state with other hyperparameters (use under vmap for per-member values)."""
  def opt(o):
    hp = dict(o[0].hyperparams)
    if learning_rate is not None:
      hp["learning_rate"] = jnp.asarray(learning_rate, hp["learning_rate"].dtype)
    if beta1 is not None:
      if "beta1" not in hp:
        raise ValueError("beta1 is not a hyperparameter of sgd")
      hp["beta1"] = jnp.asarray(beta1, hp["beta1"].dtype)
    return (o[0]._replace(hyperparams=hp),) + tuple(o[1:])

  state = state.replace(opt_g=opt(state.opt_g), opt_d=opt(state.opt_d))
  if label_noise is not None:
    state = state.replace(label_noise=jnp.asarray(label_noise, jnp.float32))
  return state


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


def make_train(config, n_cond: int, n_out: int, n_train: int, mesh: Mesh | None = None) -> TrainFns:
  """Build pure init / train_segment functions closed over the static config (batch split over `mesh`)."""
  batch = int(config.train.batch_size)
  steps_per_epoch = n_train // batch
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {batch} is larger than the {n_train} training events")
  latent = int(config.model.latent_dim)
  if mesh is not None and batch % mesh.size:
    raise ValueError(f"batch_size {batch} is not a multiple of the {mesh.size} devices it is split over")
  # Sec. 3.1: cosine decay from the peak lr, reaching 0 after decay_epochs (0 = all epochs), then 0.
  total_steps = int(config.train.decay_epochs or config.train.epochs) * steps_per_epoch
  tx_g = make_scheduled_optimizer(config.train.optimizer, config.train.learning_rate, config.train.beta1,
                                  total_steps)
  tx_d = tx_g
  shard = lambda x: shard_batch(x, mesh)
  gen = Generator(n_out=n_out, width=config.model.g_width)
  disc = Discriminator(width=config.model.d_width, dropout=config.model.dropout)

  def init(key) -> GANState:
    kg, kd = jax.random.split(key)
    z = jnp.zeros((1, latent))
    cond = jnp.zeros((1, n_cond))
    params_g = gen.init(kg, z, cond)
    params_d = disc.init(kd, jnp.zeros((1, n_out)), cond)
    return GANState(epoch=jnp.zeros((), jnp.int32), params_g=params_g, params_d=params_d,
                    opt_g=tx_g.init(params_g), opt_d=tx_d.init(params_d),
                    label_noise=jnp.asarray(config.train.label_noise, jnp.float32))

  def train_step(state: GANState, key, real_BxO, cond_BxC):
    """One discriminator update, then one generator update (Eq. 1)."""
    kz1, kz2, kl1, kl2, kdrop_r, kdrop_f, kdrop_g = jax.random.split(key, 7)
    real_BxO, cond_BxC = shard(real_BxO), shard(cond_BxC)
    fake = gen.apply(state.params_g, shard(jax.random.normal(kz1, (batch, latent))), cond_BxC)
    fake = jax.lax.stop_gradient(fake)
    l_real = shard(noisy_labels(kl1, batch, True, state.label_noise))
    l_fake = shard(noisy_labels(kl2, batch, False, state.label_noise))

    def d_loss_fn(pd):
      lr = disc.apply(pd, real_BxO, cond_BxC, train=True, rngs={"dropout": kdrop_r})
      lf = disc.apply(pd, fake, cond_BxC, train=True, rngs={"dropout": kdrop_f})
      return discriminator_loss(lr, lf, l_real, l_fake)

    loss_d, grads_d = jax.value_and_grad(d_loss_fn)(state.params_d)
    upd_d, opt_d = tx_d.update(grads_d, state.opt_d, state.params_d)
    params_d = optax.apply_updates(state.params_d, upd_d)

    def g_loss_fn(pg):
      y = gen.apply(pg, shard(jax.random.normal(kz2, (batch, latent))), cond_BxC)
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
