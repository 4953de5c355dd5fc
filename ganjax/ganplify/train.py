"""GANplifying training (ganplifying paper Sec. 2) as a TrainSpec of the engine.

Per step: a D update on a real batch with uniform noise [-a, a] and a generated batch, loss = binary
cross-entropy + gamma/2 * Omega with Roth et al.'s regulariser (ganjax.engine.losses.roth_penalty); then a G
update with the non-saturating loss -ln D(G(z)) on a fresh batch. Adam(beta1 0.5, beta2 0.9), lr x decay_rate
every decay_every epochs (staircase). Epochs reshuffle each member's training sample; the step key of epoch
e, step i is fold_in(fold_in(run key, 1), e * steps_per_epoch + i), the permutation key fold_in(fold_in(run
key, 0), e).

model.kind = "flow": each member is an (unconditional) spline flow (ganjax/models/flow.py) trained by
maximum likelihood on the same batches and steps, one update per step; generation draws from it directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ganjax import engine
from ganjax.engine import losses
from ganjax.models.flow import Flow
from ganjax.models.ganplify import DeepSetsDiscriminator, Generator


def is_flow(config) -> bool:
  return config.model.kind == "flow"


def make_flow(config, dim: int) -> Flow:
  f = config.model.flow
  return Flow(n_features=dim, n_layers=f.layers, n_bins=f.bins, hidden=tuple(f.hidden), bound=f.bound,
              x_scale=f.x_scale)


def make_models(config, dim: int) -> tuple[Generator, DeepSetsDiscriminator]:
  m = config.model
  g = Generator(out_dim=dim, width=m.g_width, depth=m.g_depth, dropout=m.dropout)
  d = DeepSetsDiscriminator(width=m.d_width, depth=m.d_depth, embed=tuple(m.embed), dropout=m.dropout,
                            slope=m.slope)
  return g, d


def make_generate(config, dim: int):
  """generate(g_params, key, n) -> n events from one generator, dropout active (paper), or from a flow."""
  if is_flow(config):
    flow = make_flow(config, dim)
    return lambda params, key, n: flow.apply(params, key, None, n, method=Flow.sample)
  gen, _ = make_models(config, dim)
  n_noise = config.model.n_noise

  def generate(g_params, key, n: int):
    kz, kd = jax.random.split(key)
    z = jax.random.uniform(kz, (n, n_noise), minval=-1.0, maxval=1.0)
    return gen.apply(g_params, z, rngs={"dropout": kd})

  return generate


def make_spec(config, dim: int) -> engine.TrainSpec:
  """The models, losses, optimizers and sampler of one member trained on its own x_NxD."""
  t, n_train = config.train, config.data.n_train
  if n_train % t.batch_size:
    raise ValueError(f"config: data.n_train={n_train} must be a multiple of train.batch_size={t.batch_size}")
  spe, bs, n_noise = n_train // t.batch_size, t.batch_size, config.model.n_noise
  gen, disc = make_models(config, dim)
  generate = make_generate(config, dim)
  tx = engine.make_optimizer(t.optimizer, total_steps=t.epochs * spe, steps_per_unit=spe)

  def init(key):
    kg, kd, kt = jax.random.split(key, 3)
    g_params = gen.init({"params": kg, "dropout": kg}, jnp.zeros((bs, n_noise)))
    d_params = disc.init({"params": kd, "dropout": kd}, jnp.zeros((bs, dim)))
    return engine.Init(params={"g": g_params, "d": d_params}, key=kt)

  def d_loss(params, real_BxD, ctx):
    k_gen, k_noise, k_real, k_fake, _ = jax.random.split(ctx.key, 5)
    fake = jax.lax.stop_gradient(generate(params["g"], k_gen, bs))
    real = real_BxD + jax.random.uniform(k_noise, real_BxD.shape, minval=-t.data_noise, maxval=t.data_noise)
    lr, gr = losses.logits_and_input_grad(lambda x: disc.apply(params["d"], x, rngs={"dropout": k_real}), real)
    lf, gf = losses.logits_and_input_grad(lambda x: disc.apply(params["d"], x, rngs={"dropout": k_fake}), fake)
    omega = losses.roth_penalty(lr, gr, lf, gf)
    loss = losses.neg_log_d(lr).mean() + losses.neg_log_1md(lf).mean() + 0.5 * t.gp_gamma * omega
    return loss, {"real": jax.nn.sigmoid(lr).mean(), "fake": jax.nn.sigmoid(lf).mean(), "omega": omega}

  def g_loss(params, _batch, ctx):
    kg, kd = jax.random.split(jax.random.split(ctx.key, 5)[4])
    logits = disc.apply(params["d"], generate(params["g"], kg, bs), rngs={"dropout": kd})
    return losses.neg_log_d(logits).mean(), {}  # -mean ln D(G(z)), non-saturating

  def keys(key, epoch, steps_S):
    k_steps = jax.random.fold_in(key, 1)
    return (jax.random.fold_in(jax.random.fold_in(key, 0), epoch),
            jax.vmap(lambda i: jax.random.fold_in(k_steps, epoch * spe + i))(steps_S))

  sampler = engine.epoch_sampler(n_train, bs, lambda x, idx: x[idx], keys)
  if is_flow(config):
    flow = make_flow(config, dim)

    def flow_init(key):
      kf, kt = jax.random.split(key)
      return engine.Init(params={"g": flow.init(kf, jnp.zeros((bs, dim)), None, method=Flow.log_prob)}, key=kt)

    def nll_loss(params, real_BxD, ctx):
      return losses.neg_log_likelihood(flow.apply(params["g"], real_BxD, None, method=Flow.log_prob)), {}

    return engine.TrainSpec(init=flow_init, optimizers={"g": tx}, updates=(engine.Update("nll", "g", nll_loss),),
                            sampler=sampler)
  return engine.TrainSpec(init=init, optimizers={"g": tx, "d": tx},
                          updates=(engine.Update("d", "d", d_loss), engine.Update("g", "g", g_loss)),
                          sampler=sampler)


def make_members(config, n_members: int, dim: int, devices=None) -> engine.Members:
  """The ensemble: jit of the members' training, each on its own sample (data axis 0), the member axis
  vmapped and sharded over `devices` (default: all local devices, or one with train.shard_members off)."""
  train = engine.make_train(make_spec(config, dim))
  if devices is None and not config.train.shard_members:
    devices = jax.local_devices()[:1]
  return engine.make_members(train, data_axis=0, how=config.member_axis,
                             sharding=engine.member_sharding(n_members, devices))
