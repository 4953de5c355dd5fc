"""DCTR reweighting of generated events (DCTR paper Sec. II C).

A classifier h (ganjax.models.classifier.MLPClassifier) is trained with binary cross entropy to separate truth
(label 1) from generated (label 0) events; the weight w(x) = h/(1-h) = exp(logit) then approaches the
likelihood ratio p_T/p_G of Eq. 3, so weighted generated events reproduce the truth (Eq. 4).

Usage (inputs are plain dicts of 1D numpy columns; the classifier sees `config.columns`):

  cfg = reweight.default_config(); cfg.columns = ["pt", "eta", "n_jets"]
  w_N, report = reweight.reweight(truth, generated, cfg)            # weights for `generated`
  w_M, report = reweight.reweight(truth, generated, cfg, apply_to=other)

Steps: per-class random train/held-out split; inputs standardised with train statistics; balanced batches
(half truth, half generated, the smaller class tiled as in the paper, Sec. III B) from per-epoch in-graph
permutations; the classifier is a TrainSpec of the engine (one supervised update) run by the engine's
driver in segments of one epoch, evaluating the held-out loss after each and keeping the parameters with
the lowest one; optional temperature scaling (Guo et al., paper ref. [83]) fitted on the held-out split;
weights evaluated in batches, optionally clipped (the paper clips at 5) and normalised to sum to the number
of weighted events (Eq. 10).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganjax import engine
from ganjax.engine import driver, losses
from ganjax.engine.errors import BadInputError
from ganjax.engine.optim import check as check_optimizer
from ganjax.metrics.dilution import as_weights, effective_sample_size
from ganjax.models.classifier import MLPClassifier

Table = Mapping[str, np.ndarray]


def default_config() -> ml_collections.ConfigDict:
  """Reweighter settings; `columns` must be set by the caller."""
  c = ml_collections.ConfigDict()
  c.columns = []             # classifier inputs, read from the truth / generated dicts
  c.seed = 0                 # RNG seed when fit() gets no key
  c.val_fraction = 0.2       # held-out fraction of each class (model selection and calibration)
  c.keep_best = True         # keep the parameters of the epoch with the lowest held-out loss
  c.calibrate = True         # temperature scaling on the held-out split
  c.clip = 5.0               # upper limit on the raw weights; <= 0 disables (paper: 5)
  c.normalize = True         # rescale weights to sum to the number of weighted events (Eq. 10)
  c.eval_batch_size = 16384  # events per batch when evaluating weights
  c.model = ml_collections.ConfigDict()
  c.model.hidden = (64, 128, 256)  # paper's 2D toy reweighter (Sec. III A)
  c.model.activation = "relu"
  c.train = ml_collections.ConfigDict()
  c.train.epochs = 100       # epochs over the larger class's training split (paper: 100)
  c.train.batch_size = 256   # per step: batch_size // 2 truth + batch_size // 2 generated events
  c.train.optimizer = ml_collections.ConfigDict()
  c.train.optimizer.name = "adam"       # adam | adamw (decoupled weight decay, Loshchilov & Hutter 2019)
  c.train.optimizer.learning_rate = 1e-3
  c.train.optimizer.b1 = 0.9
  c.train.optimizer.b2 = 0.999
  c.train.optimizer.weight_decay = 0.0  # adamw only
  c.train.optimizer.schedule = "constant"  # constant | cosine (to 0 over all epochs: a settled, less noisy h)
  c.train.optimizer.decay_length = 0    # cosine: decay length in epochs (0 = all)
  return c


# ----------------------------------------------------------------------------- input checks


def _stack_columns(table: Table, columns: list[str], name: str) -> np.ndarray:
  """x_NxD (float32) from the listed columns; BadInputError (a ValueError) naming table/column/count."""
  if not isinstance(table, Mapping):
    raise BadInputError(f"{name}: expected a dict of columns, got {type(table).__name__}")
  missing = [c for c in columns if c not in table]
  if missing:
    raise BadInputError(f"{name}: missing columns {missing}; available: {sorted(table)}")
  cols, n = [], None
  for c in columns:
    v = np.asarray(table[c])
    if v.ndim != 1:
      raise BadInputError(f"{name}: column {c!r} must be 1D, got shape {v.shape}")
    if n is None:
      n = v.shape[0]
    elif v.shape[0] != n:
      raise BadInputError(f"{name}: column {c!r} has {v.shape[0]} rows, {columns[0]!r} has {n}")
    if not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
      raise BadInputError(f"{name}: column {c!r} is not numeric (dtype {v.dtype})")
    v = v.astype(np.float64)
    bad = int(np.sum(~np.isfinite(v)))
    if bad:
      raise BadInputError(f"{name}: column {c!r} has {bad} of {n} rows that are NaN or infinite")
    cols.append(v)
  if n == 0:
    raise BadInputError(f"{name}: no rows")
  return np.stack(cols, axis=1).astype(np.float32)


def check_config(config: ml_collections.ConfigDict) -> list[str]:
  """Problems of a reweighter config, one line each (empty when usable; columns are checked by fit)."""
  t = config.train
  problems = [f"reweight config: {p}" for p in check_optimizer(t.optimizer)]
  if t.optimizer.name not in ("adam", "adamw"):
    problems.append(f"reweight config: train.optimizer.name={t.optimizer.name!r}; use adam or adamw")
  if t.optimizer.schedule not in ("constant", "cosine"):
    problems.append(f"reweight config: train.optimizer.schedule={t.optimizer.schedule!r}; use constant or cosine")
  if t.optimizer.name == "adam" and t.optimizer.weight_decay > 0:
    problems.append("reweight config: train.optimizer.weight_decay > 0 needs train.optimizer.name='adamw'")
  if not 0.0 < config.val_fraction < 1.0:
    problems.append(f"reweight config: val_fraction must be in (0, 1), got {config.val_fraction}")
  if t.batch_size < 2 or t.epochs < 1:
    problems.append(f"reweight config: need train.batch_size >= 2 and train.epochs >= 1, got {t.batch_size}, "
                    f"{t.epochs}")
  return problems


def _check_config(config: ml_collections.ConfigDict) -> list[str]:
  columns = list(config.columns)
  if not columns:
    raise BadInputError("reweight config: `columns` is empty; list the classifier's input columns")
  if len(set(columns)) != len(columns):
    raise BadInputError(f"reweight config: duplicate entries in columns {columns}")
  problems = check_config(config)
  if problems:
    raise BadInputError("; ".join(problems))
  return columns


def _check_event_weights(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
  """Checked event weights normalised to mean 1 (float32)."""
  w = as_weights(w, n, name, what="event weights")
  return (w / w.mean()).astype(np.float32)


# ----------------------------------------------------------------------------- classifier training


def balanced_loss(logit_t: jax.Array, wt: jax.Array, logit_g: jax.Array, wg: jax.Array) -> jax.Array:
  """The weighted BCE (ganjax.engine.losses.bce) with truth and generated each carrying half the total
  weight (equal class priors)."""
  lt = jnp.sum(wt * losses.bce(logit_t, 1.0)) / jnp.sum(wt)
  lg = jnp.sum(wg * losses.bce(logit_g, 0.0)) / jnp.sum(wg)
  return 0.5 * (lt + lg)


def make_model(config: ml_collections.ConfigDict) -> MLPClassifier:
  return MLPClassifier(tuple(int(h) for h in config.model.hidden), config.model.activation)


def steps_per_epoch(config: ml_collections.ConfigDict, n_truth: int, n_gen: int) -> int:
  """Steps of one epoch: the larger class's training split in half-batches."""
  return max(1, math.ceil(max(n_truth, n_gen) / max(1, int(config.train.batch_size) // 2)))


def make_spec(config: ml_collections.ConfigDict, n_truth: int, n_gen: int, dim: int) -> engine.TrainSpec:
  """The classifier h as a TrainSpec: one supervised update of the balanced BCE per step.

  init takes (init key, run key) stacked; data = {xt, wt, xg, wg} (standardised training splits of sizes
  n_truth and n_gen). Epoch e permutes each class with fold_in(fold_in(run key, e), 0 | 1); step s takes
  the positions s * half + [0, half) of both permutations, wrapping around the smaller class (tiling)."""
  model = make_model(config)
  half = max(1, int(config.train.batch_size) // 2)
  spe = steps_per_epoch(config, n_truth, n_gen)
  tx = engine.make_optimizer(config.train.optimizer, total_steps=spe * int(config.train.epochs),
                             steps_per_unit=spe)

  def init(keys_2x2):
    return engine.Init(params={"h": model.init(keys_2x2[0], jnp.zeros((1, dim)))}, key=keys_2x2[1])

  def plan(key, epoch):
    k = jax.random.fold_in(key, epoch)
    perm_t = jax.random.permutation(jax.random.fold_in(k, 0), n_truth)
    perm_g = jax.random.permutation(jax.random.fold_in(k, 1), n_gen)
    pos_SxH = jnp.arange(spe)[:, None] * half + jnp.arange(half)[None, :]
    return perm_t[pos_SxH % n_truth], perm_g[pos_SxH % n_gen], jnp.broadcast_to(k, (spe,) + k.shape)

  def batch(data, plan_s):
    it, ig, k = plan_s
    return {"xt": data["xt"][it], "wt": data["wt"][it], "xg": data["xg"][ig], "wg": data["wg"][ig]}, k

  def loss(params, b, _ctx):
    h = params["h"]
    return balanced_loss(model.apply(h, b["xt"]), b["wt"], model.apply(h, b["xg"]), b["wg"]), {}

  return engine.TrainSpec(init=init, optimizers={"h": tx}, updates=(engine.Update("h", "h", loss),),
                          sampler=engine.Sampler(spe, plan, batch))


# ----------------------------------------------------------------------------- calibration


@functools.partial(jax.jit, static_argnames=("n_iter", "log_range"))
def fit_inverse_temperature(logit_t: jax.Array, wt: jax.Array, logit_g: jax.Array, wg: jax.Array,
                            n_iter: int = 60, log_range: float = 7.0) -> jax.Array:
  """beta = 1/T minimising the balanced held-out BCE of sigmoid(beta * logit) (temperature scaling).

  The loss is convex in beta, so its derivative is monotone: bisection on log(beta) in
  [-log_range, log_range] finds the minimum (or the boundary) robustly.
  """
  st, sg = jnp.sum(wt), jnp.sum(wg)

  def dloss(beta):  # d/dbeta of balanced_loss(beta * logit)
    dt = jnp.sum(wt * -logit_t * jax.nn.sigmoid(-beta * logit_t)) / st
    dg = jnp.sum(wg * logit_g * jax.nn.sigmoid(beta * logit_g)) / sg
    return 0.5 * (dt + dg)

  def body(_, lohi):
    lo, hi = lohi
    mid = 0.5 * (lo + hi)
    pos = dloss(jnp.exp(mid)) > 0
    return jnp.where(pos, lo, mid), jnp.where(pos, mid, hi)

  lo, hi = jax.lax.fori_loop(0, n_iter, body, (jnp.float32(-log_range), jnp.float32(log_range)))
  return jnp.exp(0.5 * (lo + hi))


# ----------------------------------------------------------------------------- weights


@functools.lru_cache(maxsize=16)
def make_log_weight_fn(model: MLPClassifier, eval_batch_size: int) -> Callable:
  """jit(fn(reweighter, x_NxD) -> log w_N), evaluated in batches with lax.map (x padded to full batches).

  log w = beta * logit, i.e. w = h_T/(1 - h_T) with h_T = sigmoid(logit / T) (DCTR, Sec. II C).
  """

  @jax.jit
  def log_weights(rw: dict[str, Any], x_NxD: jax.Array) -> jax.Array:
    n = x_NxD.shape[0]
    b = min(int(eval_batch_size), n)
    n_batches = -(-n // b)
    xs = (x_NxD - rw["mean"]) / rw["std"]
    xs = jnp.pad(xs, ((0, n_batches * b - n), (0, 0))).reshape(n_batches, b, -1)
    logits = jax.lax.map(lambda xb: model.apply(rw["params"], xb), xs).reshape(-1)[:n]
    return rw["inv_temperature"] * logits

  return log_weights


def finalize_weights(log_w: np.ndarray, clip: float = 0.0, normalize: bool = True
                     ) -> tuple[np.ndarray, dict]:
  """Raw log-weights -> weights: exp, clip at `clip` (if > 0), then scale to sum to N (Eq. 10)."""
  w = np.exp(np.asarray(log_w, np.float64))
  n_clipped = 0
  if clip and clip > 0:
    n_clipped = int(np.sum(w > clip))
    w = np.minimum(w, clip)
  scale = w.size / w.sum() if normalize else 1.0
  w = w * scale
  info = {"clip": float(clip) if clip and clip > 0 else None, "n_clipped": n_clipped,
          "fraction_clipped": n_clipped / w.size, "normalisation": float(scale)}
  return w, info


def weight_summary(w: np.ndarray) -> dict:
  """Distribution of the final weights and the effective sample size (sum w)^2 / sum w^2."""
  q = np.quantile(w, [0.001, 0.01, 0.16, 0.5, 0.84, 0.99, 0.999])
  n_eff = effective_sample_size(w)
  return {"n": int(w.size), "mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()),
          "max": float(w.max()), "quantiles": dict(zip(["0.001", "0.01", "0.16", "0.5", "0.84", "0.99",
                                                       "0.999"], map(float, q))),
          "n_eff": n_eff, "n_eff_fraction": n_eff / w.size}


def _auc(score_t: np.ndarray, score_g: np.ndarray) -> float:
  """ROC AUC of truth vs generated from average ranks (Mann-Whitney U); 0.5 = indistinguishable."""
  a = np.concatenate([score_t, score_g]).astype(np.float64)
  order = np.argsort(a, kind="mergesort")
  a_sorted = a[order]
  first = np.r_[True, a_sorted[1:] != a_sorted[:-1]]
  group = np.cumsum(first) - 1                                     # tie group of each sorted entry
  bounds = np.r_[np.nonzero(first)[0], a.size]                     # group g spans sorted [b_g, b_{g+1})
  avg_rank = 0.5 * (bounds[:-1] + 1 + bounds[1:])                  # average 1-based rank per group
  ranks = np.empty(a.size)
  ranks[order] = avg_rank[group]
  nt, ng = score_t.size, score_g.size
  return float((ranks[:nt].sum() - nt * (nt + 1) / 2) / (nt * ng))


@functools.partial(jax.jit, static_argnums=0)
def _logits(model: MLPClassifier, params, val: dict) -> tuple[jax.Array, jax.Array]:
  return model.apply(params, val["xt"]), model.apply(params, val["xg"])


@jax.jit
def _raw_and_calibrated_loss(logit_t, wt, logit_g, wg, beta):
  """Held-out balanced BCE of sigmoid(logit) and of sigmoid(beta * logit)."""
  return balanced_loss(logit_t, wt, logit_g, wg), balanced_loss(beta * logit_t, wt, beta * logit_g, wg)


def _raw_key(key: jax.Array) -> jax.Array:
  """uint32 key data (checkpointable) of a typed or raw PRNG key; the same random bits either way."""
  return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def fit(truth: Table, generated: Table, config: ml_collections.ConfigDict,
        truth_weights: np.ndarray | None = None, generated_weights: np.ndarray | None = None,
        key: jax.Array | None = None, workdir: str | None = None,
        on_segment_end: Callable[[int], None] | None = None) -> tuple[dict[str, Any], Callable, dict]:
  """Train the DCTR classifier. Returns (reweighter pytree, log_weight_fn, report).

  reweighter = {params, mean, std, inv_temperature}; log_weight_fn(reweighter, x_NxD) -> log w_N.
  truth_weights / generated_weights: optional per-event input weights (e.g. MC event weights, footnote 1).
  workdir: None (nothing written) or a folder for the driver's checkpoints and TensorBoard logs, from
  which an interrupted fit resumes (one fit per folder: rerun it with the same inputs and config).
  """
  columns = _check_config(config)
  xt = _stack_columns(truth, columns, "truth")
  xg = _stack_columns(generated, columns, "generated")
  wt_all = _check_event_weights(truth_weights, xt.shape[0], "truth")
  wg_all = _check_event_weights(generated_weights, xg.shape[0], "generated")
  for name, x in (("truth", xt), ("generated", xg)):
    n_val = int(round(config.val_fraction * x.shape[0]))
    if n_val < 1 or x.shape[0] - n_val < 1:
      raise BadInputError(f"{name}: {x.shape[0]} rows are too few for a held-out split with "
                          f"val_fraction={config.val_fraction}")
  t0 = time.time()
  key = _raw_key(jax.random.PRNGKey(config.seed) if key is None else key)
  k_init, k_train, k_split = (jax.random.fold_in(key, i) for i in range(3))
  rng = np.random.default_rng(np.asarray(k_split))  # host-side split, no compile

  def split(x, w):
    perm = rng.permutation(x.shape[0])
    n_val = int(round(config.val_fraction * x.shape[0]))
    return x[perm[n_val:]], w[perm[n_val:]], x[perm[:n_val]], w[perm[:n_val]]

  xt_tr, wt_tr, xt_va, wt_va = split(xt, wt_all)
  xg_tr, wg_tr, xg_va, wg_va = split(xg, wg_all)
  both = np.concatenate([xt_tr, xg_tr]).astype(np.float64)
  mean = both.mean(axis=0).astype(np.float32)
  std = both.std(axis=0)
  std = np.where(std > 0, std, 1.0).astype(np.float32)

  def z(x):
    return jnp.asarray((x - mean) / std)

  data = {"xt": z(xt_tr), "wt": jnp.asarray(wt_tr), "xg": z(xg_tr), "wg": jnp.asarray(wg_tr)}
  val = {"xt": z(xt_va), "wt": jnp.asarray(wt_va), "xg": z(xg_va), "wg": jnp.asarray(wg_va)}
  model = make_model(config)
  spec = make_spec(config, xt_tr.shape[0], xg_tr.shape[0], xt.shape[1])
  spe, n_epochs = spec.sampler.steps_per_epoch, int(config.train.epochs)
  members = engine.make_members(engine.make_train(spec), data_axis=None)

  # The held-out data are arguments, not constants closed over, of these jitted functions: XLA then
  # compiles the same arithmetic as inside a training program (constants can be folded differently).
  val_loss_M = jax.jit(engine.over_members(lambda h, v: balanced_loss(
      model.apply(h, v["xt"]), v["wt"], model.apply(h, v["xg"]), v["wg"]), (0, None)))

  loop = driver.Loop(members, data, total_steps=n_epochs * spe, segment_steps=spe,
                     evaluate=lambda state, _step: {"val_loss": val_loss_M(state.params["h"], val)},
                     select="val_loss" if config.keep_best else None, keep=lambda s: s.params["h"],
                     aux={"mean": jnp.asarray(mean), "std": jnp.asarray(std)}, name="dctr-reweight",
                     checkpoint_every_s=30.0)  # one-epoch segments: a checkpoint each would dominate
  state0 = members.init(jnp.stack([jnp.stack([k_init, k_train])]))
  result = driver.run(loop, state0, workdir, on_segment_end=on_segment_end)
  params = jax.tree.map(lambda a: a[0], result.best)

  logit_t, logit_g = _logits(model, params, val)
  beta = jnp.float32(1.0)
  if config.calibrate:
    beta = fit_inverse_temperature(logit_t, val["wt"], logit_g, val["wg"])
  val_raw, val_cal = _raw_and_calibrated_loss(logit_t, val["wt"], logit_g, val["wg"], beta)
  rw = {"params": params, "mean": jnp.asarray(mean), "std": jnp.asarray(std), "inv_temperature": beta}
  val_E = np.array([rec["val_loss"][0] for rec in result.history])
  report = {
    "columns": columns,
    "n_truth": int(xt.shape[0]), "n_generated": int(xg.shape[0]),
    "n_truth_train": int(xt_tr.shape[0]), "n_generated_train": int(xg_tr.shape[0]),
    "n_truth_val": int(xt_va.shape[0]), "n_generated_val": int(xg_va.shape[0]),
    "n_epochs": n_epochs, "steps_per_epoch": int(spe),
    "train_loss": [rec["h_loss"][0] for rec in result.history], "val_loss": val_E.tolist(),
    "best_epoch": int(np.argmin(val_E)) if config.keep_best else n_epochs - 1,
    "val_loss_uncalibrated": float(val_raw), "val_loss_calibrated": float(val_cal),
    "temperature": float(1.0 / beta),
    "val_auc": _auc(np.asarray(logit_t), np.asarray(logit_g)),
    "fit_seconds": time.time() - t0,
  }
  return rw, make_log_weight_fn(model, int(config.eval_batch_size)), report


def reweight(truth: Table, generated: Table, config: ml_collections.ConfigDict,
             apply_to: Table | None = None, truth_weights: np.ndarray | None = None,
             generated_weights: np.ndarray | None = None, key: jax.Array | None = None,
             workdir: str | None = None) -> tuple[np.ndarray, dict]:
  """Fit DCTR on truth vs generated and return (weights for `apply_to` (default: generated), report).

  The returned weights are the DCTR factors only: multiply them into any generated_weights yourself.
  Clipping and normalisation follow config.clip / config.normalize; report['weights'] describes the final
  weights (incl. N_eff).
  """
  rw, log_weight_fn, report = fit(truth, generated, config, truth_weights, generated_weights, key, workdir)
  target = generated if apply_to is None else apply_to
  x = _stack_columns(target, list(config.columns), "apply_to" if apply_to is not None else "generated")
  log_w = np.asarray(log_weight_fn(rw, jnp.asarray(x)))
  w, info = finalize_weights(log_w, config.clip, config.normalize)
  report["weights"] = {**info, **weight_summary(w)}
  return w, report
