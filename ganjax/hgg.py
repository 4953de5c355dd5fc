"""The main job: conditional-GAN background estimate for H->gamma gamma (hgg-background-gan paper).

train_and_evaluate(config, workdir):
  data (simulate or read; SR split train/val/test; preprocessing fitted on SR train only)
  -> make_train(config) -> jitted segments of `eval_every` epochs (lax.scan on device)
  -> at each segment end: -2 ln Lambda on training and validation sets with S generations per event
     (one jitted call each), TensorBoard scalars, progress line, checkpoints (latest; best by validation)
  -> the best generator replaces the fake photon of every CR event; diphoton variables recomputed
  -> workdir: config.json, metrics.json, ganed_cr.parquet, mc_sr_test.parquet, plots/, tb/.
Rerunning with the same workdir resumes from the latest checkpoint and ends with the same metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ganjax import io
from ganjax.data import gjets
from ganjax.data.preprocess import QuantileTransform, dequantize, fit_quantile_transform
from ganjax.metrics.likelihood import neg2_log_likelihood
from ganjax.metrics.separation import histogram_edges, separation_power
from ganjax.models.dcgan import generator_flops_per_object
from ganjax.parallel import data_mesh, replicate, replicated, shard_batch
from ganjax.progress import Progress
from ganjax.train import evaluate
from ganjax.train.gan import GANState, make_train, set_hyperparams

STRATEGY_FEATURES = {
    "vanilla": (),
    "partial": gjets.JET_COLUMNS,
    "full": gjets.JET_COLUMNS + gjets.PHOTON_COLUMNS + gjets.EVENT_COLUMNS,
}


class BadInputError(ValueError):
  """Input data or configuration that cannot be trained on; raised before any compute."""


class TrainingDivergedError(RuntimeError):
  """A loss became NaN/inf; the best checkpoint so far is kept."""


class InterruptedError_(RuntimeError):
  """SIGTERM / Ctrl-C: the latest state was saved; rerun with the same workdir to resume."""


# ----------------------------------------------------------------------------------------------------
# Configuration and input checks (all before any compute).


def cond_features(config) -> tuple[str, ...]:
  if config.strategy == "custom":
    return tuple(config.cond_features)
  if config.strategy not in STRATEGY_FEATURES:
    raise BadInputError(f"unknown strategy {config.strategy!r}; use vanilla, partial, full or custom")
  return STRATEGY_FEATURES[config.strategy]


def check_config(config) -> None:
  """Impossible settings get a clear error before anything runs."""
  problems = []
  if config.metric.n_samples < 1:
    problems.append(f"metric.n_samples (S) must be >= 1, got {config.metric.n_samples}")
  if any(s < 1 for s in config.metric.test_samples):
    problems.append(f"metric.test_samples must all be >= 1, got {tuple(config.metric.test_samples)}")
  if config.metric.n_bins < 2:
    problems.append(f"metric.n_bins must be >= 2, got {config.metric.n_bins}")
  if config.train.epochs < 1 or config.train.eval_every < 1:
    problems.append("train.epochs and train.eval_every must be >= 1")
  if config.train.decay_epochs < 0:
    problems.append(f"train.decay_epochs must be >= 0 (0 = train.epochs), got {config.train.decay_epochs}")
  if not 0.0 <= config.train.label_noise < 0.5:
    problems.append(f"train.label_noise must be in [0, 0.5), got {config.train.label_noise}")
  if config.train.batch_size < 1:
    problems.append(f"train.batch_size must be >= 1, got {config.train.batch_size}")
  if config.train.batch_size > config.data.n_train:
    problems.append(f"train.batch_size {config.train.batch_size} is larger than the training set "
                    f"(data.n_train = {config.data.n_train})")
  if min(config.data.n_train, config.data.n_val, config.data.n_test) < 1:
    problems.append("data.n_train, data.n_val and data.n_test must be >= 1")
  if any(s < 1 for s in config.metric.history_samples):
    problems.append(f"metric.history_samples must all be >= 1, got {tuple(config.metric.history_samples)}")
  if config.metric.chunk < 1:
    problems.append("metric.chunk must be >= 1")
  n_dev = config.train.devices or len(jax.devices())
  if not 0 <= config.train.devices <= len(jax.devices()):
    problems.append(f"train.devices = {config.train.devices}, but {len(jax.devices())} device(s) are available "
                    "(0 = all)")
  elif config.train.batch_size % n_dev or config.metric.chunk % n_dev:
    problems.append(f"train.batch_size ({config.train.batch_size}) and metric.chunk ({config.metric.chunk}) "
                    f"must be multiples of the {n_dev} devices the batch is split over (train.devices)")
  if config.output.format not in ("parquet", "root"):
    problems.append(f"output.format must be parquet or root, got {config.output.format!r}")
  gen = tuple(config.gen_features)
  for need in ("fake_pt", "fake_eta", "fake_phi"):
    if need not in gen and any(d in gjets.DIPHOTON_COLUMNS for d in config.metric.dims):
      problems.append(f"metric dims {tuple(config.metric.dims)} need the diphoton system, so gen_features "
                      f"must contain {need}")
  overlap = set(gen) & set(cond_features(config))
  if overlap:
    problems.append(f"columns both generated and conditional: {sorted(overlap)}")
  if problems:
    raise BadInputError("invalid configuration:\n  " + "\n  ".join(problems))


def check_table(table: dict, needed: Sequence[str], name: str) -> None:
  """Missing columns and NaN/inf values are reported by name and count."""
  missing = [c for c in needed if c not in table]
  if missing:
    raise BadInputError(f"{name}: missing column(s) {missing}; available: {sorted(table)}")
  bad = {c: int((~np.isfinite(np.asarray(table[c], np.float64))).sum()) for c in needed}
  bad = {c: n for c, n in bad.items() if n}
  if bad:
    n = len(next(iter(table.values())))
    raise BadInputError(f"{name}: non-finite values (NaN/inf) in {len(bad)} column(s) of {n} rows: "
                        + ", ".join(f"{c}: {k} rows" for c, k in bad.items()))


def region_params(config) -> gjets.GJetsParams:
  """The simulator's parameters with the configured region thresholds."""
  return gjets.GJetsParams(sr_id_min=config.data.sr_id_min, cr_id_floor=config.data.cr_id_floor,
                           prompt_id_min=config.data.prompt_id_min)


def load_regions(config) -> tuple[dict, dict, str]:
  """(SR, CR, description) from the configured source: the simulator, NanoAOD or a flat table."""
  if config.data.source == "simulate":
    events = gjets.simulate(config.data.n_events, seed=config.data.sim_seed, params=region_params(config))
    sr, cr = gjets.split_regions(events)
    return sr, cr, f"built-in gamma+jets simulator (n_events={config.data.n_events}, seed={config.data.sim_seed})"
  from ganjax.data import sources
  try:
    return sources.load_source(config.data.source, config.data)
  except (ValueError, OSError) as e:
    raise BadInputError(str(e)) from e


def required_columns(config) -> tuple[str, ...]:
  metric_cols = [d for d in config.metric.dims if d not in gjets.DIPHOTON_COLUMNS]
  aux = evaluate.aux_columns(config.metric.dims, config.gen_features)
  return tuple(dict.fromkeys(list(config.gen_features) + list(cond_features(config)) + metric_cols
                             + list(aux) + list(gjets.PHOTON_COLUMNS)))


# ----------------------------------------------------------------------------------------------------
# Data preparation.


class Prepared:
  """Splits, fitted transforms and model-space arrays of one run."""

  def __init__(self, config, sr: dict, cr: dict):
    self.gen_names = tuple(config.gen_features)
    self.cond_names = cond_features(config)
    self.metric_dims = tuple(config.metric.dims)
    rng = np.random.default_rng(config.seed)
    n_sr = len(sr[self.gen_names[0]])
    n_tr, n_va, n_te = config.data.n_train, config.data.n_val, config.data.n_test
    if n_tr + n_va + n_te > n_sr:
      raise BadInputError(f"the SR has {n_sr} events but data.n_train + n_val + n_test = "
                          f"{n_tr + n_va + n_te}; lower them or simulate more (data.n_events)")
    perm = rng.permutation(n_sr)
    take = lambda idx: {k: v[idx] for k, v in sr.items()}
    self.train = take(perm[:n_tr])
    self.val = take(perm[n_tr:n_tr + n_va])
    self.test = take(perm[n_tr + n_va:n_tr + n_va + n_te])
    n_cr = len(cr[self.gen_names[0]])
    if config.data.n_cr and config.data.n_cr < n_cr:
      keep = rng.permutation(n_cr)[:config.data.n_cr]  # one subset of events for every column
      cr = {k: v[keep] for k, v in cr.items()}
    self.cr = cr
    self._dq_seed = config.seed + 1
    # The fake sits near its parent jet's axis: when the jet is conditional input, generate its eta and phi
    # relative to the jet (a bijection given the condition), which removes the phi wrap-around.
    self.relative = {}
    if config.relative_to_jet:
      self.relative = {g: j for g, j in (("fake_eta", "jet_eta"), ("fake_phi", "jet_phi"))
                       if g in self.gen_names and j in self.cond_names}

    model_cols = self.gen_names + self.cond_names
    qt = fit_quantile_transform(self._model_matrix(self.train, model_cols, 0), config.data.n_quantiles)
    self.gen_qt = qt.select(range(len(self.gen_names)))
    self.cond_qt = qt.select(range(len(self.gen_names), len(model_cols)))
    rows = []
    for d in self.metric_dims:
      if d in self.gen_names and d not in self.relative:
        rows.append(np.asarray(self.gen_qt.knots_DxQ[self.gen_names.index(d)]))
      else:
        values = self.train[d] if d in self.train else gjets.diphoton(
            *[self.train[c] for c in ("pho_pt", "pho_eta", "pho_phi", "fake_pt", "fake_eta", "fake_phi")])[d]
        rows.append(np.asarray(fit_quantile_transform(
            self._maybe_dequantize(d, values, 1)[:, None], config.data.n_quantiles).knots_DxQ[0]))
    self.metric_qt = QuantileTransform(knots_DxQ=np.stack(rows), probs_Q=self.gen_qt.probs_Q)

  def _maybe_dequantize(self, name, values, salt):
    if name in gjets.INTEGER_COLUMNS:
      return dequantize(values, np.random.default_rng([self._dq_seed, salt]))
    return np.asarray(values, np.float64)

  def _model_values(self, table, name, salt):
    """A column as the model sees it: de-quantised if integer, relative to the jet if so configured."""
    if name in self.relative:
      v = np.asarray(table[name], np.float64) - table[self.relative[name]]
      return gjets.wrap_phi(v) if name.endswith("phi") else v
    return self._maybe_dequantize(name, table[name], salt)

  def _model_matrix(self, table, names, salt):
    cols = [self._model_values(table, n, salt) for n in names]
    return np.stack(cols, -1) if cols else np.zeros((len(table[self.gen_names[0]]), 0))

  def cond(self, table, salt: int) -> np.ndarray:
    """Preprocessed conditional features of a table (integer columns de-quantised)."""
    x = self._model_matrix(table, self.cond_names, salt)
    return np.asarray(self.cond_qt.forward(x), np.float32) if x.shape[1] else x.astype(np.float32)

  def gen(self, table) -> np.ndarray:
    return np.asarray(self.gen_qt.forward(self._model_matrix(table, self.gen_names, 0)), np.float32)

  def transforms(self) -> dict:
    """The fitted transforms, as saved in every checkpoint (orbax cannot save the empty vanilla `cond`)."""
    out = {"gen": self.gen_qt, "metric": self.metric_qt}
    if self.cond_names:
      out["cond"] = self.cond_qt
    return out


# ----------------------------------------------------------------------------------------------------
# Checkpoints.


class Checkpoints:
  """orbax: `latest` (for resume) and `best` (lowest validation -2 ln Lambda), one kept each."""

  def __init__(self, workdir: str):
    opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    self.latest = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints", "latest"),
                                        options=opts)
    self.best = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints", "best"),
                                      options=opts)

  @staticmethod
  def _save(mngr, step, tree):
    mngr.save(int(step), args=ocp.args.StandardSave(tree), force=True)
    mngr.wait_until_finished()

  @staticmethod
  def _restore(mngr, like):
    step = mngr.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))

  def save_latest(self, step, tree):
    self._save(self.latest, step, tree)

  def save_best(self, step, tree):
    self._save(self.best, step, tree)

  def restore_latest(self, like):
    return self._restore(self.latest, like)

  def restore_best(self, like):
    return self._restore(self.best, like)

  def close(self):
    self.latest.close()
    self.best.close()


@contextlib.contextmanager
def _stop_requests():
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


def _raise_if_stopped(stop: dict, epoch: int, workdir: str) -> None:
  """After a segment's checkpoint: turn a caught SIGTERM / Ctrl-C into InterruptedError_."""
  if stop["stop"]:
    raise InterruptedError_(f"{stop['stop']} received: state saved at epoch {epoch}; rerun with "
                            f"--workdir={workdir} to resume")


# ----------------------------------------------------------------------------------------------------
# The run.


class RunSetup(NamedTuple):
  """Everything a training run needs, built and checked before any compute (shared by the single run and
  the vmapped members)."""
  source: str
  prep: "Prepared"
  mesh: Any
  fns: Any                 # ganjax.train.gan.TrainFns
  data: dict               # {"gen", "cond"} of the SR training set, replicated over the mesh
  hist_fn: Callable        # S-sample generated histogram (unjitted)
  train_set: tuple         # (EvalEvents, real counts) for the metric on training events
  val_set: tuple
  test_set: tuple


def setup_run(config, workdir: str, regions=None) -> RunSetup:
  """Check the config and the input, write/compare workdir/config.json, preprocess, build the functions."""
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      stored = json.load(f)
    if stored != json.loads(config.to_json()):
      raise BadInputError(f"{workdir} holds a run with a different config ({config_path}); "
                          "use a new --workdir or the same config to resume")
  else:
    io.write_json(config_path, json.loads(config.to_json()))

  sr, cr, source = regions if regions is not None else load_regions(config)
  needed = required_columns(config)
  for name, table in (("SR", sr), ("CR", cr)):
    n = len(next(iter(table.values()))) if table else 0
    if n == 0:
      raise BadInputError(f"{source}: the {name} is empty after selection")
    check_table(table, needed, f"{source} ({name})")
  prep = Prepared(config, sr, cr)

  gen_names, cond_names = prep.gen_names, prep.cond_names
  mesh = data_mesh(config.train.devices)
  fns = make_train(config, n_cond=len(cond_names), n_out=len(gen_names), n_train=config.data.n_train,
                   mesh=mesh)
  data = replicate({"gen": prep.gen(prep.train).astype(np.float32),
                    "cond": prep.cond(prep.train, 0).astype(np.float32)}, mesh)

  # Metric machinery: real-event histograms (fixed) and the S-sample generated histogram.
  n_bins, chunk = config.metric.n_bins, config.metric.chunk
  aux_names = evaluate.aux_columns(prep.metric_dims, gen_names, prep.relative)
  hist_fn = evaluate.make_histogram_fn(fns.generator, config.model.latent_dim, gen_names, prep.metric_dims,
                                       prep.gen_qt, prep.metric_qt, n_bins, chunk, prep.relative, mesh)

  def eval_set(table, salt, n_max=0):
    if n_max and n_max < len(table[gen_names[0]]):
      table = {k: v[:n_max] for k, v in table.items()}
    ev = replicate(evaluate.pad_events(prep.cond(table, salt), {a: table[a] for a in aux_names}, chunk,
                                       multiple=8 * mesh.size), mesh)
    m = evaluate.real_histogram(table, gen_names, prep.metric_dims, prep.gen_qt, prep.metric_qt, n_bins)
    return ev, m

  return RunSetup(source, prep, mesh, fns, data, hist_fn,
                  train_set=eval_set(prep.train, 0, config.metric.n_train_events),
                  val_set=eval_set(prep.val, 1), test_set=eval_set(prep.test, 2))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       regions: tuple[dict, dict, str] | None = None,
                       on_segment_end: Callable[[int], None] | None = None) -> dict:
  """Run the main job into `workdir` (resuming if it holds a checkpoint); returns metrics.json's content.

  regions: optional (SR table, CR table, description) to use instead of `config.data.source`.
  on_segment_end: optional callback(epoch) after each segment's checkpoint (progress hooks, tests).
  """
  from ganjax import tblog
  from ganjax.plots import hgg as plots

  t_start = time.time()
  run = setup_run(config, workdir, regions)
  source, prep, mesh, fns, data = run.source, run.prep, run.mesh, run.fns, run.data
  gen_names, cond_names = prep.gen_names, prep.cond_names
  n_cond = len(cond_names)
  S, chunk = config.metric.n_samples, config.metric.chunk
  hist_fn = jax.jit(run.hist_fn, out_shardings=replicated(mesh))
  (train_ev, train_m), (val_ev, val_m), (test_ev, test_m) = run.train_set, run.val_set, run.test_set

  key = jax.random.PRNGKey(config.seed)
  k_init, k_train, k_eval, k_test, k_apply = replicate(tuple(jax.random.split(key, 5)), mesh)
  state = replicate(fns.init(k_init), mesh)
  on_mesh = lambda x: replicate(np.asarray(x), mesh)  # host values -> global arrays (multi-host safe)
  n_evals = -(-config.train.epochs // config.train.eval_every)
  nan = lambda: np.full(n_evals, np.nan)
  history = {"epoch": np.full(n_evals, -1, np.int32), "train_nll": nan(), "val_nll": nan(),
             "loss_d": nan(), "loss_g": nan(),
             **{f"val_nll_S{s}": nan() for s in config.metric.history_samples}}
  best = {"val_nll": np.array(np.inf), "epoch": np.array(-1, np.int32)}
  ckpt = Checkpoints(workdir)
  like = {"state": state, "history": history, "best": best, "transforms": prep.transforms()}
  restored = ckpt.restore_latest(like)
  if restored is not None:
    state, history, best = restored["state"], restored["history"], restored["best"]
    history = {k: np.asarray(v) for k, v in history.items()}
    best = {k: np.asarray(v) for k, v in best.items()}
    print(f"[ganjax] resuming {workdir} at epoch {int(state.epoch)}", flush=True)

  train_segment = jax.jit(fns.train_segment, static_argnums=3, out_shardings=replicated(mesh))
  writer = tblog.SummaryWriter(os.path.join(workdir, "tb"), enabled=io.is_primary())
  sample_ids = on_mesh(np.arange(S))
  bar = Progress(total=config.train.epochs, desc="ganjax", unit="epoch", start=int(state.epoch))
  try:
    with _stop_requests() as stop:
      while int(state.epoch) < config.train.epochs:
        n = min(config.train.eval_every, config.train.epochs - int(state.epoch))
        state, losses = train_segment(state, k_train, data, n)
        losses = np.asarray(losses)
        epoch = int(state.epoch)
        bad = ~np.isfinite(losses).all(-1)
        if bad.any():
          first = epoch - n + int(np.argmax(bad)) + 1
          raise TrainingDivergedError(
              f"loss became NaN/inf at epoch {first} (loss_d, loss_g = {losses[np.argmax(bad)]}); the best "
              f"checkpoint (epoch {int(best['epoch'])}) is kept in {workdir}/checkpoints/best")
        k_e = jax.random.fold_in(k_eval, epoch)
        train_nll = neg2_log_likelihood(train_m, hist_fn(state.params_g, k_e, train_ev, sample_ids))
        val_nll = neg2_log_likelihood(val_m, hist_fn(state.params_g, k_e, val_ev, sample_ids))
        i = (epoch - 1) // config.train.eval_every
        history["epoch"][i] = epoch
        history["train_nll"][i], history["val_nll"][i] = train_nll, val_nll
        for s_extra in config.metric.history_samples if epoch >= config.metric.history_from else ():
          # Fig. 2: the same model at other S (same key); NaN before metric.history_from.
          history[f"val_nll_S{s_extra}"][i] = val_nll if s_extra == S else neg2_log_likelihood(
              val_m, hist_fn(state.params_g, k_e, val_ev, on_mesh(np.arange(s_extra))))
        history["loss_d"][i], history["loss_g"][i] = losses[-1]
        for tag, v in (("nll/train", train_nll), ("nll/val", val_nll), ("loss/d", losses[-1, 0]),
                       ("loss/g", losses[-1, 1])):
          writer.scalar(tag, v, epoch)
        writer.flush()
        if val_nll < best["val_nll"]:
          best = {"val_nll": np.array(val_nll), "epoch": np.array(epoch, np.int32)}
          ckpt.save_best(epoch, {"params_g": state.params_g, "epoch": best["epoch"],
                                 "transforms": prep.transforms()})
        ckpt.save_latest(epoch, {"state": state, "history": history, "best": best,
                                 "transforms": prep.transforms()})
        bar.update(n, loss_d=float(losses[-1, 0]), loss_g=float(losses[-1, 1]), train_nll=round(train_nll, 1),
                   val_nll=round(val_nll, 1), best=f"{float(best['val_nll']):.1f}@{int(best['epoch'])}")
        if on_segment_end is not None:
          on_segment_end(epoch)
        _raise_if_stopped(stop, epoch, workdir)
  finally:
    bar.close()
    writer.close()
  t_train = time.time() - t_start

  # Best generator -> test metric for several S, and the GANed CR.
  best_tree = ckpt.restore_best({"params_g": state.params_g, "epoch": best["epoch"],
                                 "transforms": prep.transforms()})
  ckpt.close()
  params_g = best_tree["params_g"]
  test_nll = {str(s): neg2_log_likelihood(test_m, hist_fn(params_g, k_test, test_ev, on_mesh(np.arange(s))))
              for s in config.metric.test_samples}

  generate = jax.jit(make_generate_fn(fns.generator, config.model.latent_dim, chunk, mesh),
                     out_shardings=replicated(mesh))
  cr_cond = prep.cond(prep.cr, 3)
  ganed = ganed_cr(config, prep, np.asarray(generate(params_g, k_apply, on_mesh(cr_cond))))

  if config.dctr.enabled:
    metrics_dctr = apply_dctr(config, prep, params_g, generate, ganed, k_apply, on_mesh)
  s2 = s2_table(config, prep, ganed)
  pass_sr = ganed["gan_pass_sr"].mean()

  ok = history["epoch"] >= 0
  g_info = generator_flops_per_object(config.model.latent_dim + n_cond, fns.generator)
  n_params = lambda p: int(sum(x.size for x in jax.tree.leaves(p)))
  metrics = {
      "source": source, "strategy": config.strategy, "cond_features": list(cond_names),
      "gen_features": list(gen_names), "generated_relative_to": prep.relative, "n_sr_train": config.data.n_train, "n_sr_val": config.data.n_val,
      "n_sr_test": config.data.n_test, "n_cr": int(len(prep.cr[gen_names[0]])),
      "history": {k: [x if np.isfinite(x) else None for x in v[ok].tolist()] for k, v in history.items()},
      "best_epoch": int(best["epoch"]), "best_val_nll": float(best["val_nll"]),
      "test_nll": test_nll, "metric_dims": list(prep.metric_dims),
      "metric_n_bins_total": config.metric.n_bins ** len(prep.metric_dims),
      "s2": s2, "s2_fake_pt_ratio": s2["fake_pt"]["ganed_cr_vs_mc_sr"] / s2["fake_pt"]["mc_cr_vs_mc_sr"],
      "ganed_cr_pass_sr_fraction": float(pass_sr),
      "generator": {"params": n_params(params_g), **g_info},
      "discriminator": {"params": n_params(state.params_d)},
      "seconds": {"train_and_eval": t_train, "total": time.time() - t_start},
      "devices": [str(d) for d in jax.devices()],
  }
  meta = {"ganjax_config": config.to_json(), "ganjax_version": __import__("ganjax").__version__}
  if config.output.format == "root":
    io.write_root(os.path.join(workdir, "ganed_cr.root"), ganed, meta)
    io.write_root(os.path.join(workdir, "mc_sr_test.root"), prep.test, meta)
  else:
    io.write_parquet(os.path.join(workdir, "ganed_cr.parquet"), ganed, meta)
    io.write_parquet(os.path.join(workdir, "mc_sr_test.parquet"), prep.test, meta)
  if config.dctr.enabled:
    metrics["dctr"] = metrics_dctr
  if config.output.validation:
    # Physics validation (issue 3 / paper Sec. 3.2): the 15 observables of the slides, GANed CR vs MC SR.
    from ganjax import validation
    ganed_view = {c: ganed.get("gan_" + c, ganed[c]) for c in validation.HGG_OBSERVABLES}
    n_small = min(len(prep.test["fake_pt"]), len(prep.cr["fake_pt"]))
    report = validation.validate(prep.test, prep.cr, ganed_view, validation.HGG_OBSERVABLES,
                                 n_batches=max(2, min(20, n_small // 20)), seed=config.seed)
    metrics["validation"] = {"summary": report["summary"], "onedim": report["onedim"],
                             "pairs_above_3": report["chi"]["ganed_vs_sr"]["pairs_above_threshold"]}
    if config.output.ideal_reference and config.data.source == "simulate":
      metrics["validation"]["ideal_reference"] = ideal_reference(config, prep, ganed_view)
    vdir = os.path.join(workdir, "validation")
    if config.output.plots:
      validation.write_report(report, vdir)
    else:
      io.write_json(os.path.join(vdir, "validation.json"), report)
  io.write_json(os.path.join(workdir, "metrics.json"), metrics)
  if config.output.plots:
    plots.metric_history(history["epoch"][ok], history["train_nll"][ok], history["val_nll"][ok],
                         int(best["epoch"]), os.path.join(workdir, "plots", "metric_history.png"))
  print(f"[ganjax] done in {time.time() - t_start:.0f} s: best epoch {metrics['best_epoch']}, "
        f"test -2lnL {test_nll}, S^2(fake pT) GANed CR vs MC SR {s2['fake_pt']['ganed_cr_vs_mc_sr']:.4f} "
        f"vs MC CR vs MC SR {s2['fake_pt']['mc_cr_vs_mc_sr']:.4f}; outputs in {workdir}", flush=True)
  return metrics


def ganed_cr(config, prep: Prepared, gen_u_NxO: np.ndarray) -> dict:
  """The GANed CR table from generated objects in the model's [-1, 1] coordinates."""
  gen_names = prep.gen_names
  gen_phys = evaluate.to_physical(np.asarray(prep.gen_qt.inverse(gen_u_NxO.astype(np.float64))), prep.cr,
                                  gen_names, prep.relative)
  return ganed_table(prep.cr, np.stack([gen_phys[n] for n in gen_names], -1), gen_names,
                     region_params(config), config.data.preselection)


def s2_table(config, prep: Prepared, ganed: dict) -> dict:
  """Separation power S^2 (DCTR paper Eq. 15) of the generated and diphoton columns against the MC SR test
  set: GANed CR next to MC CR."""
  s2 = {}
  for col in list(prep.gen_names) + list(gjets.DIPHOTON_COLUMNS):
    edges = histogram_edges(prep.test[col], config.output.s2_bins, (0.0, 0.995))
    s2[col] = {"ganed_cr_vs_mc_sr": separation_power(ganed["gan_" + col], prep.test[col], edges),
               "mc_cr_vs_mc_sr": separation_power(prep.cr[col], prep.test[col], edges)}
  return s2


MEMBER_KEYS = ("seed", "train.label_noise", "train.learning_rate", "train.beta1")


def members_map(member_axis: str = "auto") -> Callable:
  """How one XLA program runs the members: `vmap` (side by side: the fast choice on GPU/TPU) or `map`
  (lax.map, one after the other inside the same program: the fast choice on CPU, where vmapping the
  members' different convolution weights becomes grouped convolutions that XLA:CPU runs 2-3x slower than
  the members one by one: benchmarks/hgg_members.py). auto = map on CPU, vmap elsewhere."""
  if member_axis == "auto":
    member_axis = "map" if jax.default_backend() == "cpu" else "vmap"
  if member_axis == "vmap":
    return lambda f, xs: jax.vmap(f)(xs)
  if member_axis == "map":
    return jax.lax.map
  raise BadInputError(f"member_axis must be auto, vmap or map, got {member_axis!r}")


def train_members(config: ml_collections.ConfigDict, workdir: str, members: Sequence[dict],
                  regions: tuple[dict, dict, str] | None = None, member_axis: str = "auto") -> dict:
  """Trainings that differ only in seed, label noise, learning rate or beta1, run as ONE vmapped program
  (issue 3, Part 5): jit(vmap(train_segment)) over the stacked states (or lax.map on CPU, see members_map), the S-sample metric vmapped over the
  members' generators, each member's best generator kept by its own validation -2lnL. Resumable like a
  single run (the stacked state is checkpointed at every segment end). Returns (and writes to
  workdir/members.json) each member's history, best epoch/-2lnL, test -2lnL and S^2(fake pT) ratio.
  members: e.g. [{"train.label_noise": 0.0}, {"train.label_noise": 0.15}]; unset keys take the config's value.
  member_axis: vmap | map | auto (see members_map).
  """
  t_start = time.time()
  for m in members:
    unknown = set(m) - set(MEMBER_KEYS)
    if unknown:
      raise BadInputError(f"members may differ only in {MEMBER_KEYS} (same shapes); got {sorted(unknown)} - "
                          "run those variants one after the other (experiments/hgg_studies.py)")
    eps = m.get("train.label_noise", config.train.label_noise)
    if not 0.0 <= eps < 0.5:
      raise BadInputError(f"train.label_noise must be in [0, 0.5), got {eps}")
  if config.train.optimizer == "sgd" and any("train.beta1" in m for m in members):
    raise BadInputError("train.beta1 is not a hyperparameter of sgd")
  if not members:
    raise BadInputError("train_members needs at least one member")
  n_members = len(members)
  run = setup_run(config, workdir, regions)
  prep, fns, data = run.prep, run.fns, run.data
  (train_ev, train_m), (val_ev, val_m), (test_ev, test_m) = run.train_set, run.val_set, run.test_set
  def get(key: str) -> np.ndarray:
    """Each member's value of a dotted config key (its override, else the config's)."""
    default = config
    for part in key.split("."):
      default = default[part]
    return np.array([m.get(key, default) for m in members])

  seeds = get("seed").astype(np.uint32)
  keys_Mx5 = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 5))(jnp.asarray(seeds))
  k_init, k_train, k_eval, k_test, k_apply = (keys_Mx5[:, i] for i in range(5))
  hp = {"learning_rate": get("train.learning_rate"), "label_noise": get("train.label_noise")}
  if config.train.optimizer != "sgd":
    hp["beta1"] = get("train.beta1")
  state = jax.jit(jax.vmap(lambda k, h: set_hyperparams(fns.init(k), **h)))(k_init, hp)
  state = replicate(state, run.mesh)

  n_evals = -(-config.train.epochs // config.train.eval_every)
  history = {"epoch": np.full(n_evals, -1, np.int32), "train_nll": np.full((n_evals, n_members), np.nan),
             "val_nll": np.full((n_evals, n_members), np.nan), "loss_d": np.full((n_evals, n_members), np.nan),
             "loss_g": np.full((n_evals, n_members), np.nan)}
  best = {"val_nll": np.full(n_members, np.inf), "epoch": np.full(n_members, -1, np.int32),
          "diverged_at": np.full(n_members, -1, np.int32), "params_g": state.params_g}
  ckpt = Checkpoints(workdir)
  restored = ckpt.restore_latest({"state": state, "history": history, "best": best})
  if restored is not None:
    state = restored["state"]
    history = {k: np.asarray(v) for k, v in restored["history"].items()}
    best = {k: (v if k == "params_g" else np.asarray(v)) for k, v in restored["best"].items()}
    print(f"[ganjax] resuming {workdir} at epoch {int(state.epoch[0])}", flush=True)

  over_members = members_map(member_axis)
  segment = jax.jit(lambda st, k, d, n: over_members(lambda sk: fns.train_segment(sk[0], sk[1], d, n), (st, k)),
                    static_argnums=3)
  hist_M = jax.jit(lambda p, k, ev, ids: over_members(lambda pk: run.hist_fn(pk[0], pk[1], ev, ids), (p, k)))
  sample_ids = jnp.arange(config.metric.n_samples)
  nll_M = lambda real, counts_MxB: np.array([neg2_log_likelihood(real, c) for c in np.asarray(counts_MxB)])
  bar = Progress(total=config.train.epochs, desc=f"ganjax x{n_members}", unit="epoch", start=int(state.epoch[0]))
  try:
    with _stop_requests() as stop:
      while int(state.epoch[0]) < config.train.epochs:
        n = min(config.train.eval_every, config.train.epochs - int(state.epoch[0]))
        state, losses_MxNx2 = segment(state, k_train, data, n)
        losses_MxNx2 = np.asarray(losses_MxNx2)
        epoch = int(state.epoch[0])
        k_e = jax.vmap(jax.random.fold_in, in_axes=(0, None))(k_eval, epoch)
        train_nll = nll_M(train_m, hist_M(state.params_g, k_e, train_ev, sample_ids))
        val_nll = nll_M(val_m, hist_M(state.params_g, k_e, val_ev, sample_ids))
        # A diverged member is recorded and ignored from then on; the others go on (NaN-safe selection).
        bad = ~np.isfinite(losses_MxNx2).all((-1, -2)) | ~np.isfinite(val_nll)
        new_bad = bad & (best["diverged_at"] < 0)
        best["diverged_at"][new_bad] = epoch
        val_nll = np.where(best["diverged_at"] >= 0, np.nan, val_nll)
        i = (epoch - 1) // config.train.eval_every
        history["epoch"][i] = epoch
        history["train_nll"][i], history["val_nll"][i] = train_nll, val_nll
        history["loss_d"][i], history["loss_g"][i] = losses_MxNx2[:, -1, 0], losses_MxNx2[:, -1, 1]
        improved = np.where(np.isfinite(val_nll), val_nll, np.inf) < best["val_nll"]
        best["val_nll"] = np.where(improved, val_nll, best["val_nll"])
        best["epoch"] = np.where(improved, epoch, best["epoch"]).astype(np.int32)
        take = jnp.asarray(improved)
        best["params_g"] = jax.tree.map(
            lambda b, p: jnp.where(take.reshape((-1,) + (1,) * (p.ndim - 1)), p, b), best["params_g"],
            state.params_g)
        ckpt.save_latest(epoch, {"state": state, "history": history, "best": best})
        bar.update(n, best_val_nll=" ".join(f"{v:.0f}" for v in best["val_nll"]))
        _raise_if_stopped(stop, epoch, workdir)
  finally:
    bar.close()
    ckpt.close()

  params_g = best["params_g"]
  test_nll = {str(s): nll_M(test_m, hist_M(params_g, k_test, test_ev, jnp.arange(s)))
              for s in config.metric.test_samples}
  gen_one = make_generate_fn(fns.generator, config.model.latent_dim, config.metric.chunk, run.mesh)
  generate = jax.jit(lambda p, k, c: over_members(lambda pk: gen_one(pk[0], pk[1], c), (p, k)))
  gen_u_MxNxO = np.asarray(generate(params_g, k_apply, jnp.asarray(prep.cond(prep.cr, 3))))
  out = {"members": [], "n_members": n_members, "seconds": time.time() - t_start,
         "devices": [str(d) for d in jax.devices()]}
  ok = history["epoch"] >= 0
  for j, m in enumerate(members):
    s2 = s2_table(config, prep, ganed_cr(config, prep, gen_u_MxNxO[j]))["fake_pt"]
    out["members"].append({
        "overrides": dict(m), "seed": int(seeds[j]), "label_noise": float(hp["label_noise"][j]),
        "learning_rate": float(hp["learning_rate"][j]),
        "history": {"epoch": history["epoch"][ok].tolist(),
                    **{k: history[k][ok, j].tolist() for k in ("train_nll", "val_nll", "loss_d", "loss_g")}},
        "best_epoch": int(best["epoch"][j]), "best_val_nll": float(best["val_nll"][j]),
        "diverged_at_epoch": int(best["diverged_at"][j]) if best["diverged_at"][j] >= 0 else None,
        "test_nll": {s: float(v[j]) for s, v in test_nll.items()},
        "s2_fake_pt_ratio": s2["ganed_cr_vs_mc_sr"] / s2["mc_cr_vs_mc_sr"]})
  io.write_json(os.path.join(workdir, "members.json"), out)
  return out


def apply_dctr(config, prep: Prepared, params_g, generate, ganed: dict, key, on_mesh=jnp.asarray) -> dict:
  """DCTR for the conditional generator: a classifier of MC SR training events (object + conditions) vs the
  generator applied to the same events' conditions gives w = h/(1-h) ~ p_SR(obj|cond) / p_GAN(obj|cond);
  the weights are applied to the GANed CR (column `dctr_weight`, in place) and the 15 observables are
  compared with the MC SR test set before and after (S^2, dilution r; dctrgan paper Eq. 15, Sec. II B)."""
  from ganjax import validation
  from ganjax.dctr import reweight
  from ganjax.metrics.dilution import observable_report

  gen_names, cond_names = prep.gen_names, prep.cond_names
  g_u = np.asarray(generate(params_g, jax.random.fold_in(key, 1), on_mesh(prep.cond(prep.train, 0))))
  g_phys = evaluate.to_physical(np.asarray(prep.gen_qt.inverse(g_u.astype(np.float64))), prep.train, gen_names,
                                prep.relative)
  generated = {**{c: prep.train[c] for c in cond_names}, **g_phys}
  cfg = reweight.default_config()
  cfg.columns = list(gen_names) + list(cond_names)
  cfg.model.hidden = config.dctr.hidden
  cfg.train.epochs = config.dctr.n_epochs
  cfg.train.batch_size = config.dctr.batch_size
  cfg.train.optimizer.learning_rate = config.dctr.learning_rate
  cfg.clip, cfg.calibrate = config.dctr.clip, config.dctr.calibrate
  cfg.seed = config.seed
  apply_to = {**{c: ganed[c] for c in cond_names}, **{c: ganed["gan_" + c] for c in gen_names}}
  w, report = reweight.reweight(prep.train, generated, cfg, apply_to=apply_to)
  ganed["dctr_weight"] = w.astype(np.float32)
  ganed_view = {c: ganed.get("gan_" + c, ganed[c]) for c in validation.HGG_OBSERVABLES}
  obs = observable_report({c: prep.test[c] for c in validation.HGG_OBSERVABLES}, ganed_view, w,
                          validation.HGG_OBSERVABLES, n_bins=config.output.s2_bins)
  return {"classifier": {k: v for k, v in report.items() if k != "history"}, **obs}


def make_generate_fn(generator, latent_dim: int, chunk: int, mesh=None):
  """generate(params_g, key, cond_NxC) -> object_NxO: one object per event, in fixed-size chunks (each
  split over the devices of `mesh`)."""

  def generate(params_g, key, cond_NxC):
    n = cond_NxC.shape[0]
    n_chunks, size = evaluate.chunk_layout(n, chunk, 8 * (mesh.size if mesh is not None else 1))
    cond = jnp.pad(cond_NxC, ((0, n_chunks * size - n), (0, 0))).reshape(n_chunks, size, -1)

    def one(c):
      z = shard_batch(jax.random.normal(jax.random.fold_in(key, c), (size, latent_dim)), mesh)
      return generator.apply(params_g, z, shard_batch(cond[c], mesh))

    return jax.lax.map(one, jnp.arange(n_chunks)).reshape(n_chunks * size, -1)[:n]

  return generate


def ideal_reference(config, prep: Prepared, ganed_view: dict | None = None) -> dict:
  """Simulator only: the physics validation for an ideal generator, which gives each CR event a fake from
  the simulator's exact SR conditional (`gjets.sample_sr_fakes`).

  - `ideal_vs_mc_sr`: ideal CR vs MC SR test, the floor of the paper's comparison. A perfect GAN reaches
    exactly this; it is above the null wherever the CR events themselves (their jets, photon, pileup)
    differ from the SR's, which no generator can change.
  - `ganed_vs_ideal`: GANed CR vs ideal CR on disjoint random halves of the accepted CR events (independent
    samples of one target, so chi ~ 0.8 and S^2 ~ its noise for a perfect GAN): the generator's own error.
  At most `output.ideal_max_events` CR events are used (with a 50k SR test set, 250k CR events leave
  sigma dominated by the SR side). Each holds the validation summary (chi, S^2 ratio of fake pT, named
  pairs) and the S^2 per observable; without `ganed_view` only the first (experiments/hgg_ideal.py: the
  floor at any scale, no training).
  """
  from ganjax import validation
  names = validation.HGG_OBSERVABLES
  fakes, accepted = gjets.sample_sr_fakes(prep.cr, seed=config.seed + 1, params=region_params(config))
  ideal = {c: fakes.get(c, prep.cr[c]) for c in names}
  take = lambda table, idx: {c: np.asarray(table[c])[idx] for c in names}
  idx = np.random.default_rng(config.seed).permutation(np.flatnonzero(accepted))
  if config.output.ideal_max_events:  # a random subset bounds the cost at paper size (2M CR events)
    idx = idx[:config.output.ideal_max_events]
  half_a, half_b = idx[: len(idx) // 2], idx[len(idx) // 2:]
  out = {"accepted_fraction": float(accepted.mean())}
  comparisons = {"ideal_vs_mc_sr": (prep.test, take(prep.cr, idx), take(ideal, idx))}
  if ganed_view is not None:
    comparisons["ganed_vs_ideal"] = (take(ideal, half_b), take(prep.cr, half_a), take(ganed_view, half_a))
  for key, (ref, cr, gen) in comparisons.items():
    n_small = min(len(ref["fake_pt"]), len(gen["fake_pt"]))
    res = validation.validate(ref, cr, gen, names, n_batches=max(2, min(20, n_small // 20)), seed=config.seed)
    out[key] = {"summary": res["summary"], "s2": {r["observable"]: r["s2"] for r in res["onedim"]},
                "pairs_above_3": res["chi"]["ganed_vs_sr"]["pairs_above_threshold"]}
  return out


def ganed_table(cr: dict, gen_phys_NxO: np.ndarray, gen_names: Sequence[str],
                params: gjets.GJetsParams = gjets.GJetsParams(), preselection: bool = True) -> dict:
  """Every CR column, plus gan_<feature> for the generated object, gan_<diphoton> recomputed, and
  gan_pass_sr: whether the GANed event passes the SR selection (preselection and fake ID)."""
  out = dict(cr)
  g = {n: gen_phys_NxO[:, i].astype(np.float32) for i, n in enumerate(gen_names)}
  if "fake_phi" in g:
    g["fake_phi"] = gjets.wrap_phi(g["fake_phi"]).astype(np.float32)
  for n, v in g.items():
    out["gan_" + n] = v
  full = {**cr, **g}
  dip = gjets.diphoton(full["pho_pt"], full["pho_eta"], full["pho_phi"], full["fake_pt"], full["fake_eta"],
                       full["fake_phi"])
  for n, v in dip.items():
    out["gan_" + n] = v.astype(np.float32)
  full.update(dip)
  passed = full["fake_id"] > params.sr_id_min
  if preselection:
    passed &= gjets.preselection(full, params)
  out["gan_pass_sr"] = passed
  return out
