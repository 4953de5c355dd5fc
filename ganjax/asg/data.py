"""Data preparation of the analysis-specific GAN (paper: analysis-specific-gan, Secs. 3-5), generic in the
analysis.

The user's analysis is a module (config.analysis) with
  load(config) -> {name: 1D array}   the physical feature table (all events; read with ganjax.data.tables)
  DERIVED: {name: fn}                differentiable derived quantities, fn({name: (B,) jnp}) -> (B,)
The table is split into train / validation (model selection) / test (final evaluation); the feature
preprocessing (ganjax.data.asg_features) and the Eq. 2 targets (mean and RMS of each regression quantity)
are fitted on the training split only.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ganjax.data import asg_features

Derived = Mapping[str, Callable[[Mapping[str, jax.Array]], jax.Array]]


def analysis_module(name: str) -> ModuleType:
  """config.analysis -> module: 'zmumu' means ganjax.data.zmumu; a dotted path is imported as is."""
  return importlib.import_module(name if "." in name else f"ganjax.data.{name}")


@struct.dataclass
class AsgData:
  """Training data on device, shared by all members: raw model-space table, preprocessing, Eq. 2 targets."""
  u_raw_NxD: jax.Array
  pre: asg_features.Preproc
  target_mean_R: jax.Array
  target_std_R: jax.Array


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


def make_data(config, train: Mapping[str, np.ndarray], derived: Derived) -> AsgData:
  """Fit the preprocessing and the Eq. 2 targets (mean, RMS of each regression quantity) on train."""
  m = config.model
  pre, raw = asg_features.fit(train, m.features, discrete=dict(m.discrete), zero_spike=tuple(m.zero_spike),
                              asinh=dict(m.asinh), spike_width=m.spike_width, seed=config.seed)
  reg = tuple(config.regression.terms.keys())
  q = derived_values(derived, train, reg)
  mean = np.asarray([q[r].mean() for r in reg], np.float32)
  std = np.asarray([q[r].std() for r in reg], np.float32)
  return AsgData(jnp.asarray(raw), pre, jnp.asarray(mean), jnp.asarray(std))
