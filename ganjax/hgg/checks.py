"""Configuration and input checks of the main job, all before any compute (a clear BadInputError naming the
setting, file, column and row count)."""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from ganjax.data import gjets, preprocess
from ganjax.engine import optim
from ganjax.engine.errors import BadInputError
from ganjax.hgg import metric

# Sec. 3.1: the conditional features of each strategy (custom: config.cond_features).
STRATEGY_FEATURES = {
    "vanilla": (),
    "partial": gjets.JET_COLUMNS,
    "full": gjets.JET_COLUMNS + gjets.PHOTON_COLUMNS + gjets.EVENT_COLUMNS,
}

# What the members of one vmapped program may differ in (every shape stays the same).
MEMBER_KEYS = ("seed", "train.label_noise", "train.optimizer.learning_rate", "train.optimizer.b1")


def cond_features(config) -> tuple[str, ...]:
  """The conditional features G and D see besides the generated object."""
  if config.strategy == "custom":
    return tuple(config.cond_features)
  if config.strategy not in STRATEGY_FEATURES:
    raise BadInputError(f"unknown strategy {config.strategy!r}; use vanilla, partial, full or custom")
  return STRATEGY_FEATURES[config.strategy]


def check_config(config) -> None:
  """Impossible settings get a clear error before anything runs."""
  problems = list(optim.check(config.train.optimizer))
  if config.metric.n_samples < 1:
    problems.append(f"metric.n_samples (S) must be >= 1, got {config.metric.n_samples}")
  if any(s < 1 for s in config.metric.test_samples):
    problems.append(f"metric.test_samples must all be >= 1, got {tuple(config.metric.test_samples)}")
  if config.metric.n_bins < 2:
    problems.append(f"metric.n_bins must be >= 2, got {config.metric.n_bins}")
  if config.train.epochs < 1 or config.train.eval_every < 1:
    problems.append("train.epochs and train.eval_every must be >= 1")
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
  quantiles_ok = config.data.quantile_output in preprocess.OUTPUTS and config.data.quantile_tails in preprocess.TAILS
  if not quantiles_ok:
    problems.append(f"data.quantile_output must be one of {preprocess.OUTPUTS} and data.quantile_tails one of "
                    f"{preprocess.TAILS}, got {config.data.quantile_output!r} / {config.data.quantile_tails!r}")
  if config.model.kind not in ("gan", "flow"):
    problems.append(f"model.kind must be gan or flow, got {config.model.kind!r}")
  elif config.model.kind == "flow":
    f = config.model.flow
    fill = preprocess.output_bound(config.data.quantile_output, config.data.n_quantiles, config.data.n_train,
                                   config.data.quantile_tails) if quantiles_ok else 1.0
    if f.layers < 1 or f.bins < 2 or f.bound <= fill or not all(h >= 1 for h in f.hidden):
      problems.append(f"model.flow: layers >= 1, bins >= 2, bound > {fill:.3g} (the preprocessed features fill "
                      f"+-{fill:.3g}) "
                      f"and hidden widths >= 1, got layers={f.layers} bins={f.bins} bound={f.bound} "
                      f"hidden={tuple(f.hidden)}")
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


def check_members(config, members: Sequence[dict]) -> None:
  """The members of train_members differ only in MEMBER_KEYS, with usable values."""
  if not members:
    raise BadInputError("train_members needs at least one member")
  for m in members:
    unknown = set(m) - set(MEMBER_KEYS)
    if unknown:
      raise BadInputError(f"members may differ only in {MEMBER_KEYS} (same shapes); got {sorted(unknown)} - "
                          "run those variants one after the other (experiments/hgg_studies.py)")
    eps = m.get("train.label_noise", config.train.label_noise)
    if not 0.0 <= eps < 0.5:
      raise BadInputError(f"train.label_noise must be in [0, 0.5), got {eps}")
    lr = m.get("train.optimizer.learning_rate", config.train.optimizer.learning_rate)
    if not lr > 0:
      raise BadInputError(f"train.optimizer.learning_rate must be > 0, got {lr}")
  if config.train.optimizer.name not in ("lamb", "adam", "adamw") and any("train.optimizer.b1" in m
                                                                          for m in members):
    raise BadInputError(f"train.optimizer.b1 is not a hyperparameter of {config.train.optimizer.name}")


MIN_CR_EVENTS = 40  # the validation's distance correlations use at least 2 subsamples of 20 events


def numeric_table(table, name: str) -> dict:
  """A library-path table (a dict of columns) checked like a file: 1D columns of one length; numbers, or
  strings of numbers converted to numbers (integral values to int64), never strings in the outputs."""
  if not hasattr(table, "items"):
    raise BadInputError(f"{name}: expected a dict of columns, got {type(table).__name__}")
  out, n, first = {}, None, None
  for c, v in table.items():
    try:
      a = np.asarray(v)
    except ValueError as e:  # ragged nested lists
      raise BadInputError(f"{name}: column {c!r} is not a flat array ({' '.join(str(e).split())[:120]})") from e
    if a.ndim != 1:
      raise BadInputError(f"{name}: column {c!r} has shape {a.shape}; columns must be 1D (one value per event)")
    if n is None:
      n, first = a.shape[0], c
    elif a.shape[0] != n:
      raise BadInputError(f"{name}: column {c!r} has {a.shape[0]} rows, {first!r} has {n}")
    if a.dtype.kind in "USO":
      try:
        f = a.astype(np.float64)
      except (TypeError, ValueError):
        bad = next((x for x in a.tolist() if not _is_number(x)), None)
        raise BadInputError(f"{name}: column {c!r} is not numeric (e.g. the value {bad!r})") from None
      a = f.astype(np.int64) if np.all(np.isfinite(f)) and np.all(f == np.round(f)) else f
    elif a.dtype.kind not in "biuf":
      raise BadInputError(f"{name}: column {c!r} is not numeric (dtype {a.dtype})")
    out[c] = a
  return out


def _is_number(x) -> bool:
  try:
    float(x)
    return True
  except (TypeError, ValueError):
    return False


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


def required_columns(config) -> tuple[str, ...]:
  """Every column the run reads from the SR and CR tables."""
  metric_cols = [d for d in config.metric.dims if d not in gjets.DIPHOTON_COLUMNS]
  aux = metric.aux_columns(config.metric.dims, config.gen_features)
  return tuple(dict.fromkeys(list(config.gen_features) + list(cond_features(config)) + metric_cols
                             + list(aux) + list(gjets.PHOTON_COLUMNS)))
