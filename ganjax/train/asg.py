"""Analysis-specific GAN training (paper: analysis-specific-gan, Sec. 4-5, Eq. 2), generic in the analysis.

The user's analysis is a module (config.analysis) with
  load(config) -> {name: 1D array}   the physical feature table (all events; read with data.tables)
  DERIVED: {name: fn}                differentiable derived quantities, fn({name: (B,) jnp}) -> (B,)
and the config names the features, their kinds (data.asg_features), the derived quantities whose batch
mean and width enter the generator loss (Eq. 2) with weights (c1, c2), and the quantities whose KS
statistics select the model (Sec. 5).

Training (Sec. 4): per step, D sees a half-batch of B/2 real and B/2 generated events (BCE); then G
minimises  BCE(D(G(z)), 1) + sum_q c1_q (mean_B q - <q>)^2 + c2_q (std_B q - sigma_q)^2  on a batch of
B generated events, where <q>, sigma_q are the mean and RMS of q in the training data (Eq. 2). The
weights c1, c2 live in the train state, so members with regression terms on and off train side by side
in one vmapped program. `train_segment` runs segment_steps steps as a lax.scan of lax.scans and returns
the generator parameters every snapshot_every steps, stacked (Sec. 5: "weights saved every 100
epochs"); `select` scores the snapshots by the summed KS statistics against held-out data.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from ganjax.data import asg_features
from ganjax.models import asg as asg_models

Derived = Mapping[str, Callable[[Mapping[str, jax.Array]], jax.Array]]


def analysis_module(name: str) -> ModuleType:
  """config.analysis -> module: 'zmumu' means ganjax.data.zmumu; a dotted path is imported as is."""
  return importlib.import_module(name if "." in name else f"ganjax.data.{name}")


@struct.dataclass
class AsgData:
  """Training data on device, shared by all members: raw model-space table, preprocessing, targets."""
  u_raw_NxD: jax.Array
  pre: asg_features.Preproc
  target_mean_R: jax.Array
  target_std_R: jax.Array


@struct.dataclass
class TrainState:
  step: jax.Array
  key: jax.Array
  g_params: dict
  d_params: dict
  g_opt: optax.OptState
  d_opt: optax.OptState
  c1_R: jax.Array
  c2_R: jax.Array


class Split(NamedTuple):
  train: dict
  val: dict
  test: dict


def split_table(table: Mapping[str, np.ndarray], val_frac: float, test_frac: float, seed: int) -> Split:
  """Seeded random split of a column table into train / validation (model selection) / test."""
  n = len(next(iter(table.values())))
  perm = np.random.default_rng(seed).permutation(n)
  n_val, n_test = int(round(val_frac * n)), int(round(test_frac * n))
  parts = (perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test])
  return Split(*({k: np.asarray(v)[idx] for k, v in table.items()} for idx in parts))


def derived_values(derived: Derived, features: Mapping[str, np.ndarray], names) -> dict[str, np.ndarray]:
  """Features or derived quantities by name, as numpy (a name that is a feature is taken as is).

  The derived quantities are evaluated in one jitted call (one compile per input shape).
  """
  names = tuple(names)
  unknown = [n for n in names if n not in features and n not in derived]
  if unknown:
    raise ValueError(f"{unknown} are neither features {list(features)} nor derived quantities {list(derived)}")
  todo = tuple(n for n in names if n not in features)
  values = _jitted_derived(derived, todo)({k: jnp.asarray(features[k]) for k in features}) if todo else {}
  return {n: np.asarray(features[n]) if n in features else np.asarray(values[n]) for n in names}


_DERIVED_CACHE: dict = {}


def _jitted_derived(derived: Derived, names: tuple):
  key = (id(derived), names)
  if key not in _DERIVED_CACHE:
    _DERIVED_CACHE[key] = jax.jit(lambda f: {n: derived[n](f) for n in names})
  return _DERIVED_CACHE[key]


def make_data(config: ml_collections.ConfigDict, train: Mapping[str, np.ndarray], derived: Derived) -> AsgData:
  """Fit the preprocessing and the Eq. 2 targets (mean, RMS of each regression quantity) on train."""
  pre, raw = asg_features.fit(train, config.features, discrete=dict(config.discrete),
                              zero_spike=tuple(config.zero_spike), asinh=dict(config.asinh),
                              spike_width=config.spike_width, seed=config.seed)
  reg = tuple(config.regression.keys())
  q = derived_values(derived, train, reg)
  mean = np.asarray([q[r].mean() for r in reg], np.float32)
  std = np.asarray([q[r].std() for r in reg], np.float32)
  return AsgData(jnp.asarray(raw), pre, jnp.asarray(mean), jnp.asarray(std))


def _optimizer(config) -> optax.GradientTransformation:
  if config.optimizer == "adadelta":  # Keras defaults used by the paper (lr 1, rho 0.95, eps 1e-7)
    return optax.adadelta(learning_rate=config.learning_rate, rho=0.95, eps=1e-7)
  if config.optimizer == "adam":
    return optax.adam(learning_rate=config.learning_rate, b1=config.adam_b1)
  raise ValueError(f"config.optimizer must be 'adadelta' or 'adam', got {config.optimizer!r}")


class Trainer(NamedTuple):
  init: Callable
  train_segment: Callable
  generate: Callable


def make_train(config: ml_collections.ConfigDict, derived: Derived | None = None) -> Trainer:
  """Pure functions for one member; jax.vmap them over keys for an ensemble.

  init(key, c1_R=None, c2_R=None) -> TrainState (c's default to config.regression's weights)
  train_segment(state, data) -> (state, g_snapshots [S, ...], history {name: [S]}) with
      S = segment_steps // snapshot_every; history holds per-snapshot means of the losses and of the
      batch mean / width of each regression quantity.
  generate(g_params, data, key, n) -> {name: (n,)} physical features (discrete floored, spikes clipped)
  """
  if derived is None:
    derived = analysis_module(config.analysis).DERIVED
  n_feat = len(config.features)
  reg = tuple(config.regression.keys())
  missing = [r for r in reg if r not in derived]
  if missing:
    raise ValueError(f"regression quantities {missing} are not in the analysis' DERIVED {list(derived)}")
  if config.segment_steps % config.snapshot_every:
    raise ValueError("segment_steps must be a multiple of snapshot_every")
  c1_default = jnp.asarray([config.regression[r][0] for r in reg], jnp.float32)
  c2_default = jnp.asarray([config.regression[r][1] for r in reg], jnp.float32)
  g_net = asg_models.generator(n_feat, config.g_hidden, config.slope)
  d_net = asg_models.discriminator(config.d_hidden, config.slope)
  g_tx, d_tx = _optimizer(config), _optimizer(config)
  half = config.batch_size // 2

  def init(key, c1_R=None, c2_R=None) -> TrainState:
    kg, kd, kstate = jax.random.split(key, 3)
    g_params = g_net.init(kg, jnp.zeros((1, n_feat)))
    d_params = d_net.init(kd, jnp.zeros((1, n_feat)))
    return TrainState(jnp.zeros((), jnp.int32), kstate, g_params, d_params, g_tx.init(g_params),
                      d_tx.init(d_params), c1_default if c1_R is None else jnp.asarray(c1_R, jnp.float32),
                      c2_default if c2_R is None else jnp.asarray(c2_R, jnp.float32))

  def regression_terms(state, data, x_BxD):
    phys = asg_features.decode(data.pre, x_BxD, discretize=False)
    q_RxB = jnp.stack([derived[r](phys) for r in reg]) if reg else jnp.zeros((0, x_BxD.shape[0]))
    mean_R, std_R = q_RxB.mean(1), q_RxB.std(1)
    loss = jnp.sum(state.c1_R * (mean_R - data.target_mean_R) ** 2
                   + state.c2_R * (std_R - data.target_std_R) ** 2)
    return loss, (mean_R, std_R)

  def step(state: TrainState, data: AsgData):
    k = jax.random.fold_in(state.key, state.step)
    k_idx, k_aug, k_zd, k_zg = jax.random.split(k, 4)
    idx = jax.random.randint(k_idx, (half,), 0, data.u_raw_NxD.shape[0])
    pre = data.pre
    real = asg_features.standardize(
        pre, asg_features.augment(pre.param_D, pre.width_D, pre.kinds, data.u_raw_NxD[idx], k_aug))
    fake = jax.lax.stop_gradient(g_net.apply(state.g_params, jax.random.normal(k_zd, (half, n_feat))))

    def d_loss_fn(d_params):
      logits = d_net.apply(d_params, jnp.concatenate([real, fake]))[:, 0]
      labels = jnp.concatenate([jnp.ones(half), jnp.zeros(half)])
      return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.d_params)
    d_upd, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_upd)

    def g_loss_fn(g_params):
      x = g_net.apply(g_params, jax.random.normal(k_zg, (config.batch_size, n_feat)))
      bce = optax.sigmoid_binary_cross_entropy(d_net.apply(d_params, x)[:, 0], 1.0).mean()
      reg_loss, stats = regression_terms(state, data, x)
      return bce + reg_loss, (bce, reg_loss, stats)

    (g_loss, (g_bce, reg_loss, (mean_R, std_R))), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(state.g_params)
    g_upd, g_opt = g_tx.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_upd)
    new = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params, g_opt=g_opt, d_opt=d_opt)
    metrics = {"d_loss": d_loss, "g_bce": g_bce, "g_regression": reg_loss, "g_loss": g_loss}
    metrics.update({f"{r}_mean": mean_R[i] for i, r in enumerate(reg)})
    metrics.update({f"{r}_std": std_R[i] for i, r in enumerate(reg)})
    return new, metrics

  def train_segment(state: TrainState, data: AsgData):
    def chunk(state, _):
      state, hist = jax.lax.scan(lambda s, _: step(s, data), state, None, length=config.snapshot_every)
      return state, (state.g_params, jax.tree.map(jnp.mean, hist))

    n_snap = config.segment_steps // config.snapshot_every
    state, (snaps, hist) = jax.lax.scan(chunk, state, None, length=n_snap)
    return state, snaps, hist

  def generate(g_params, data: AsgData, key, n: int) -> dict[str, jax.Array]:
    x = g_net.apply(g_params, jax.random.normal(key, (n, n_feat)))
    return asg_features.decode(data.pre, x, discretize=True)

  return Trainer(init, train_segment, generate)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
  """Two-sample Kolmogorov-Smirnov statistic sup|F_a - F_b| (ganjax.metrics.onedim, tested vs scipy)."""
  from ganjax.metrics.onedim import ks_2samp

  return ks_2samp(a, b)[0]


def ks_scores(sample: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], names) -> np.ndarray:
  """KS statistic per selection quantity (Sec. 5); their sum is the figure of merit."""
  return np.asarray([ks_statistic(sample[n], reference[n]) for n in names])


def neg2lnl(sample: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], names,
            train: Mapping[str, np.ndarray], n_bins: int = 10) -> float:
  """-2 ln Lambda of the main job (ganjax.metrics.likelihood) on the selection quantities.

  Each quantity is mapped to [-1, 1] by the empirical CDF of the training sample (2F - 1), so the n_bins
  equal bins per dimension hold equal training fractions, as the main job's quantile transform does;
  `reference` (real events) is scored against the binned `sample` (generated events).
  """
  from ganjax.metrics import likelihood

  def u(cols):
    return np.stack([2.0 * np.searchsorted(np.sort(train[n]), cols[n], side="right") / len(train[n]) - 1.0
                     for n in names], axis=1)

  real = np.asarray(likelihood.histogram(jnp.asarray(u(reference)), n_bins))
  gen = np.asarray(likelihood.histogram(jnp.asarray(u(sample)), n_bins))
  return likelihood.neg2_log_likelihood(real, gen)
