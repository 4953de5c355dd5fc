"""The toy GAN of the DCTR paper (Eq. 1, Sec. III A) as a TrainSpec of the engine.

Step s (one D update, or `d_steps` of them, then one G update) draws everything from k = fold_in(run key, s):
k_idx, k_zd, k_zg = split(k, 3); D's real batch is `batch_size` rows of the training data drawn with
randint(k_idx) (fold_in(k_idx, r) for the r-th of several D updates; the noise likewise from k_zd), G's
noise from k_zg. Losses: the minimax BCE of Eq. 1 for D (+ gamma/2 R1 at the real points), the
non-saturating -ln D(G(z)) for G; Adam for both (the paper's optimiser).

The paper fixes the networks, latent size, batch size and number of steps, not these (free) choices
(`config.gan`, configs/dctr_toys.py):
  train.optimizer   Adam's learning_rate, b1, b2 and schedule (constant | cosine | linear: to 0 at the end;
                    D's schedule runs over steps * d_steps updates)
  model.latent      'normal' | 'uniform' (on [-1, 1]) distribution of z
  train.d_steps     discriminator updates per generator update (each on a fresh batch)
  train.g_ema       decay of an exponential moving average of G's parameters (0: off), kept in
                    state.extra["g_avg"] and used to generate; averaging damps the rotation of GAN training
                    around the equilibrium (Yazici et al. 2019)
  model.standardize G and D work on (x - mean) / std of the training data (constants in state.extra; G's
                    output is mapped back)
  train.r1_gamma    R1 penalty (Mescheder et al. 2018, arXiv:1801.04406, Eq. 9): D's loss gains
                    (gamma / 2) E_real[|grad_x logit D(x)|^2], x in the units D sees; 0: off. It damps D's
                    sharp gradients around the data, a cure for within-mode collapse of small 2D GANs.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

from ganjax import engine
from ganjax.engine import losses
from ganjax.engine.optim import check as check_optimizer
from ganjax.models.small_gan import make_small_gan

SCHEDULES = ("constant", "cosine", "linear")
LATENTS = ("normal", "uniform")


def check_config(gan) -> list[str]:
  """Problems of a `config.gan`, one line each (empty when usable)."""
  m, t = gan.model, gan.train
  problems = [p.replace("train.", "gan.train.", 1) for p in check_optimizer(t.optimizer)]
  if t.optimizer.name != "adam" or t.optimizer.get("weight_decay", 0.0):
    problems.append(f"gan.train.optimizer: the toy GAN uses adam without weight decay (got "
                    f"{t.optimizer.name!r}, weight_decay={t.optimizer.get('weight_decay', 0.0)})")
  if t.optimizer.schedule not in SCHEDULES:
    problems.append(f"gan.train.optimizer.schedule={t.optimizer.schedule!r}; known: {SCHEDULES}")
  if m.latent not in LATENTS:
    problems.append(f"gan.model.latent={m.latent!r}; known: {LATENTS}")
  if t.d_steps < 1:
    problems.append(f"gan.train.d_steps must be >= 1, got {t.d_steps}")
  if not 0.0 <= t.g_ema < 1.0:
    problems.append(f"gan.train.g_ema must be in [0, 1), got {t.g_ema}")
  if t.r1_gamma < 0.0:
    problems.append(f"gan.train.r1_gamma must be >= 0, got {t.r1_gamma}")
  if t.steps < 1 or t.batch_size < 1 or t.eval_every < 1 or m.latent_dim < 1:
    problems.append("gan.train.steps, batch_size, eval_every and gan.model.latent_dim must be >= 1")
  return problems


def _checked(gan) -> None:
  problems = check_config(gan)
  if problems:
    raise ValueError("; ".join(problems))


def make_noise(gan) -> Callable[[jax.Array, int], jax.Array]:
  """noise(key, n) -> z_nxL from the latent distribution."""
  latent, dist = int(gan.model.latent_dim), gan.model.latent

  def noise(key, n):
    if dist == "uniform":
      return jax.random.uniform(key, (n, latent), minval=-1.0, maxval=1.0)
    return jax.random.normal(key, (n, latent))

  return noise


@partial(jax.jit, static_argnums=1)
def standardization(x_NxD: jax.Array, standardize: bool) -> tuple[jax.Array, jax.Array]:
  """(shift_D, scale_D): mean and std of the training data (0 and 1 without standardisation)."""
  d = x_NxD.shape[1]
  if not standardize:
    return jnp.zeros((d,)), jnp.ones((d,))
  scale = jnp.std(x_NxD, axis=0)
  return jnp.mean(x_NxD, axis=0), jnp.where(scale > 0, scale, 1.0)


def init_keys(k_init: jax.Array, k_train: jax.Array) -> jax.Array:
  """The per-member key the spec's init takes: (key of the initial weights, run key of training)."""
  return jnp.stack([k_init, k_train])


def make_spec(gan, dim: int, shift_D: jax.Array, scale_D: jax.Array) -> engine.TrainSpec:
  """The GAN of `config.gan` on dim-dimensional data standardised by (shift_D, scale_D). init takes
  init_keys(k_init, k_train); the training data (train_segment's `data`) is x_NxD."""
  _checked(gan)
  m, t = gan.model, gan.train
  gen, disc = make_small_gan(dim, m.g_hidden, m.d_hidden)
  noise = make_noise(gan)
  bs, latent, d_steps = int(t.batch_size), int(m.latent_dim), int(t.d_steps)
  r1_gamma, g_ema = float(t.r1_gamma), float(t.g_ema)
  tx_g = engine.make_optimizer(t.optimizer, total_steps=int(t.steps))
  tx_d = engine.make_optimizer(t.optimizer, total_steps=int(t.steps) * d_steps)

  def init(keys_2x2):
    kg, kd = jax.random.split(keys_2x2[0])
    g = gen.init(kg, jnp.zeros((1, latent)))
    d = disc.init(kd, jnp.zeros((1, dim)))
    extra = {"shift": jnp.asarray(shift_D), "scale": jnp.asarray(scale_D)}
    if g_ema > 0:
      extra["g_avg"] = g
    return engine.Init(params={"g": g, "d": d}, key=keys_2x2[1], extra=extra)

  def d_loss(params, keys, ctx):
    k_idx, k_zd = keys["idx"], keys["zd"]
    if d_steps > 1:
      k_idx, k_zd = jax.random.fold_in(k_idx, ctx.repeat), jax.random.fold_in(k_zd, ctx.repeat)
    x_NxD = ctx.data
    x_real = (x_NxD[jax.random.randint(k_idx, (bs,), 0, x_NxD.shape[0])] - ctx.extra["shift"]) / ctx.extra["scale"]
    x_fake = gen.apply(params["g"], noise(k_zd, bs))
    loss = losses.discriminator_bce(disc.apply(params["d"], x_real), disc.apply(params["d"], x_fake))
    if r1_gamma > 0:
      loss = loss + 0.5 * r1_gamma * losses.r1_penalty(lambda x: disc.apply(params["d"], x), x_real)
    return loss, {}

  def g_loss(params, keys, ctx):
    logits = disc.apply(params["d"], gen.apply(params["g"], noise(keys["zg"], bs)))
    return losses.generator_nonsaturating(logits), {}

  def after_step(state):
    if g_ema == 0:
      return state
    avg = jax.tree.map(lambda a, p: g_ema * a + (1.0 - g_ema) * p, state.extra["g_avg"], state.params["g"])
    return state.replace(extra={**state.extra, "g_avg": avg})

  def step_keys(_data, k, _step):
    return dict(zip(("idx", "zd", "zg"), jax.random.split(k, 3)))

  return engine.TrainSpec(init=init, optimizers={"g": tx_g, "d": tx_d},
                          updates=(engine.Update("d", "d", d_loss, repeats=d_steps),
                                   engine.Update("g", "g", g_loss)),
                          sampler=engine.step_sampler(step_keys), after_step=after_step)


def make_members(gan, dim: int, shift_D: jax.Array, scale_D: jax.Array, how: str = "auto") -> engine.Members:
  """The jitted GAN over a member axis (all members share the training data)."""
  return engine.make_members(engine.make_train(make_spec(gan, dim, shift_D, scale_D)), data_axis=None, how=how)


def generator_state(state) -> dict:
  """What generating needs from a TrainState: G's parameters (the average with g_ema) and the constants."""
  g = state.extra["g_avg"] if "g_avg" in state.extra else state.params["g"]
  return {"g": g, "shift": state.extra["shift"], "scale": state.extra["scale"]}


def make_generate(gan, dim: int) -> Callable:
  """jit(generate(generator_state, key, n) -> x_nxD) in data units."""
  _checked(gan)
  gen, _ = make_small_gan(dim, gan.model.g_hidden, gan.model.d_hidden)
  noise = make_noise(gan)

  @partial(jax.jit, static_argnums=2)
  def generate(gs: dict, key: jax.Array, n: int) -> jax.Array:
    return gs["shift"] + gs["scale"] * gen.apply(gs["g"], noise(key, n))

  return generate
