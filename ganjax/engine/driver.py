"""The one host driver: jitted segments, evaluation at segment ends, per-member best, checkpoints, resume,
SIGTERM/Ctrl-C, NaN stop, progress, TensorBoard.

Every method hands `run` a `Loop` (its Members, data, lengths and evaluation hook) and a stacked initial
state (a single run is an ensemble of one). At each segment end the driver
  1. checks the segment's training metrics: a member whose metrics are NaN/inf is marked diverged at that
     step and left out of selection from then on; when every member has diverged the run stops
     (TrainingDivergedError, exit status 1) naming the step and the metrics;
  2. calls `evaluate(state, step)` -> {name: [M] values} and records it with the training metrics in the
     history (also as TensorBoard scalars in workdir/tb);
  3. keeps, per member, `keep(state)` of the evaluation with the lowest `select` value (ties keep the
     earlier one), and likewise for each key of `also_select` (a second selection rule to compare with).
     With `select_margin`, a new value replaces a member's kept one only when it is lower by more than that
     member's margin, `select_margin(kept models, kept step [M], models now, step)` (e.g. n sigma of the
     paired event-bootstrap error of the difference: ties keep the earlier model), recorded in the history
     as f"{select}_margin" (0 where nothing is kept). The margin is a function of the kept models and their
     steps, both saved in `latest`, so a resumed run recomputes the same margins (the `also_select` rules
     stay plain);
  4. saves `best` (when a member improved) and then `latest` (state, kept models, history) with orbax, at
     every segment end or, with `checkpoint_every_s`, at most that often (a resumed run replays the segments
     after the last save, with the same result);
  5. turns a SIGTERM / Ctrl-C caught during the segment into InterruptedError_ (exit status 130).
Rerunning with the same workdir resumes from `latest` and ends with the same result as an uninterrupted
run. With workdir=None nothing is written (library fits inside another run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import io
from ganjax.engine.checkpoints import Checkpoints
from ganjax.engine.errors import InterruptedError_, TrainingDivergedError
from ganjax.engine.members import Members
from ganjax.progress import Progress


class Loop(NamedTuple):
  members: Members
  data: Any
  total_steps: int
  segment_steps: int
  evaluate: Callable[[Any, int], dict] | None = None   # (state_M, step) -> {name: [M]}
  select: str | None = None          # evaluation key whose lowest value marks each member's best
  also_select: tuple = ()            # more evaluation keys, each with its own per-member best (Result.also)
  # (kept models, kept step [M] (-1: none or diverged), models now, step) -> [M] margin by which a new
  # `select` value must be lower than the kept one to replace it (None: plain lowest value)
  select_margin: Callable[[Any, np.ndarray, Any, int], np.ndarray] | None = None
  keep: Callable[[Any], Any] | None = None             # state_M -> what is kept as best (default: params)
  aux: Any = None                    # arrays saved with every checkpoint (e.g. fitted transforms)
  name: str = "ganjax"               # progress label
  checkpoint_every_s: float = 0.0    # save at most this often (0: every segment); always at the end and on stop
  mean_metrics: tuple = ()           # training metrics also recorded as their segment mean, f"{name}_mean"
  log_members: int = 8               # per-member TensorBoard scalars for at most this many members


class Result(NamedTuple):
  state: Any                 # final stacked state
  best: Any                  # kept models (stacked over members); the final ones without `select`
  best_score: np.ndarray     # [M] lowest `select` value (inf without selection)
  best_step: np.ndarray      # [M] step of the kept models (-1: never selected)
  diverged_at: np.ndarray    # [M] step at which a member diverged (-1: never)
  history: list              # one record per segment end: {"step", "epoch", name: [M] list}
  resumed_from: int          # step of the checkpoint the run resumed from (0: a fresh run)
  also: dict = {}            # also_select key -> (kept models, best score [M], best step [M])


@contextlib.contextmanager
def stop_requests():
  """SIGTERM and Ctrl-C set a flag that the loop checks at the next segment end (then saves and exits)."""
  flag = {"stop": None}
  if jax.process_index() != 0 or sys.platform == "win32":
    yield flag
    return
  try:
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, _frame):
      flag["stop"] = signal.Signals(signum).name
    for s in previous:
      signal.signal(s, handler)
  except ValueError:  # not the main thread: no signal handling
    yield flag
    return
  try:
    yield flag
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


class _Scalars:
  """TensorBoard scalars through tensorboardX (no TensorFlow); primary process only."""

  def __init__(self, logdir: str | None, log_members: int):
    self.writer, self.log_members = None, log_members
    if logdir is not None and io.is_primary():
      from tensorboardX import SummaryWriter
      self.writer = SummaryWriter(logdir=logdir)

  def write(self, record: dict, step: int) -> None:
    if self.writer is None:
      return
    for k, v in record.items():
      if k in ("step", "epoch"):
        continue
      v = np.asarray(v, np.float64)
      if v.size == 1:
        self.writer.add_scalar(k, float(v.reshape(())), step)
        continue
      finite = v[np.isfinite(v)]
      if finite.size:
        self.writer.add_scalar(f"{k}/mean", float(finite.mean()), step)
      for j in range(min(v.size, self.log_members)):
        self.writer.add_scalar(f"{k}/member_{j}", float(v[j]), step)
    self.writer.flush()

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


def _where_members(take_M: np.ndarray, new, old):
  take = jnp.asarray(take_M)
  return jax.tree.map(lambda n, o: jnp.where(take.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


class _Kept:
  """Per member, the models of the lowest value of one evaluation key so far (ties keep the earlier); with a
  margin [M], a new value must be lower than the kept one by more than it."""

  def __init__(self, key: str, models, n_members: int, meta: dict | None = None):
    self.key, self.models = key, models
    self.score = np.asarray(meta["best_score"] if meta else [np.inf] * n_members, np.float64)
    self.step = np.asarray(meta["best_step"] if meta else [-1] * n_members, np.int64)

  def update(self, ev: dict, diverged_at: np.ndarray, step: int, models_now,
             margin_M: np.ndarray | None = None) -> bool:
    if self.key not in ev:
      return False
    score = np.where((diverged_at < 0) & np.isfinite(ev[self.key]), ev[self.key], np.inf)
    improved = score < (self.score if margin_M is None else np.where(self.step >= 0, self.score - margin_M, np.inf))
    if improved.any():
      self.score = np.where(improved, score, self.score)
      self.step = np.where(improved, step, self.step)
      self.models = _where_members(improved, models_now, self.models)
    return bool(improved.any())

  def meta(self) -> dict:
    return {"best_score": self.score.tolist(), "best_step": self.step.tolist()}


def run(loop: Loop, state, workdir: str | None = None,
        on_segment_end: Callable[[int], None] | None = None) -> Result:
  """Train `state` (stacked over members) to loop.total_steps; see the module docstring."""
  spe = loop.members.train.spec.sampler.steps_per_epoch
  unit = "epoch" if spe > 1 else "step"
  if loop.segment_steps < 1 or loop.segment_steps % spe or loop.total_steps % spe:
    raise ValueError(f"segment_steps ({loop.segment_steps}) and total_steps ({loop.total_steps}) must be "
                     f"whole numbers of {spe}-step epochs")
  keep = loop.keep or (lambda s: s.params)
  n_members = int(jax.tree.leaves(state)[0].shape[0])
  best = _Kept(loop.select, keep(state), n_members)
  also = {k: _Kept(k, best.models, n_members) for k in loop.also_select}
  diverged_at, history = np.full(n_members, -1, np.int64), []
  ckpt = Checkpoints(workdir) if workdir is not None else None
  resumed_from = 0

  def tree_of(state):
    return {"state": state, "best": best.models, "aux": loop.aux,
            **({"also": {k: a.models for k, a in also.items()}} if also else {})}

  if ckpt is not None:
    restored = ckpt.restore_latest(tree_of(state))
    if restored is not None:
      tree, meta, resumed_from = restored
      state = tree["state"]
      best = _Kept(loop.select, tree["best"], n_members, meta)
      also = {k: _Kept(k, tree["also"][k], n_members, meta["also"][k]) for k in also}
      diverged_at, history = np.asarray(meta["diverged_at"], np.int64), list(meta["history"])
      print(f"[{loop.name}] resuming {workdir} at {unit} {resumed_from // spe}", flush=True)
      if loop.select is not None and (best.step >= 0).any():
        found = ckpt.restore_best({"best": best.models, "aux": loop.aux})
        if found is None or found[2] < int(best.step.max()):  # best/ damaged, missing or stale: rebuilt
          why = f"damaged ({ckpt.best_damage})" if ckpt.best_damage else "missing or older than latest"
          print(f"ganjax: warning: {workdir}/checkpoints/best is {why}; rebuilt from the kept models in latest",
                file=sys.stderr, flush=True)
          ckpt.save_best(int(best.step.max()), {"best": best.models, "aux": loop.aux}, best.meta())

  step = int(np.asarray(state.step).reshape(-1)[0])
  scalars = _Scalars(os.path.join(workdir, "tb") if workdir is not None else None, loop.log_members)
  bar = Progress(total=loop.total_steps // spe, desc=f"{loop.name} x{n_members}" if n_members > 1 else loop.name,
                 unit=unit, start=step // spe)
  last_save, best_unsaved, last_saved = time.time(), False, resumed_from
  try:
    with stop_requests() as stop:
      while step < loop.total_steps:
        n = min(loop.segment_steps, loop.total_steps - step)
        t0 = time.time()
        state, metrics = loop.members.segment(state, loop.data, n)
        metrics = {k: np.asarray(v).reshape(n_members, -1) for k, v in metrics.items()}  # [M, epochs]; blocks
        seconds = time.time() - t0
        step += n
        bad = np.zeros(n_members, bool)
        for v in metrics.values():
          bad |= ~np.isfinite(v).all(1)
        newly = bad & (diverged_at < 0)
        diverged_at[newly] = step
        if (diverged_at >= 0).all():
          if ckpt is not None and best_unsaved:  # the message says where the best models are: on disk
            ckpt.save_best(int(best.step.max()), {"best": best.models, "aux": loop.aux}, best.meta())
          raise _diverged(metrics, newly, step - n, spe, unit, best if loop.select is not None else None,
                          workdir, last_saved)
        record = {"step": step, "epoch": step // spe, "seconds": seconds,
                  **{k: v[:, -1].tolist() for k, v in metrics.items()},
                  **{f"{k}_mean": metrics[k].mean(1).tolist() for k in loop.mean_metrics}}
        if loop.evaluate is not None:
          ev = {k: np.asarray(v, np.float64).reshape(n_members) for k, v in loop.evaluate(state, step).items()}
          record.update({k: v.tolist() for k, v in ev.items()})
          if loop.select is not None:
            models_now = keep(state)
            margin = None
            if loop.select_margin is not None:
              margin, kept_step = np.zeros(n_members), np.where(diverged_at < 0, best.step, -1)
              if (kept_step >= 0).any():  # live members with a kept model: their margins
                margin = np.where(kept_step >= 0, np.asarray(
                    loop.select_margin(best.models, kept_step, models_now, step), np.float64).reshape(n_members), 0.0)
              record[f"{loop.select}_margin"] = margin.tolist()
            best_unsaved |= best.update(ev, diverged_at, step, models_now, margin)
            for a in also.values():
              a.update(ev, diverged_at, step, models_now)
        if loop.select is None:  # no selection: the kept models are the latest
          best.models, best.step[:] = keep(state), step
        history.append(record)
        due = time.time() - last_save >= loop.checkpoint_every_s or step >= loop.total_steps or stop["stop"]
        if ckpt is not None and due:
          if best_unsaved:
            ckpt.save_best(int(best.step.max()), {"best": best.models, "aux": loop.aux}, best.meta())
            best_unsaved = False
          meta = {"history": history, **best.meta(), "diverged_at": diverged_at.tolist(),
                  "also": {k: a.meta() for k, a in also.items()}}
          ckpt.save_latest(step, tree_of(state), meta)
          last_save, last_saved = time.time(), step
        scalars.write({k: v for k, v in record.items() if k != "seconds"}, step)
        shown = {}
        if loop.select is not None:
          shown["best"] = " ".join(f"{s:.4g}@{b // spe}" for s, b in zip(best.score[:4], best.step[:4]))
        bar.update(n // spe, **{k: float(np.nanmean(v)) for k, v in list(record.items())[3:7]}, **shown)
        if on_segment_end is not None:
          on_segment_end(step)
        if stop["stop"]:
          raise InterruptedError_(f"{stop['stop']} received: state saved at {unit} {step // spe}; rerun with "
                                  f"--workdir={workdir} to resume")
  finally:
    bar.close()
    scalars.close()
    if ckpt is not None:
      ckpt.close()
  return Result(state, best.models, best.score, best.step, diverged_at, history, resumed_from,
                {k: (a.models, a.score, a.step) for k, a in also.items()})


def _diverged(metrics: dict, newly: np.ndarray, start: int, spe: int, unit: str, best: _Kept | None,
              workdir: str | None, last_saved: int) -> TrainingDivergedError:
  """The error for a run whose every member diverged: where, with which values, what is kept on disk (the
  selected best models, else the last saved state; never a checkpoint that does not exist)."""
  j = int(np.argmax(newly)) if newly.any() else 0
  first = {k: v[j] for k, v in metrics.items()}
  e_bad = int(np.argmax(~np.all([np.isfinite(v) for v in first.values()], axis=0)))
  at = start + (e_bad + 1) * spe
  what = ", ".join(f"{k} = {v[e_bad]:.4g}" for k, v in first.items())
  if workdir is None:
    kept = "nothing was saved (no workdir)"
  elif best is not None and (best.step >= 0).any():
    kept = f"the best models (from {unit} {int(best.step.max()) // spe}) are kept in {workdir}/checkpoints/best"
  elif last_saved > 0:
    kept = f"the state of {unit} {last_saved // spe} is kept in {workdir}/checkpoints/latest"
  else:
    kept = "it diverged before the first checkpoint, so no model was kept"
  return TrainingDivergedError(f"loss became NaN/inf at {unit} {at // spe} ({what}); {kept}; lower the "
                               "learning rate or check the input data")
