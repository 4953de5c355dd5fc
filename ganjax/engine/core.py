"""The one training core: a method's models, losses, update order and sampler -> pure init / train_segment.

A method describes its training as a `TrainSpec`:
  init(key)            -> Init(params {model: params}, key (the run's key), hyper {name: array},
                          extra {name: pytree})
  optimizers           {model: optax transformation}
  updates              (Update(name, model, loss, repeats), ...) in the order they run in one step; each
                       update differentiates loss(params, batch, ctx) with respect to params[model] and
                       applies its optimizer, so a later update sees the earlier ones' new parameters
                       (the discriminator step, then the generator step of a GAN; one maximum-likelihood
                       update of a flow; one supervised update of a classifier)
  sampler              Sampler(steps_per_epoch, plan(key, epoch) -> per-step plan with a leading axis of
                       steps_per_epoch, batch(data, plan_s) -> (batch, step key))
  after_step           optional state -> state after every step (e.g. an exponential moving average)

`make_train(spec)` returns `Train(init, train_segment)`, both pure:
  init(key) -> TrainState
  train_segment(state, data, n_steps) -> (state, metrics {name: per-epoch means})
The epoch loop and the step loop are `lax.scan`s; every random number derives from the state's key through
the sampler (fold_in of the epoch and the step), so a segment resumed from a checkpoint is bit-identical and
`jax.vmap(init)` / `jax.vmap(train_segment)` over keys is an ensemble (`ganjax.engine.members`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array                 # optimizer steps done (of the last update in the step order)
  key: jax.Array                  # the run's key: every batch and latent derives from it
  params: dict[str, Any]          # model name -> parameters
  opt: dict[str, Any]             # model name -> optimizer state
  hyper: dict[str, jax.Array]     # per-member hyperparameters the losses read (label noise, loss weights)
  extra: dict[str, Any]           # other state (an average of the weights, standardisation constants)

  @property
  def epoch(self) -> jax.Array:
    """Completed epochs of an epoch-based method (steps / steps_per_epoch is stored in extra)."""
    return self.extra["epoch"]


class Init(NamedTuple):
  params: dict[str, Any]
  key: jax.Array
  hyper: dict[str, Any] = {}
  extra: dict[str, Any] = {}


class Ctx(NamedTuple):
  """What a loss sees besides the parameters and the batch."""
  key: jax.Array                  # the step's key (the same for every update of the step)
  hyper: dict[str, jax.Array]
  extra: dict[str, Any]
  data: Any                       # the whole training data (for losses that draw more than the batch)
  step: jax.Array                 # global step index
  repeat: jax.Array               # index of the repeat of an update with repeats > 1 (else 0)


class Update(NamedTuple):
  name: str                       # metrics of this update are named f"{name}_loss" and f"{name}_{aux key}"
  model: str                      # the parameters it differentiates and updates
  loss: Callable[[dict, Any, Ctx], tuple[jax.Array, dict]]   # (params, batch, ctx) -> (loss, aux metrics)
  repeats: int = 1                # several updates of this model per step (the last one's metrics are kept)


class Sampler(NamedTuple):
  steps_per_epoch: int
  plan: Callable[[jax.Array, jax.Array], Any]        # (run key, epoch) -> pytree with leading axis S
  batch: Callable[[Any, Any], tuple[Any, jax.Array]]  # (data, plan of one step) -> (batch, step key)


class TrainSpec(NamedTuple):
  init: Callable[[jax.Array], Init]
  optimizers: dict[str, optax.GradientTransformation]
  updates: Sequence[Update]
  sampler: Sampler
  after_step: Callable[[TrainState], TrainState] | None = None


class Train(NamedTuple):
  init: Callable[[jax.Array], TrainState]
  train_segment: Callable[[TrainState, Any, int], tuple[TrainState, dict]]
  spec: TrainSpec
  train_step: Callable[[TrainState, Any, jax.Array, Any], tuple[TrainState, dict]]  # (state, batch, key, data)


def step_sampler(batch: Callable[[Any, jax.Array, jax.Array], Any],
                 step_key: Callable[[jax.Array, jax.Array], jax.Array] = jax.random.fold_in) -> Sampler:
  """A sampler without epochs: step s gets key step_key(run key, s) and batch(data, key, s)."""

  def plan(key, step):
    return step_key(key, step)[None], step[None]

  def make(data, plan_s):
    k, s = plan_s
    return batch(data, k, s), k

  return Sampler(1, plan, make)


def epoch_sampler(n_events: int, batch_size: int, gather: Callable[[Any, jax.Array], Any],
                  keys: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]) -> Sampler:
  """Shuffled epochs: keys(run key, epoch, steps_S) -> (permutation key, step keys_S); step i of the epoch
  gets the batch gather(data, idx_B) of the i-th slice of the permuted events and the i-th step key."""
  spe = n_events // batch_size
  if spe < 1:
    raise ValueError(f"batch size {batch_size} is larger than the {n_events} training events")

  def plan(key, epoch):
    k_perm, keys_S = keys(key, epoch, jnp.arange(spe))
    idx_SxB = jax.random.permutation(k_perm, n_events)[: spe * batch_size].reshape(spe, batch_size)
    return idx_SxB, keys_S

  def make(data, plan_s):
    idx_B, k = plan_s
    return gather(data, idx_B), k

  return Sampler(spe, plan, make)


def make_train(spec: TrainSpec) -> Train:
  """Pure init / train_segment for one member (see the module docstring)."""
  spe = int(spec.sampler.steps_per_epoch)

  def init(key) -> TrainState:
    out = spec.init(key)
    opt = {m: spec.optimizers[m].init(p) for m, p in out.params.items() if m in spec.optimizers}
    hyper = {k: jnp.asarray(v, jnp.float32) for k, v in dict(out.hyper).items()}
    extra = {"epoch": jnp.zeros((), jnp.int32), **dict(out.extra)}
    return TrainState(jnp.zeros((), jnp.int32), out.key, dict(out.params), opt, hyper, extra)

  def apply_update(state: TrainState, upd: Update, batch, k_step, data, repeat):
    ctx = Ctx(k_step, state.hyper, state.extra, data, state.step, repeat)

    def loss_of(p):
      return upd.loss({**state.params, upd.model: p}, batch, ctx)

    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params[upd.model])
    tx = spec.optimizers[upd.model]
    updates, opt = tx.update(grads, state.opt[upd.model], state.params[upd.model])
    params = optax.apply_updates(state.params[upd.model], updates)
    state = state.replace(params={**state.params, upd.model: params}, opt={**state.opt, upd.model: opt})
    return state, {f"{upd.name}_loss": loss, **{f"{upd.name}_{k}": v for k, v in aux.items()}}

  def train_step(state: TrainState, batch, k_step, data):
    metrics = {}
    for upd in spec.updates:
      if upd.repeats == 1:
        state, m = apply_update(state, upd, batch, k_step, data, jnp.zeros((), jnp.int32))
      else:
        state, ms = jax.lax.scan(lambda s, r, u=upd: apply_update(s, u, batch, k_step, data, r), state,
                                 jnp.arange(upd.repeats))
        m = jax.tree.map(lambda v: v[-1], ms)
      metrics.update(m)
    state = state.replace(step=state.step + 1)
    if spec.after_step is not None:
      state = spec.after_step(state)
    return state, metrics

  def train_epoch(state: TrainState, data):
    plan = spec.sampler.plan(state.key, state.extra["epoch"])

    def body(st, plan_s):
      batch, k_step = spec.sampler.batch(data, plan_s)
      return train_step(st, batch, k_step, data)

    if spe == 1:
      state, metrics = body(state, jax.tree.map(lambda a: a[0], plan))
    else:
      state, metrics = jax.lax.scan(body, state, plan)
      metrics = jax.tree.map(lambda v: v.mean(0), metrics)
    return state.replace(extra={**state.extra, "epoch": state.extra["epoch"] + 1}), metrics

  def train_segment(state: TrainState, data, n_steps: int):
    """`n_steps` steps (a whole number of epochs) as one scan; metrics are per-epoch means."""
    if n_steps % spe:
      raise ValueError(f"a segment of {n_steps} steps is not a whole number of {spe}-step epochs")
    return jax.lax.scan(lambda s, _: train_epoch(s, data), state, None, length=n_steps // spe)

  return Train(init, train_segment, spec, train_step)
