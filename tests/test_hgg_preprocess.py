"""Quantile transform: fitted on a sample, exactly invertible on its support; integer (de)quantisation."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ganjax.data.preprocess import dequantize, fit_quantile_transform, requantize

_FIT_RNG = np.random.default_rng(0)
_SAMPLE = np.stack([_FIT_RNG.exponential(30.0, 5000) + 20.0,  # falling pT-like
                    _FIT_RNG.normal(0, 1.2, 5000),
                    np.round(_FIT_RNG.normal(0, 1, 5000), 1)], -1)  # many ties
QT = fit_quantile_transform(_SAMPLE, n_quantiles=200)


def test_forward_is_uniform_on_the_training_sample():
  u = QT.forward(_SAMPLE)
  assert u.min() >= -1 and u.max() <= 1
  for d in range(2):
    counts, _ = np.histogram(QT.forward(_SAMPLE)[:, d], bins=10, range=(-1, 1))
    np.testing.assert_allclose(counts / len(_SAMPLE), 0.1, atol=0.01)


def test_knots_strictly_increasing_despite_ties():
  assert np.all(np.diff(QT.knots_DxQ, axis=1) > 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_roundtrip_on_support(fracs):
  lo, hi = QT.knots_DxQ[:, 0], QT.knots_DxQ[:, -1]
  f = np.asarray(fracs)[:, None]
  x = (lo + f * (hi - lo)).astype(np.float32)
  tol = 2e-5 * (np.abs(x) + (hi - lo))  # float32 rounding, per feature
  assert np.all(np.abs(QT.inverse(QT.forward(x)) - x) <= tol)
  # The same maps with jax.numpy (as inside jitted code).
  assert np.all(np.abs(np.asarray(QT.inverse(QT.forward(jnp.asarray(x)))) - x) <= 5 * tol)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=2, max_size=50), st.integers(0, 2**31 - 1))
def test_integer_features_requantize_exactly(values, seed):
  n = np.asarray(values)
  x = dequantize(n, np.random.default_rng(seed))
  assert np.all((x >= n) & (x < n + 1))
  qt = fit_quantile_transform(x[:, None], n_quantiles=64)
  np.testing.assert_array_equal(requantize(qt.inverse(qt.forward(x[:, None]))[:, 0]), n)
