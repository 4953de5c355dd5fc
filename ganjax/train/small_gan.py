"""Training of the toy GAN (DCTR paper Eq. 1, Sec. III A): pure functions, whole loop in lax.scan.

make_train(config) returns (init, train_segment, generate):
  init(key, x_NxD) -> state                   state = {g, d, g_opt, d_opt, step, shift, scale[, g_avg]}
  train_segment(state, key, x_NxD, n_steps) -> (state, {"d_loss": [n_steps], "g_loss": [n_steps]})
  generate(state, key, n) -> x_nxD            (uses the averaged generator g_avg when g_ema > 0)
Step s draws its batches and noise from fold_in(key, s) with the global step s, so two segments of n steps
give exactly the state of one segment of 2n steps (exact resume). Losses: the minimax BCE of Eq. 1 for D,
the usual non-saturating -log D(G(z)) for G; Adam for both (as in the paper).

The paper fixes the networks, latent size, batch size and number of steps but not these (free) choices:
  learning_rate, b1, b2   Adam settings
  lr_schedule             'constant' | 'cosine' (decay to 0 at n_steps) | 'linear' (to 0 at n_steps)
  latent                  'normal' | 'uniform' (on [-1, 1]) distribution of z
  d_steps                 discriminator updates per generator update (each on a fresh batch)
  g_ema                   decay of an exponential moving average of G's parameters (0: off); averaging
                          damps the rotation of GAN training around the equilibrium (Yazici et al. 2019)
  standardize             train G and D on (x - mean) / std of the training data (G's output is mapped back)
  r1_gamma                R1 gradient penalty on D at real points (Mescheder et al. 2018, arXiv:1801.04406,
                          Eq. 9): D's loss gains (gamma / 2) E_real[|grad_x logit D(x)|^2], x in the units D
                          sees (standardised when `standardize`); 0: off. It damps D's sharp gradients around
                          the data, a cure for within-mode collapse and oscillation of small 2D GANs.
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

_SCHEDULES = ("constant", "cosine", "linear")
_LATENTS = ("normal", "uniform")


def _bce(logit, label):
  return label * jax.nn.softplus(-logit) + (1.0 - label) * jax.nn.softplus(logit)


def _get(config, name, default):
  return config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)


def settings_of(config: ml_collections.ConfigDict) -> tuple:
  """The hashable training settings of a GAN config (missing new keys take the original defaults)."""
  s = (int(config.data_dim), int(config.latent_dim), tuple(int(h) for h in config.g_hidden),
       tuple(int(h) for h in config.d_hidden), int(config.batch_size), float(config.learning_rate),
       float(config.b1), float(config.b2), int(_get(config, "n_steps", 1)),
       str(_get(config, "lr_schedule", "constant")), str(_get(config, "latent", "normal")),
       int(_get(config, "d_steps", 1)), float(_get(config, "g_ema", 0.0)),
       bool(_get(config, "standardize", False)), float(_get(config, "r1_gamma", 0.0)))
  if s[9] not in _SCHEDULES:
    raise ValueError(f"gan.lr_schedule={s[9]!r}; known: {_SCHEDULES}")
  if s[10] not in _LATENTS:
    raise ValueError(f"gan.latent={s[10]!r}; known: {_LATENTS}")
  if s[11] < 1:
    raise ValueError(f"gan.d_steps must be >= 1, got {s[11]}")
  if not 0.0 <= s[12] < 1.0:
    raise ValueError(f"gan.g_ema must be in [0, 1), got {s[12]}")
  if s[14] < 0.0:
    raise ValueError(f"gan.r1_gamma must be >= 0, got {s[14]}")
  return s


def make_train(config: ml_collections.ConfigDict) -> tuple[Callable, Callable, Callable]:
  """config: data_dim, latent_dim, g_hidden, d_hidden, batch_size, learning_rate, b1, b2, n_steps and the
  optional free choices of the module docstring.

  Equal settings return the same jitted functions, so repeated calls (tests, scans) compile once.
  """
  return _make_train(settings_of(config))


def _schedule(name: str, lr: float, n_steps: int):
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, max(1, n_steps))
  if name == "linear":
    return optax.linear_schedule(lr, 0.0, max(1, n_steps))
  return lr


def r1_penalty(disc, d_params, x_NxD: jax.Array) -> jax.Array:
  """E_x |grad_x logit D(x)|^2 over the rows of x_NxD (R1 of Mescheder et al. 2018 without gamma / 2).

  D acts row by row, so the gradient of the summed logits w.r.t. x_NxD is the per-event gradient.
  """
  g_NxD = jax.grad(lambda x: jnp.sum(disc.apply(d_params, x)))(x_NxD)
  return jnp.mean(jnp.sum(g_NxD ** 2, axis=-1))


@functools.lru_cache(maxsize=16)
def _make_train(settings: tuple) -> tuple[Callable, Callable, Callable]:
  (data_dim, latent, g_hidden, d_hidden, batch, lr, b1, b2, n_steps, schedule, latent_dist, d_steps,
   g_ema, standardize, r1_gamma) = settings
  gen, disc = make_small_gan(data_dim, g_hidden, d_hidden)
  tx_g = optax.adam(_schedule(schedule, lr, n_steps), b1=b1, b2=b2)
  tx_d = optax.adam(_schedule(schedule, lr, n_steps * d_steps), b1=b1, b2=b2)

  def noise(key, n):
    if latent_dist == "uniform":
      return jax.random.uniform(key, (n, latent), minval=-1.0, maxval=1.0)
    return jax.random.normal(key, (n, latent))

  @jax.jit
  def init(key: jax.Array, x_NxD: jax.Array) -> dict:
    kg, kd = jax.random.split(key)
    g = gen.init(kg, jnp.zeros((1, latent)))
    d = disc.init(kd, jnp.zeros((1, data_dim)))
    shift, scale = jnp.zeros((data_dim,)), jnp.ones((data_dim,))
    if standardize:
      shift, scale = jnp.mean(x_NxD, axis=0), jnp.std(x_NxD, axis=0)
      scale = jnp.where(scale > 0, scale, 1.0)
    state = {"g": g, "d": d, "g_opt": tx_g.init(g), "d_opt": tx_d.init(d), "step": jnp.zeros((), jnp.int32),
             "shift": shift, "scale": scale}
    if g_ema > 0:
      state["g_avg"] = g
    return state

  def d_loss_fn(d, g, x_real, z):
    x_fake = gen.apply(g, z)
    loss = 0.5 * (jnp.mean(_bce(disc.apply(d, x_real), 1.0)) + jnp.mean(_bce(disc.apply(d, x_fake), 0.0)))
    if r1_gamma > 0:
      loss = loss + 0.5 * r1_gamma * r1_penalty(disc, d, x_real)
    return loss

  def g_loss_fn(g, d, z):
    return jnp.mean(_bce(disc.apply(d, gen.apply(g, z)), 1.0))

  def one_step(state, key, x_NxD):
    k = jax.random.fold_in(key, state["step"])
    k_idx, k_zd, k_zg = jax.random.split(k, 3)

    def d_update(carry, i):
      d, d_opt = carry
      ki = jax.random.fold_in(k_idx, i) if d_steps > 1 else k_idx
      kz = jax.random.fold_in(k_zd, i) if d_steps > 1 else k_zd
      x_real = (x_NxD[jax.random.randint(ki, (batch,), 0, x_NxD.shape[0])] - state["shift"]) / state["scale"]
      d_loss, gd = jax.value_and_grad(d_loss_fn)(d, state["g"], x_real, noise(kz, batch))
      upd, d_opt = tx_d.update(gd, d_opt, d)
      return (optax.apply_updates(d, upd), d_opt), d_loss

    (d, d_opt), d_losses = jax.lax.scan(d_update, (state["d"], state["d_opt"]), jnp.arange(d_steps))
    g_loss, gg = jax.value_and_grad(g_loss_fn)(state["g"], d, noise(k_zg, batch))
    upd, g_opt = tx_g.update(gg, state["g_opt"], state["g"])
    g = optax.apply_updates(state["g"], upd)
    new = {**state, "g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt, "step": state["step"] + 1}
    if g_ema > 0:
      new["g_avg"] = jax.tree_util.tree_map(lambda a, p: g_ema * a + (1.0 - g_ema) * p, state["g_avg"], g)
    return new, {"d_loss": d_losses[-1], "g_loss": g_loss}

  @partial(jax.jit, static_argnums=3)
  def train_segment(state: dict, key: jax.Array, x_NxD: jax.Array, n_steps: int):
    return jax.lax.scan(lambda s, _: one_step(s, key, x_NxD), state, None, length=n_steps)

  @partial(jax.jit, static_argnums=2)
  def generate(state: dict, key: jax.Array, n: int) -> jax.Array:
    g = state["g_avg"] if g_ema > 0 else state["g"]
    return state["shift"] + state["scale"] * gen.apply(g, noise(key, n))

  return init, train_segment, generate
