"""The member axis in one place: a single run is an ensemble of one; members run side by side (vmap) or
one after the other inside the same XLA program (lax.map), their axis optionally sharded over devices."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.engine.core import Train


def resolve_axis(how: str = "auto") -> str:
  """vmap (the fast choice on GPU/TPU) or map (lax.map: on CPU, vmapping members' different convolution
  weights becomes grouped convolutions that XLA:CPU runs 2-3x slower than members one by one;
  benchmarks/hgg_members.py). auto = map on CPU, vmap elsewhere."""
  if how == "auto":
    return "map" if jax.default_backend() == "cpu" else "vmap"
  if how not in ("vmap", "map"):
    raise ValueError(f"member axis must be auto, vmap or map, got {how!r}")
  return how


def over_members(f: Callable, in_axes: Sequence[int | None], how: str = "auto") -> Callable:
  """f applied over a leading member axis of the arguments whose in_axes entry is 0 (None: shared).

  One member runs f itself on the unstacked arguments (the same arithmetic as a run without an ensemble);
  more members run under jax.vmap or lax.map (`resolve_axis`)."""
  how = resolve_axis(how)

  def g(*args):
    mapped = [a for a, ax in zip(args, in_axes) if ax == 0]
    n = jax.tree.leaves(mapped)[0].shape[0]

    def call(ms):
      it = iter(ms)
      return f(*[next(it) if ax == 0 else a for a, ax in zip(args, in_axes)])

    if n == 1:
      out = call([jax.tree.map(lambda a: a[0], m) for m in mapped])
      return jax.tree.map(lambda a: jnp.asarray(a)[None], out)
    if how == "vmap":
      return jax.vmap(call)(mapped)
    return jax.lax.map(call, mapped)

  return g


def member_sharding(n_members: int, devices=None) -> jax.sharding.NamedSharding:
  """Shard a leading member axis over `devices` (default: all local devices)."""
  devices = list(devices if devices is not None else jax.local_devices())
  if n_members % len(devices):
    raise ValueError(f"n_members={n_members} must be a multiple of the {len(devices)} devices to shard over")
  mesh = jax.sharding.Mesh(np.array(devices), ("member",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("member"))


def member_keys(seed: int, n_members: int) -> jax.Array:
  """Per-member keys fold_in(PRNGKey(seed), m): member m's key does not depend on the ensemble size."""
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.arange(n_members))


class Members(NamedTuple):
  """A Train over a member axis: init(keys_M) -> state_M; segment(state_M, data, n_steps) -> (state_M,
  metrics {name: [M, epochs]}), one jitted program per segment length; `segment_jit` is that program (for
  ahead-of-time compilation in benchmarks)."""
  train: Train
  init: Callable
  segment: Callable
  segment_jit: Any
  sharding: Any


def make_members(train: Train, data_axis: int | None = None, how: str = "auto", sharding=None) -> Members:
  """jit over members of `train`. data_axis: 0 when each member has its own training data (a leading member
  axis), None when all share it. sharding: a NamedSharding of the member axis (member_sharding), or None to
  leave placement to XLA (the replicated or batch-split data of a single data-parallel run)."""
  init_j = jax.jit(over_members(train.init, (0,), how), out_shardings=sharding)

  @partial(jax.jit, static_argnums=2, out_shardings=sharding)
  def segment_jit(state, data, n_steps):
    return over_members(lambda s, d: train.train_segment(s, d, n_steps), (0, data_axis), how)(state, data)

  def put(x):
    return x if sharding is None else jax.device_put(x, sharding)

  def init(keys):
    return init_j(put(keys))

  def segment(state, data, n_steps):
    return segment_jit(state, put(data) if data_axis == 0 else data, n_steps)

  return Members(train, init, segment, segment_jit, sharding)
