"""orbax checkpoints of a run: `latest` (resume; the two most recent kept) and `best` (the kept models).

Each checkpoint is a Composite of a pytree of arrays (`tree`, StandardSave) and a JSON document (`meta`:
histories, scores, steps), so what a run needs to resume is saved in one atomic step.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """workdir/checkpoints/{latest,best}; saving blocks until the checkpoint is complete on disk."""

  def __init__(self, workdir: str, keep_latest: int = 2):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.latest = ocp.CheckpointManager(os.path.join(root, "latest"),
                                        options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, create=True))
    self.best = ocp.CheckpointManager(os.path.join(root, "best"),
                                      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

  @staticmethod
  def _save(mngr, step: int, tree: Any, meta: dict) -> None:
    mngr.save(int(step), args=ocp.args.Composite(tree=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
              force=True)
    mngr.wait_until_finished()

  @staticmethod
  def _restore(mngr, like: Any) -> tuple[Any, dict, int] | None:
    step = mngr.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    out = mngr.restore(step, args=ocp.args.Composite(tree=ocp.args.StandardRestore(abstract),
                                                     meta=ocp.args.JsonRestore()))
    return out["tree"], out["meta"], int(step)

  def save_latest(self, step: int, tree: Any, meta: dict) -> None:
    self._save(self.latest, step, tree, meta)

  def save_best(self, step: int, tree: Any, meta: dict) -> None:
    self._save(self.best, step, tree, meta)

  def restore_latest(self, like: Any):
    """(tree, meta, step) of the most recent `latest`, or None."""
    return self._restore(self.latest, like)

  def restore_best(self, like: Any):
    """(tree, meta, step) of `best`, or None."""
    return self._restore(self.best, like)

  def close(self) -> None:
    self.latest.close()
    self.best.close()
