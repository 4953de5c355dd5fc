"""The conditional GAN's training as a TrainSpec of the engine (hgg-background-gan paper, Sec. 2.3, 3.1).

Per step: one discriminator update, then one generator update of the minimax game Eq. (1): D on the real
batch and on a generated batch (the same conditions, latent z1) with label noise (real labels uniform in
[1-eps, 1], generated ones in [0, eps], Sec. 2.3; eps = state.hyper["label_noise"]); then G with the
non-saturating loss -ln d(g(x_cond, z2)) against the updated D. Both use `train.optimizer` (LAMB with a
cosine decay to 0 in the paper) in its injected form, so members of one vmapped program may differ in the
peak learning rate and b1 (`engine.set_hyperparams`) as well as in eps.

Keys: the run's key k_train = split(PRNGKey(seed), 5)[1]; epoch e draws split(fold_in(k_train, e)) ->
(permutation key, step base), step i of the epoch uses fold_in(base, i), split 7 ways into the latents, the
label noise and the dropout masks. With a `mesh`, the batch axis (real objects, conditions, latents,
labels) is split over its devices (ganjax/parallel.py): data-parallel training with all-reduced gradients.

model.kind = "flow" replaces the GAN by a conditional spline flow (ganjax/models/flow.py) trained by maximum
likelihood on the same batches (one update per step: -mean log p(object | cond)). Everything downstream uses
the generator only as G(z, cond) with latent normals z of size `latent_dim(config, n_out)`, which the flow
is too (its inverse map), so the metric, selection, CR application and DCTR are the same code for both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from ganjax import engine
from ganjax.data import preprocess
from ganjax.engine import losses
from ganjax.models.dcgan import Discriminator, Generator
from ganjax.models.flow import Flow
from ganjax.parallel import shard_batch

N_RUN_KEYS = 5  # split(PRNGKey(seed), 5) = (init, train, eval, test, apply)


def run_keys(key: jax.Array) -> tuple[jax.Array, ...]:
  """(k_init, k_train, k_eval, k_test, k_apply) of a run whose key is PRNGKey(seed)."""
  return tuple(jax.random.split(key, N_RUN_KEYS))


def is_flow(config) -> bool:
  return config.model.kind == "flow"


def make_models(config, n_out: int) -> tuple[Generator | Flow, Discriminator | None]:
  """The DC-GAN pair of Sec. 3.1 at the configured widths (ganjax/models/dcgan.py), or (the flow, None).
  The GAN generator's output layer matches the quantile transform's output (tanh for uniform, linear for
  normal coordinates); the flow's samples are clipped to the support of the preprocessed features."""
  if is_flow(config):
    f = config.model.flow
    return Flow(n_features=n_out, n_layers=f.layers, n_bins=f.bins, hidden=tuple(f.hidden), bound=f.bound,
                clip=preprocess.output_bound(config.data.quantile_output, config.data.n_quantiles, config.data.n_train,
                                             config.data.quantile_tails)), None
  output = "tanh" if config.data.quantile_output == "uniform" else "linear"
  return (Generator(n_out=n_out, width=config.model.g_width, output=output),
          Discriminator(width=config.model.d_width, dropout=config.model.dropout))


def latent_dim(config, n_out: int) -> int:
  """Size of the latent normals of G(z, cond): model.latent_dim for the GAN, the object's size for a flow."""
  return n_out if is_flow(config) else int(config.model.latent_dim)


def log_prob_fn(config, n_out: int):
  """log p(object_NxO | cond_NxC)_N of a flow's parameters (model coordinates)."""
  flow, _ = make_models(config, n_out)
  return lambda params_g, x_NxO, cond_NxC: flow.apply(params_g, x_NxO, cond_NxC, method=Flow.log_prob)


def make_spec(config, n_cond: int, n_out: int, n_train: int, mesh: Mesh | None = None) -> engine.TrainSpec:
  """The models, Eq. (1) losses (or the flow's NLL), optimizer and shuffled-epoch sampler of one member; its
  init takes the member's PRNGKey(seed)."""
  bs = int(config.train.batch_size)
  spe = n_train // bs
  if spe < 1:
    raise ValueError(f"batch_size {bs} is larger than the {n_train} training events")
  if mesh is not None and bs % mesh.size:
    raise ValueError(f"batch_size {bs} is not a multiple of the {mesh.size} devices it is split over")
  latent = int(config.model.latent_dim)
  gen, disc = make_models(config, n_out)
  shard = lambda x: shard_batch(x, mesh)
  # Sec. 3.1: cosine decay from the peak lr, reaching 0 after decay_length epochs (0 = all), then 0.
  tx = engine.make_optimizer(config.train.optimizer, total_steps=int(config.train.epochs) * spe,
                             steps_per_unit=spe, inject=True)

  def init(key) -> engine.Init:
    k_init, k_train = run_keys(key)[:2]
    kg, kd = jax.random.split(k_init)
    cond = jnp.zeros((1, n_cond))
    params = {"g": gen.init(kg, jnp.zeros((1, latent)), cond), "d": disc.init(kd, jnp.zeros((1, n_out)), cond)}
    return engine.Init(params=params, key=k_train, hyper={"label_noise": config.train.label_noise})

  def step_keys(ctx: engine.Ctx):
    return jax.random.split(ctx.key, 7)  # kz1, kz2, kl1, kl2, kdrop_r, kdrop_f, kdrop_g

  def d_loss(params, batch, ctx):
    """L_d of Eq. (1): binary cross-entropy on noisy labels, real and generated halves."""
    kz1, _, kl1, kl2, kdrop_r, kdrop_f, _ = step_keys(ctx)
    real_BxO, cond_BxC = batch["gen"], batch["cond"]
    fake_BxO = jax.lax.stop_gradient(gen.apply(params["g"], shard(jax.random.normal(kz1, (bs, latent))),
                                               cond_BxC))
    eps = ctx.hyper["label_noise"]
    label_real = shard(losses.noisy_labels(kl1, bs, True, eps))
    label_fake = shard(losses.noisy_labels(kl2, bs, False, eps))
    logit_real = disc.apply(params["d"], real_BxO, cond_BxC, train=True, rngs={"dropout": kdrop_r})
    logit_fake = disc.apply(params["d"], fake_BxO, cond_BxC, train=True, rngs={"dropout": kdrop_f})
    return losses.discriminator_bce(logit_real, logit_fake, label_real, label_fake), {}

  def g_loss(params, batch, ctx):
    """L_g of Eq. (1), non-saturating: -mean ln d(g(x_cond, z)) against the updated discriminator."""
    _, kz2, _, _, _, _, kdrop_g = step_keys(ctx)
    cond_BxC = batch["cond"]
    y_BxO = gen.apply(params["g"], shard(jax.random.normal(kz2, (bs, latent))), cond_BxC)
    logit = disc.apply(params["d"], y_BxO, cond_BxC, train=True, rngs={"dropout": kdrop_g})
    return losses.generator_nonsaturating(logit), {}

  def keys(key, epoch, steps_S):
    k_perm, k_base = jax.random.split(jax.random.fold_in(key, epoch))
    return k_perm, jax.vmap(lambda i: jax.random.fold_in(k_base, i))(steps_S)

  def gather(data, idx_B):
    return {"gen": shard(data["gen"][idx_B]), "cond": shard(data["cond"][idx_B])}

  if is_flow(config):
    def flow_init(key) -> engine.Init:
      k_init, k_train = run_keys(key)[:2]
      params = gen.init(k_init, jnp.zeros((1, n_out)), jnp.zeros((1, n_cond)), method=Flow.log_prob)
      return engine.Init(params={"g": params}, key=k_train)

    def nll_loss(params, batch, ctx):
      """Maximum likelihood: -mean log p(object | cond) of the batch (exact, change of variables)."""
      return losses.neg_log_likelihood(gen.apply(params["g"], batch["gen"], batch["cond"],
                                                 method=Flow.log_prob)), {}

    return engine.TrainSpec(init=flow_init, optimizers={"g": tx}, updates=(engine.Update("nll", "g", nll_loss),),
                            sampler=engine.epoch_sampler(n_train, bs, gather, keys))

  return engine.TrainSpec(init=init, optimizers={"g": tx, "d": tx},
                          updates=(engine.Update("d", "d", d_loss), engine.Update("g", "g", g_loss)),
                          sampler=engine.epoch_sampler(n_train, bs, gather, keys))


def make_train(config, n_cond: int, n_out: int, n_train: int, mesh: Mesh | None = None) -> engine.Train:
  """Pure init(PRNGKey(seed)) / train_segment(state, data {"gen", "cond"}, n_steps) of one member."""
  return engine.make_train(make_spec(config, n_cond, n_out, n_train, mesh))


def set_member_hyperparams(state: engine.TrainState, learning_rate=None, b1=None, label_noise=None
                           ) -> engine.TrainState:
  """One member's state with another peak learning rate, b1 or label noise (use under vmap)."""
  opt = {m: engine.set_hyperparams(o, learning_rate=learning_rate, beta1=b1) for m, o in state.opt.items()}
  hyper = dict(state.hyper)
  if label_noise is not None:
    hyper["label_noise"] = jnp.asarray(label_noise, jnp.float32)
  return state.replace(opt=opt, hyper=hyper)
