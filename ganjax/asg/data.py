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
  """config.analysis -> module, which must define load(config) and DERIVED:
    - a path to a .py file ('analyses/myanalysis.py'): loaded from that file;
    - a built-in name ('zmumu' = ganjax.data.zmumu);
    - any importable module ('myanalysis' on the PYTHONPATH or in the working directory, 'mypkg.zanalysis').
  Anything else is one ValueError naming the setting and what to do."""
  import importlib.util
  import os
  import sys

  hint = ("set --config.analysis to a built-in name (zmumu), a module on the PYTHONPATH, or a path to a .py file "
          "defining load(config) and DERIVED")
  if not name:
    raise ValueError(f"analysis is empty; {hint}")
  if name.endswith(".py"):
    path = os.path.abspath(name)
    if not os.path.isfile(path):
      raise ValueError(f"analysis {name!r}: no such file; {hint}")
    mod_name = "ganjax_analysis_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
  else:
    builtin = f"ganjax.data.{name}" if "." not in name else None
    if builtin and importlib.util.find_spec(builtin) is not None:
      module = importlib.import_module(builtin)
    else:
      if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # python -m puts the working directory first; a plain call may not
      try:
        module = importlib.import_module(name)
      except ModuleNotFoundError as e:
        if e.name is not None and not name.startswith(e.name) and not e.name.startswith(name.split(".")[0]):
          raise ValueError(f"analysis {name!r} was found but imports a missing module: {e}") from e
        raise ValueError(f"analysis {name!r}: no module ganjax.data.{name} nor {name!r} importable; {hint}") from e
  missing = [a for a in ("load", "DERIVED") if not hasattr(module, a)]
  if missing:
    raise ValueError(f"analysis {name!r} ({getattr(module, '__file__', '?')}) does not define {missing}; {hint}")
  return module


@struct.dataclass
class AsgData:
  """Training data on device, shared by all members: raw model-space table, preprocessing, Eq. 2 targets and
  the quantiles of each distribution-term quantity at the generator batch's levels (b + 1/2) / B."""
  u_raw_NxD: jax.Array
  pre: asg_features.Preproc
  target_mean_R: jax.Array
  target_std_R: jax.Array
  target_quantiles_PxB: jax.Array


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
  """Fit the preprocessing, the Eq. 2 targets (mean, RMS of each regression quantity) and the quantiles of the
  distribution terms' quantities on train."""
  m = config.model
  pre, raw = asg_features.fit(train, m.features, discrete=dict(m.discrete), zero_spike=tuple(m.zero_spike),
                              asinh=dict(m.asinh), spike_width=m.spike_width, seed=config.seed)
  reg = tuple(config.regression.terms.keys())
  q = derived_values(derived, train, reg)
  mean = np.asarray([q[r].mean() for r in reg], np.float32)
  std = np.asarray([q[r].std() for r in reg], np.float32)
  dist = tuple(config.regression.distribution.keys())
  bs = int(config.train.batch_size)
  p = derived_values(derived, train, dist)
  levels = (np.arange(bs) + 0.5) / bs
  quant = np.asarray([np.quantile(p[n], levels) for n in dist], np.float32).reshape(len(dist), bs)
  return AsgData(jnp.asarray(raw), pre, jnp.asarray(mean), jnp.asarray(std), jnp.asarray(quant))
