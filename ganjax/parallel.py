"""Data parallelism for the main job through JAX's own sharding.

One mesh axis, "batch", over the devices. Parameters, optimiser state and the training table are
replicated; inside the jitted step the batch (real objects, conditions, latents, labels) is constrained to
be split along "batch", so XLA's SPMD partitioner gives every device its slice of the batch and all-reduces
the gradients. The same constraint splits the event chunks of the S-sample metric and of the CR
generation. With one device every constraint is a no-op, so the single-device program is unchanged.

Multi-host: call `jax.distributed.initialize()` on every process before anything else; `jax.devices()` then
lists the devices of all hosts, `data_mesh()` spans them, and `replicate` builds global arrays from the
(identical, seeded) host copy of the table on each process (docs/scale_out.md).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def data_mesh(n_devices: int = 0) -> Mesh:
  """A 1D mesh named "batch" over the first `n_devices` devices (0 = all devices of all hosts)."""
  devices = jax.devices()
  if n_devices < 0 or n_devices > len(devices):
    raise ValueError(f"train.devices = {n_devices}, but {len(devices)} device(s) are available "
                     f"({devices[0].platform}); use 0 for all")
  return Mesh(np.array(devices[: n_devices or len(devices)]), (BATCH_AXIS,))


def replicate(tree, mesh: Mesh):
  """Place every array leaf of `tree` whole on every device of `mesh` (works across hosts too); Python
  scalars (static sizes) are left as they are."""
  sharding = replicated(mesh)

  def put(x):
    if isinstance(x, (int, float, bool)):
      return x
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    host = np.asarray(x)  # multi-host: every process holds the same host copy (seeded data, init)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

  return jax.tree.map(put, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of a value held whole by every device (out_shardings of the jitted segments, so the
  host can read losses, histograms and parameters on every process)."""
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
  """Inside jit: split the leading (batch/event) axis of `x` over the mesh; identity without a mesh."""
  if mesh is None or mesh.size == 1:
    return x
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(BATCH_AXIS)))
