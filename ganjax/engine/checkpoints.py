"""orbax checkpoints of a run: `latest` (resume; the two most recent kept) and `best` (the kept models),
checked on restore.

Each checkpoint is a Composite of a pytree of arrays (`tree`, StandardSave) and a JSON document (`meta`:
histories, scores, steps), saved in one atomic step by orbax. After the save, the SHA-256 of every file of
the step is written beside it (`<step>.sha256.json`, atomically); a restore verifies them, so flipped or
truncated bytes are detected as damage, never trained on (and never mistaken for a diverged training).
A damaged `latest` falls back to the previous one with a one-line warning; when none is usable the run
stops with a BadInputError saying what to remove. A newest checkpoint without checksums is one whose save
was cut short (kill -9 between orbax's commit and the checksums): it is removed and its segment replayed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from ganjax.engine.errors import BadInputError


def _digest(step_dir: str) -> dict[str, str]:
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in sorted(files):
      path = os.path.join(root, name)
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      out[os.path.relpath(path, step_dir)] = h.hexdigest()
  return out


@contextlib.contextmanager
def _quiet():
  """orbax reports a missing or unreadable file of a checkpoint through absl logging (e.g. "W... Metadata
  file does not exist") before our check names the damage, and the leftovers of a save cut short by a kill
  when it saves again; while checkpoints are read or saved, only our one-line messages are shown (failures
  still raise)."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


class Checkpoints:
  """workdir/checkpoints/{latest,best}; saving blocks until the checkpoint and its checksums are on disk."""

  def __init__(self, workdir: str, keep_latest: int = 2):
    self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.best_damage = ""  # why the last restore_best found no usable checkpoint ("" when none was there)
    with _quiet():
      self.latest = ocp.CheckpointManager(os.path.join(self.root, "latest"),
                                          options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, create=True))
      self.best = ocp.CheckpointManager(os.path.join(self.root, "best"),
                                        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

  @staticmethod
  def _sums_path(mngr, step: int) -> str:
    return os.path.join(str(mngr.directory), f"{int(step)}.sha256.json")

  def _save(self, mngr, step: int, tree: Any, meta: dict) -> None:
    with _quiet():  # e.g. orbax's warning that it removes the temporary folder of a save cut short by a kill
      for old in mngr.all_steps():  # a replayed segment (after a crash or a damaged checkpoint): the step and
        if int(old) >= int(step):   # any later one are stale (orbax would also keep the later one as newest)
          mngr.delete(int(old))
      mngr.save(int(step), args=ocp.args.Composite(tree=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)),
                force=True)
      mngr.wait_until_finished()
    if jax.process_index() != 0:
      return
    from ganjax import io
    io.write_json(self._sums_path(mngr, step), _digest(os.path.join(str(mngr.directory), str(int(step)))))
    kept = {str(s) for s in mngr.all_steps()}
    for name in os.listdir(str(mngr.directory)):  # checksums of checkpoints orbax has removed
      if name.endswith(".sha256.json") and name.split(".")[0] not in kept:
        os.remove(os.path.join(str(mngr.directory), name))

  def _verified_restore(self, mngr, step: int, like: Any):
    sums = self._sums_path(mngr, step)
    if not os.path.exists(sums):
      raise ValueError("its checksums are missing")
    with open(sums) as f:
      expected = json.load(f)
    found = _digest(os.path.join(str(mngr.directory), str(step)))
    bad = sorted(k for k in expected if found.get(k) != expected[k])
    if bad:
      raise ValueError(f"{len(bad)} file(s) differ from their checksums (e.g. {bad[0]})")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with _quiet():
      out = mngr.restore(step, args=ocp.args.Composite(tree=ocp.args.StandardRestore(abstract),
                                                       meta=ocp.args.JsonRestore()))
    return out["tree"], out["meta"], int(step)

  def _restore(self, mngr, like: Any, what: str, warn: bool = True):
    with _quiet():
      steps = sorted(mngr.all_steps(), reverse=True)
    damaged = False
    for i, step in enumerate(steps):
      if i == 0 and not os.path.exists(self._sums_path(mngr, step)):
        # orbax committed it but its checksums were never written: the run was killed between the two. It was
        # never verified, so it is not used: removed, and its segment replayed.
        then = f"falling back to {what}/{steps[1]}" if len(steps) > 1 else "starting from the beginning"
        if what == "best":
          self.best_damage = f"{what}/{step}: incomplete, the run stopped while saving it"
        if warn:
          print(f"ganjax: warning: checkpoint {what}/{step} is incomplete (the run stopped while saving it); {then}",
                file=sys.stderr, flush=True)
        if jax.process_index() == 0:
          mngr.delete(step)
        continue
      try:
        return self._verified_restore(mngr, step, like)
      except Exception as e:  # noqa: BLE001 - any failure to read a checkpoint means it is damaged
        damaged = True
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if what == "best":
          self.best_damage = f"{what}/{step}: {why}"
        if warn:
          print(f"ganjax: warning: checkpoint {what}/{step} is damaged ({why}); "
                + (f"falling back to {what}/{steps[i + 1]}" if i + 1 < len(steps) else "no older one is kept"),
                file=sys.stderr, flush=True)
        if i + 1 < len(steps) and jax.process_index() == 0:
          mngr.delete(step)  # never used again; its step is saved anew when training gets there
    if damaged:
      raise BadInputError(f"every checkpoint in {os.path.join(self.root, what)} is damaged; remove "
                          f"{self.root} to start the run over")
    return None

  def save_latest(self, step: int, tree: Any, meta: dict) -> None:
    self._save(self.latest, step, tree, meta)

  def save_best(self, step: int, tree: Any, meta: dict) -> None:
    self._save(self.best, step, tree, meta)

  def restore_latest(self, like: Any):
    """(tree, meta, step) of the most recent usable `latest`, or None when there is none."""
    return self._restore(self.latest, like, "latest")

  def restore_best(self, like: Any):
    """(tree, meta, step) of `best`, or None; no warning of its own: when it is damaged, `best_damage` says
    why (the caller rebuilds it and says so in one line)."""
    self.best_damage = ""
    try:
      return self._restore(self.best, like, "best", warn=False)
    except BadInputError:
      return None

  def close(self) -> None:
    self.latest.close()
    self.best.close()
