"""GANplifying training (Sec. 2) as pure functions, and ensembles of trainings as one vmapped program.

make_train(config) -> Trainer(init, train_segment, generate): `init(key)` builds one member's state (a dict
pytree: G/D params, two Adam states, epoch counter, rng key); `train_segment(state, x_NxD, n_epochs)` runs
n_epochs epochs in lax.scan (epoch: reshuffle, then N/batch strictly alternating D and G steps). All
randomness comes from fold_in(state key, epoch or global step), so a segment restarted from a checkpoint
is bit-identical. An ensemble is jax.vmap over (state, training sample) (make_ensemble), its member axis
sharded over the local devices with a Mesh/NamedSharding; train_ensemble adds orbax checkpoints per segment.

Per step (paper Sec. 2): D step on a real batch with uniform noise [-a, a] and a generated batch, loss =
binary cross-entropy + gamma/2 * Omega, with Roth et al.'s regulariser
Omega = E_real[(1 - D)^2 |grad_x logit|^2] + E_fake[D^2 |grad_x logit|^2]; then a G step with the
non-saturating loss -log D(G(z)) on a fresh batch. Adam(beta1 0.5, beta2 0.9), lr x decay_rate every
decay_every_epochs epochs (staircase).
"""

from __future__ import annotations

import json
import os
import time
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax.data.toys import get_toy
from ganjax.models.ganplify import DeepSetsDiscriminator, Generator
from ganjax.progress import Progress

State = dict[str, Any]


class Trainer(NamedTuple):
  init: Callable[[jax.Array], State]
  train_segment: Callable[..., tuple[State, dict]]
  generate: Callable[[Any, jax.Array, int], jax.Array]
  train_step: Callable[[State, jax.Array, jax.Array], tuple[State, dict]]  # (state, batch, key); one D+G step
  steps_per_epoch: int


def make_models(config, dim: int) -> tuple[Generator, DeepSetsDiscriminator]:
  m = config.model
  g = Generator(out_dim=dim, width=m.g_width, depth=m.g_depth, dropout=m.dropout)
  d = DeepSetsDiscriminator(width=m.d_width, depth=m.d_depth, embed=tuple(m.embed), dropout=m.dropout,
                            slope=m.slope)
  return g, d


def _optimizer(t, steps_per_epoch: int) -> optax.GradientTransformation:
  lr = optax.exponential_decay(t.lr, transition_steps=t.decay_every_epochs * steps_per_epoch,
                               decay_rate=t.decay_rate, staircase=True)
  return optax.adam(lr, b1=t.b1, b2=t.b2)


def make_train(config, dim: int | None = None) -> Trainer:
  """Pure init / train_segment / generate for one member; `dim` (data dimension) defaults to the toy's."""
  dim = get_toy(config.toy).dim if dim is None else dim
  t, n_train = config.train, config.n_train
  if n_train % t.batch_size:
    raise ValueError(f"config: n_train={n_train} must be a multiple of train.batch_size={t.batch_size}")
  spe = n_train // t.batch_size
  bs, n_noise = t.batch_size, config.model.n_noise
  gen, disc = make_models(config, dim)
  tx = _optimizer(t, spe)

  def noise(key, n):
    return jax.random.uniform(key, (n, n_noise), minval=-1.0, maxval=1.0)

  def generate(g_params, key, n):
    """n events from one generator, dropout active (paper)."""
    kz, kd = jax.random.split(key)
    return gen.apply(g_params, noise(kz, n), rngs={"dropout": kd})

  def logits_and_input_grad(d_params, x, key):
    f = lambda x_: disc.apply(d_params, x_, rngs={"dropout": key})  # noqa: E731
    logits, vjp = jax.vjp(f, x)
    return logits, vjp(jnp.ones_like(logits))[0]  # d(sum_i logit_i)/dx, as torch.autograd.grad would

  def d_loss_fn(d_params, real, fake, k_real, k_fake):
    lr, gr = logits_and_input_grad(d_params, real, k_real)
    lf, gf = logits_and_input_grad(d_params, fake, k_fake)
    bce = -jnp.mean(jax.nn.log_sigmoid(lr)) - jnp.mean(jax.nn.log_sigmoid(-lf))
    omega = (jnp.mean(jax.nn.sigmoid(-lr) ** 2 * jnp.sum(gr ** 2, -1))
             + jnp.mean(jax.nn.sigmoid(lf) ** 2 * jnp.sum(gf ** 2, -1)))
    return bce + 0.5 * t.gp_gamma * omega, (jax.nn.sigmoid(lr).mean(), jax.nn.sigmoid(lf).mean(), omega)

  def g_loss_fn(g_params, d_params, key):
    kg, kd = jax.random.split(key)
    fake = generate(g_params, kg, bs)
    return -jnp.mean(jax.nn.log_sigmoid(disc.apply(d_params, fake, rngs={"dropout": kd})))

  def train_step(state, real_BxD, key):
    k_gen, k_noise, k_real, k_fake, k_g = jax.random.split(key, 5)
    fake = jax.lax.stop_gradient(generate(state["g_params"], k_gen, bs))
    real = real_BxD + jax.random.uniform(k_noise, real_BxD.shape, minval=-t.data_noise, maxval=t.data_noise)
    (d_loss, (d_real, d_fake, omega)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state["d_params"], real, fake, k_real, k_fake)
    d_upd, d_opt = tx.update(d_grads, state["d_opt"], state["d_params"])
    d_params = optax.apply_updates(state["d_params"], d_upd)
    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state["g_params"], d_params, k_g)
    g_upd, g_opt = tx.update(g_grads, state["g_opt"], state["g_params"])
    g_params = optax.apply_updates(state["g_params"], g_upd)
    new = dict(state, g_params=g_params, d_params=d_params, g_opt=g_opt, d_opt=d_opt)
    return new, {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake, "omega": omega}

  def init(key: jax.Array) -> State:
    kg, kd, kt = jax.random.split(key, 3)
    g_params = gen.init({"params": kg, "dropout": kg}, jnp.zeros((bs, n_noise)))
    d_params = disc.init({"params": kd, "dropout": kd}, jnp.zeros((bs, dim)))
    return {"g_params": g_params, "d_params": d_params, "g_opt": tx.init(g_params),
            "d_opt": tx.init(d_params), "epoch": jnp.zeros((), jnp.int32), "key": kt}

  def train_segment(state: State, x_NxD: jax.Array, n_epochs: int) -> tuple[State, dict]:
    """n_epochs epochs; returns the new state and per-epoch mean losses (arrays of length n_epochs)."""
    k_shuffle = jax.random.fold_in(state["key"], 0)
    k_steps = jax.random.fold_in(state["key"], 1)

    def epoch_fn(st, _):
      e = st["epoch"]
      perm = jax.random.permutation(jax.random.fold_in(k_shuffle, e), n_train)
      batches = x_NxD[perm].reshape(spe, bs, dim)

      def step_fn(s, inp):
        i, xb = inp
        return train_step(s, xb, jax.random.fold_in(k_steps, e * spe + i))

      st, m = jax.lax.scan(step_fn, st, (jnp.arange(spe), batches))
      return dict(st, epoch=e + 1), jax.tree.map(jnp.mean, m)

    return jax.lax.scan(epoch_fn, state, None, length=n_epochs)

  return Trainer(init, train_segment, generate, train_step, spe)


# ---- ensembles ------------------------------------------------------------------------------------------

def member_sharding(n_members: int, devices=None) -> jax.sharding.NamedSharding:
  """Shard a leading member axis over `devices` (default: all local devices)."""
  devices = list(devices if devices is not None else jax.local_devices())
  if n_members % len(devices):
    raise ValueError(f"n_members={n_members} must be a multiple of the {len(devices)} devices to shard over")
  mesh = jax.sharding.Mesh(np.array(devices), ("member",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("member"))


class Ensemble(NamedTuple):
  trainer: Trainer
  sharding: jax.sharding.NamedSharding
  init: Callable[[jax.Array], State]                     # keys_Mx2 -> stacked state
  segment: Callable[[State, jax.Array, int], tuple]      # (state, x_MxNxD, n_epochs) -> (state, metrics)
  segment_jit: Any  # the jitted program behind `segment` (n_epochs static; data already sharded), for AOT


def make_ensemble(config, n_members: int, devices=None, dim: int | None = None) -> Ensemble:
  """jit(vmap(...)) of a Trainer over members, with the member axis sharded over `devices`."""
  trainer = make_train(config, dim)
  if devices is None and not config.train.shard:
    devices = jax.local_devices()[:1]
  sh = member_sharding(n_members, devices)
  init = jax.jit(jax.vmap(trainer.init), out_shardings=sh)

  @partial(jax.jit, static_argnums=2, out_shardings=sh)
  def segment(state, x_MxNxD, n_epochs):
    return jax.vmap(partial(trainer.train_segment, n_epochs=n_epochs))(state, x_MxNxD)

  def segment_sharded(state, x_MxNxD, n_epochs):
    return segment(state, jax.device_put(x_MxNxD, sh), n_epochs)

  return Ensemble(trainer, sh, lambda keys: init(jax.device_put(keys, sh)), segment_sharded, segment)


def member_keys(seed: int, n_members: int) -> jax.Array:
  """Per-member init keys: member m gets fold_in(PRNGKey(seed), m), independent of the ensemble size."""
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.arange(n_members))


def train_ensemble(config, x_MxNxD, workdir: str, devices=None, log=print,
                   ens: Ensemble | None = None) -> tuple[State, Ensemble]:
  """Train (or resume) the ensemble to config.train.epochs, checkpointing the stacked state per segment.

  `ens` (optional) reuses an already built (and compiled) Ensemble of the same config and size.

  Checkpoints: orbax CheckpointManager in workdir/checkpoints (step = epoch, the latest two kept);
  per-segment ensemble loss summaries are appended to workdir/train_log.jsonl and reported as a progress
  line with ETA on stderr (ganjax.progress); `log` gets the other messages (resume).
  """
  import orbax.checkpoint as ocp

  if np.ndim(x_MxNxD) != 3 or x_MxNxD.shape[1] != config.n_train:
    raise ValueError(f"training data must be (members, n_train={config.n_train}, d), got {np.shape(x_MxNxD)}")
  n_members, dim = int(x_MxNxD.shape[0]), int(x_MxNxD.shape[-1])
  if not np.all(np.isfinite(np.asarray(x_MxNxD))):
    raise ValueError(f"training data: {int(np.sum(~np.isfinite(np.asarray(x_MxNxD))))} non-finite values")
  ens = make_ensemble(config, n_members, devices, dim) if ens is None else ens
  keys = member_keys(config.seed, n_members)
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
  latest = mngr.latest_step()
  if latest is None:
    state = ens.init(keys)
  else:
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=ens.sharding),
                            jax.eval_shape(ens.init, keys))
    state = mngr.restore(latest, args=ocp.args.StandardRestore(abstract))
    log(f"resumed from epoch {latest}")
  epoch, total, seg = int(latest or 0), int(config.train.epochs), int(config.train.epochs_per_segment)
  bar = Progress(total, f"ganplify x{n_members}", unit="epoch", start=epoch)
  while epoch < total:
    n = min(seg, total - epoch)
    t0 = time.time()
    state, m = ens.segment(state, x_MxNxD, n)
    m = jax.tree.map(np.asarray, m)  # blocks; (members, n) per key
    dt = time.time() - t0
    if not all(np.all(np.isfinite(v)) for v in m.values()):
      bad = sorted({int(i) for v in m.values() for i in np.nonzero(~np.isfinite(v).all(1))[0]})
      raise FloatingPointError(f"non-finite losses at epochs {epoch}..{epoch + n} in members {bad}")
    epoch += n
    mngr.save(epoch, args=ocp.args.StandardSave(state))
    summary = {"epoch": epoch, "seconds": dt, "member_steps_per_s": n_members * n * ens.trainer.steps_per_epoch / dt,
               **{k: float(v[:, -1].mean()) for k, v in m.items()}}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "train_log.jsonl"), "a") as f:
      f.write(json.dumps(summary) + "\n")
    bar.update(n, **{k: v for k, v in summary.items() if k not in ("epoch", "seconds")})
  bar.close()
  mngr.wait_until_finished()
  mngr.close()
  return state, ens
