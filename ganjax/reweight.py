"""DCTR reweighting of generated events (DCTR paper Sec. II C).

A classifier h (ganjax.models.classifier.MLPClassifier) is trained with binary cross entropy to separate truth
(label 1) from generated (label 0) events; the weight w(x) = h/(1-h) = exp(logit) then approaches the
likelihood ratio p_T/p_G of Eq. 3, so weighted generated events reproduce the truth (Eq. 4).

Usage (inputs are plain dicts of 1D numpy columns; the classifier sees `config.columns`):

  cfg = reweight.default_config(); cfg.columns = ["pt", "eta", "n_jets"]
  w_N, report = reweight.reweight(truth, generated, cfg)            # weights for `generated`
  w_M, report = reweight.reweight(truth, generated, cfg, apply_to=other)

Steps: per-class random train/held-out split; inputs standardised with train statistics; balanced batches
(half truth, half generated, the smaller class tiled as in the paper, Sec. III B) with per-epoch in-graph
permutations; the whole training (epochs x batches) is one lax.scan inside one jit; the parameters with the
lowest held-out loss are kept; optional temperature scaling (Guo et al., paper ref. [83]) fitted on the
held-out split; weights evaluated in batches, optionally clipped (the paper clips at 5) and normalised to
sum to the number of weighted events (Eq. 10).
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
import optax

from ganjax.metrics.dilution import as_weights, effective_sample_size
from ganjax.models.classifier import MLPClassifier

Table = Mapping[str, np.ndarray]


def default_config() -> ml_collections.ConfigDict:
  """Reweighter settings; `columns` must be set by the caller."""
  c = ml_collections.ConfigDict()
  c.columns = []             # classifier inputs, read from the truth / generated dicts
  c.hidden = (64, 128, 256)  # paper's 2D toy reweighter (Sec. III A)
  c.activation = "relu"
  c.learning_rate = 1e-3
  c.lr_schedule = "constant" # 'constant' | 'cosine' (decay to 0 over all epochs: a settled, less noisy h)
  c.weight_decay = 0.0       # decoupled weight decay (AdamW, Loshchilov & Hutter 2019); 0: plain Adam
  c.batch_size = 256         # per step: batch_size // 2 truth + batch_size // 2 generated events
  c.n_epochs = 100           # epochs over the larger class's training split (paper: 100)
  c.val_fraction = 0.2       # held-out fraction of each class (model selection and calibration)
  c.keep_best = True         # keep the parameters of the epoch with the lowest held-out loss
  c.calibrate = True         # temperature scaling on the held-out split
  c.clip = 5.0               # upper limit on the raw weights; <= 0 disables (paper: 5)
  c.normalize = True         # rescale weights to sum to the number of weighted events (Eq. 10)
  c.eval_batch_size = 16384  # events per batch when evaluating weights
  c.seed = 0
  return c


# ----------------------------------------------------------------------------- input checks


def _stack_columns(table: Table, columns: list[str], name: str) -> np.ndarray:
  """x_NxD (float32) from the listed columns, with a ValueError naming table/column/count on bad input."""
  if not isinstance(table, Mapping):
    raise ValueError(f"{name}: expected a dict of columns, got {type(table).__name__}")
  missing = [c for c in columns if c not in table]
  if missing:
    raise ValueError(f"{name}: missing columns {missing}; available: {sorted(table)}")
  cols, n = [], None
  for c in columns:
    v = np.asarray(table[c])
    if v.ndim != 1:
      raise ValueError(f"{name}: column {c!r} must be 1D, got shape {v.shape}")
    if n is None:
      n = v.shape[0]
    elif v.shape[0] != n:
      raise ValueError(f"{name}: column {c!r} has {v.shape[0]} rows, {columns[0]!r} has {n}")
    if not np.issubdtype(v.dtype, np.number) and v.dtype != bool:
      raise ValueError(f"{name}: column {c!r} is not numeric (dtype {v.dtype})")
    v = v.astype(np.float64)
    bad = int(np.sum(~np.isfinite(v)))
    if bad:
      raise ValueError(f"{name}: column {c!r} has {bad} of {n} rows that are NaN or infinite")
    cols.append(v)
  if n == 0:
    raise ValueError(f"{name}: no rows")
  return np.stack(cols, axis=1).astype(np.float32)


def _check_config(config: ml_collections.ConfigDict) -> list[str]:
  columns = list(config.columns)
  if not columns:
    raise ValueError("reweight config: `columns` is empty; list the classifier's input columns")
  if len(set(columns)) != len(columns):
    raise ValueError(f"reweight config: duplicate entries in columns {columns}")
  if not 0.0 < config.val_fraction < 1.0:
    raise ValueError(f"reweight config: val_fraction must be in (0, 1), got {config.val_fraction}")
  if config.batch_size < 2 or config.n_epochs < 1:
    raise ValueError(f"reweight config: need batch_size >= 2 and n_epochs >= 1, "
                     f"got {config.batch_size}, {config.n_epochs}")
  make_optimizer(float(config.learning_rate), 1, str(config.get("lr_schedule", "constant")),
                 float(config.get("weight_decay", 0.0)))  # raises on a bad schedule / weight decay
  return columns


def _check_event_weights(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
  """Checked event weights normalised to mean 1 (float32)."""
  w = as_weights(w, n, name, what="event weights")
  return (w / w.mean()).astype(np.float32)


# ----------------------------------------------------------------------------- classifier training


_LR_SCHEDULES = ("constant", "cosine")


def make_optimizer(learning_rate: float, n_steps: int, lr_schedule: str = "constant",
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Adam (the paper's optimiser) with an optional cosine decay to 0 over n_steps and decoupled weight decay."""
  if lr_schedule not in _LR_SCHEDULES:
    raise ValueError(f"reweight config: lr_schedule={lr_schedule!r}; known: {_LR_SCHEDULES}")
  if weight_decay < 0:
    raise ValueError(f"reweight config: weight_decay must be >= 0, got {weight_decay}")
  lr = optax.cosine_decay_schedule(learning_rate, max(1, n_steps)) if lr_schedule == "cosine" else learning_rate
  return optax.adamw(lr, weight_decay=weight_decay) if weight_decay > 0 else optax.adam(lr)



def _bce(logit: jax.Array, label: jax.Array) -> jax.Array:
  """Per-event binary cross entropy of sigmoid(logit) against label in {0, 1}."""
  return label * jax.nn.softplus(-logit) + (1.0 - label) * jax.nn.softplus(logit)


def balanced_loss(logit_t: jax.Array, wt: jax.Array, logit_g: jax.Array, wg: jax.Array) -> jax.Array:
  """BCE with truth and generated each carrying half the total weight (equal class priors)."""
  lt = jnp.sum(wt * _bce(logit_t, 1.0)) / jnp.sum(wt)
  lg = jnp.sum(wg * _bce(logit_g, 0.0)) / jnp.sum(wg)
  return 0.5 * (lt + lg)


def make_train(config: ml_collections.ConfigDict, n_truth: int, n_gen: int
               ) -> tuple[MLPClassifier, Callable, Callable, int]:
  """(model, init, train, steps_per_epoch) for the classifier h.

  init(key, x_1xD) -> params. train(params, key, data) -> (params, history) runs all epochs in one lax.scan;
  data holds standardised xt, wt (truth train), xg, wg (generated train), xt_val, wt_val, xg_val, wg_val.
  n_truth / n_gen (train sizes) fix the static number of steps per epoch.
  """
  model = MLPClassifier(tuple(int(h) for h in config.hidden), config.activation)
  half = max(1, int(config.batch_size) // 2)
  steps_per_epoch = max(1, math.ceil(max(n_truth, n_gen) / half))
  n_epochs = int(config.n_epochs)
  tx = make_optimizer(float(config.learning_rate), steps_per_epoch * n_epochs,
                      str(config.get("lr_schedule", "constant")), float(config.get("weight_decay", 0.0)))
  keep_best = bool(config.keep_best)

  def init(key: jax.Array, x_1xD: jax.Array):
    return model.init(key, x_1xD)

  def loss_fn(params, xt, wt, xg, wg):
    return balanced_loss(model.apply(params, xt), wt, model.apply(params, xg), wg)

  def train(params, key: jax.Array, data: dict[str, jax.Array]):
    nt, ng = data["xt"].shape[0], data["xg"].shape[0]
    offs = jnp.arange(half)

    def val_loss(p):
      return loss_fn(p, data["xt_val"], data["wt_val"], data["xg_val"], data["wg_val"])

    def epoch(carry, e):
      params, opt_state, best, best_loss = carry
      k = jax.random.fold_in(key, e)
      perm_t = jax.random.permutation(jax.random.fold_in(k, 0), nt)
      perm_g = jax.random.permutation(jax.random.fold_in(k, 1), ng)

      def step(c, s):
        params, opt_state = c
        it = perm_t[(s * half + offs) % nt]  # the smaller class wraps around (tiling)
        ig = perm_g[(s * half + offs) % ng]
        loss, grads = jax.value_and_grad(loss_fn)(params, data["xt"][it], data["wt"][it],
                                                  data["xg"][ig], data["wg"][ig])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

      (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jnp.arange(steps_per_epoch))
      vl = val_loss(params)
      better = jnp.logical_or(vl < best_loss, not keep_best)
      best = jax.tree_util.tree_map(lambda n, b: jnp.where(better, n, b), params, best)
      best_loss = jnp.where(better, vl, best_loss)
      return (params, opt_state, best, best_loss), (jnp.mean(losses), vl)

    carry0 = (params, tx.init(params), params, jnp.asarray(jnp.inf, jnp.float32))
    (_, _, best, best_loss), (train_E, val_E) = jax.lax.scan(epoch, carry0, jnp.arange(n_epochs))
    return best, {"train_loss": train_E, "val_loss": val_E, "best_val_loss": best_loss}

  return model, init, train, steps_per_epoch


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


def _program_settings(config: ml_collections.ConfigDict) -> tuple:
  return (tuple(int(h) for h in config.hidden), str(config.activation), float(config.learning_rate),
          int(config.batch_size), int(config.n_epochs), bool(config.keep_best), bool(config.calibrate),
          str(config.get("lr_schedule", "constant")), float(config.get("weight_decay", 0.0)))


@functools.lru_cache(maxsize=16)
def _fit_program(settings: tuple, n_truth: int, n_gen: int) -> tuple[Callable, int]:
  """One jitted program (init, all epochs, held-out calibration) per settings/sizes, reused across calls."""
  hidden, activation, lr, batch_size, n_epochs, keep_best, calibrate, lr_schedule, weight_decay = settings
  cfg = ml_collections.ConfigDict(dict(hidden=hidden, activation=activation, learning_rate=lr,
                                       batch_size=batch_size, n_epochs=n_epochs, keep_best=keep_best,
                                       lr_schedule=lr_schedule, weight_decay=weight_decay))
  model, init, train, steps_per_epoch = make_train(cfg, n_truth, n_gen)

  @jax.jit
  def fit_all(k_init, k_train, data):
    params, hist = train(init(k_init, data["xt"][:1]), k_train, data)
    logit_t = model.apply(params, data["xt_val"])
    logit_g = model.apply(params, data["xg_val"])
    beta = jnp.float32(1.0)
    if calibrate:
      beta = fit_inverse_temperature(logit_t, data["wt_val"], logit_g, data["wg_val"])
    val_raw = balanced_loss(logit_t, data["wt_val"], logit_g, data["wg_val"])
    val_cal = balanced_loss(beta * logit_t, data["wt_val"], beta * logit_g, data["wg_val"])
    return params, hist, beta, logit_t, logit_g, val_raw, val_cal

  return fit_all, steps_per_epoch


def fit(truth: Table, generated: Table, config: ml_collections.ConfigDict,
        truth_weights: np.ndarray | None = None, generated_weights: np.ndarray | None = None,
        key: jax.Array | None = None) -> tuple[dict[str, Any], Callable, dict]:
  """Train the DCTR classifier. Returns (reweighter pytree, log_weight_fn, report).

  reweighter = {params, mean, std, inv_temperature}; log_weight_fn(reweighter, x_NxD) -> log w_N.
  truth_weights / generated_weights: optional per-event input weights (e.g. MC event weights, footnote 1).
  """
  columns = _check_config(config)
  xt = _stack_columns(truth, columns, "truth")
  xg = _stack_columns(generated, columns, "generated")
  wt_all = _check_event_weights(truth_weights, xt.shape[0], "truth")
  wg_all = _check_event_weights(generated_weights, xg.shape[0], "generated")
  for name, x in (("truth", xt), ("generated", xg)):
    n_val = int(round(config.val_fraction * x.shape[0]))
    if n_val < 1 or x.shape[0] - n_val < 1:
      raise ValueError(f"{name}: {x.shape[0]} rows are too few for a held-out split with "
                       f"val_fraction={config.val_fraction}")
  t0 = time.time()
  key = jax.random.key(config.seed) if key is None else key
  k_init, k_train, k_split = (jax.random.fold_in(key, i) for i in range(3))
  rng = np.random.default_rng(np.asarray(jax.random.key_data(k_split)))  # host-side split, no compile

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

  data = {"xt": z(xt_tr), "wt": jnp.asarray(wt_tr), "xg": z(xg_tr), "wg": jnp.asarray(wg_tr),
          "xt_val": z(xt_va), "wt_val": jnp.asarray(wt_va), "xg_val": z(xg_va), "wg_val": jnp.asarray(wg_va)}
  fit_all, steps_per_epoch = _fit_program(_program_settings(config), xt_tr.shape[0], xg_tr.shape[0])
  params, hist, beta, logit_t, logit_g, val_raw, val_cal = fit_all(k_init, k_train, data)
  val_raw, val_cal = float(val_raw), float(val_cal)
  rw = {"params": params, "mean": jnp.asarray(mean), "std": jnp.asarray(std), "inv_temperature": beta}
  val_E = np.asarray(hist["val_loss"])
  report = {
    "columns": columns,
    "n_truth": int(xt.shape[0]), "n_generated": int(xg.shape[0]),
    "n_truth_train": int(xt_tr.shape[0]), "n_generated_train": int(xg_tr.shape[0]),
    "n_truth_val": int(xt_va.shape[0]), "n_generated_val": int(xg_va.shape[0]),
    "n_epochs": int(config.n_epochs), "steps_per_epoch": int(steps_per_epoch),
    "train_loss": np.asarray(hist["train_loss"]).tolist(), "val_loss": val_E.tolist(),
    "best_epoch": int(np.argmin(val_E)) if config.keep_best else int(config.n_epochs) - 1,
    "val_loss_uncalibrated": val_raw, "val_loss_calibrated": val_cal,
    "temperature": float(1.0 / beta),
    "val_auc": _auc(np.asarray(logit_t), np.asarray(logit_g)),
    "fit_seconds": time.time() - t0,
  }
  model = MLPClassifier(tuple(int(h) for h in config.hidden), config.activation)
  return rw, make_log_weight_fn(model, int(config.eval_batch_size)), report


def reweight(truth: Table, generated: Table, config: ml_collections.ConfigDict,
             apply_to: Table | None = None, truth_weights: np.ndarray | None = None,
             generated_weights: np.ndarray | None = None, key: jax.Array | None = None
             ) -> tuple[np.ndarray, dict]:
  """Fit DCTR on truth vs generated and return (weights for `apply_to` (default: generated), report).

  The returned weights are the DCTR factors only: multiply them into any generated_weights yourself.
  Clipping and normalisation follow config.clip / config.normalize; report['weights'] describes the final
  weights (incl. N_eff).
  """
  rw, log_weight_fn, report = fit(truth, generated, config, truth_weights, generated_weights, key)
  target = generated if apply_to is None else apply_to
  x = _stack_columns(target, list(config.columns), "apply_to" if apply_to is not None else "generated")
  log_w = np.asarray(log_weight_fn(rw, jnp.asarray(x)))
  w, info = finalize_weights(log_w, config.clip, config.normalize)
  report["weights"] = {**info, **weight_summary(w)}
  return w, report
