"""Training of the toy GAN (DCTR paper Eq. 1, Sec. III A): pure functions, whole loop in lax.scan.

make_train(config) returns (init, train_segment, generate):
  init(key) -> state                          state = {g, d, g_opt, d_opt, step} (a pytree)
  train_segment(state, key, x_NxD, n_steps) -> (state, {"d_loss": [n_steps], "g_loss": [n_steps]})
  generate(g_params, key, n) -> x_nxD
Step s draws its batch and noise from fold_in(key, s) with the global step s, so two segments of n steps
give exactly the state of one segment of 2n steps (exact resume). Losses: the minimax BCE of Eq. 1 for D,
the usual non-saturating -log D(G(z)) for G; Adam for both (as in the paper).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ganjax.models.small_gan import make_small_gan


def _bce(logit, label):
  return label * jax.nn.softplus(-logit) + (1.0 - label) * jax.nn.softplus(logit)


def make_train(config: ml_collections.ConfigDict) -> tuple[Callable, Callable, Callable]:
  """config: data_dim, latent_dim, g_hidden, d_hidden, batch_size, learning_rate, b1, b2.

  Equal settings return the same jitted functions, so repeated calls (tests, scans) compile once.
  """
  return _make_train((int(config.data_dim), int(config.latent_dim), tuple(int(h) for h in config.g_hidden),
                      tuple(int(h) for h in config.d_hidden), int(config.batch_size),
                      float(config.learning_rate), float(config.b1), float(config.b2)))


@functools.lru_cache(maxsize=8)
def _make_train(settings: tuple) -> tuple[Callable, Callable, Callable]:
  data_dim, latent, g_hidden, d_hidden, batch, lr, b1, b2 = settings
  gen, disc = make_small_gan(data_dim, g_hidden, d_hidden)
  tx_g = optax.adam(lr, b1=b1, b2=b2)
  tx_d = optax.adam(lr, b1=b1, b2=b2)

  @jax.jit
  def init(key: jax.Array) -> dict:
    kg, kd = jax.random.split(key)
    g = gen.init(kg, jnp.zeros((1, latent)))
    d = disc.init(kd, jnp.zeros((1, data_dim)))
    return {"g": g, "d": d, "g_opt": tx_g.init(g), "d_opt": tx_d.init(d), "step": jnp.zeros((), jnp.int32)}

  def d_loss_fn(d, g, x_real, z):
    x_fake = gen.apply(g, z)
    return 0.5 * (jnp.mean(_bce(disc.apply(d, x_real), 1.0)) + jnp.mean(_bce(disc.apply(d, x_fake), 0.0)))

  def g_loss_fn(g, d, z):
    return jnp.mean(_bce(disc.apply(d, gen.apply(g, z)), 1.0))

  def one_step(state, key, x_NxD):
    k = jax.random.fold_in(key, state["step"])
    k_idx, k_zd, k_zg = jax.random.split(k, 3)
    x_real = x_NxD[jax.random.randint(k_idx, (batch,), 0, x_NxD.shape[0])]
    d_loss, gd = jax.value_and_grad(d_loss_fn)(state["d"], state["g"], x_real,
                                               jax.random.normal(k_zd, (batch, latent)))
    upd, d_opt = tx_d.update(gd, state["d_opt"], state["d"])
    d = optax.apply_updates(state["d"], upd)
    g_loss, gg = jax.value_and_grad(g_loss_fn)(state["g"], d, jax.random.normal(k_zg, (batch, latent)))
    upd, g_opt = tx_g.update(gg, state["g_opt"], state["g"])
    g = optax.apply_updates(state["g"], upd)
    new = {"g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "step": state["step"] + 1}
    return new, {"d_loss": d_loss, "g_loss": g_loss}

  @partial(jax.jit, static_argnums=3)
  def train_segment(state: dict, key: jax.Array, x_NxD: jax.Array, n_steps: int):
    return jax.lax.scan(lambda s, _: one_step(s, key, x_NxD), state, None, length=n_steps)

  @partial(jax.jit, static_argnums=2)
  def generate(g_params, key: jax.Array, n: int) -> jax.Array:
    return gen.apply(g_params, jax.random.normal(key, (n, latent)))

  return init, train_segment, generate
