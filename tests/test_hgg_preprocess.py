"""Quantile transform: fitted on a sample, exactly invertible on its support (also at an excluded interval and
the acceptance edge, uniform and normal outputs); integer (de)quantisation."""

import jax.numpy as jnp
import numpy as np
import scipy.special
import scipy.stats
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


# Eta with the detector's acceptance: |eta| < 2.5 outside the barrel-endcap gap 1.4442 < |eta| < 1.566, the
# endcap a few percent of the sample (as the SR's fake photons).
_GAP = (1.4442, 1.566)
_ETA_RNG = np.random.default_rng(1)
_ETA = _ETA_RNG.normal(0, 0.9, 20000)
_ETA = _ETA[(np.abs(_ETA) < 2.5) & ~((np.abs(_ETA) > _GAP[0]) & (np.abs(_ETA) < _GAP[1]))][:4000, None]
QT_GAP = {out: fit_quantile_transform(_ETA, 200, out, np.array([_GAP])) for out in ("uniform", "normal")}
_LO, _HI = float(_ETA.min()), float(_ETA.max())
# points of the support: the data's ends, both sides of both gap edges, and anything in between
_accepted = st.one_of(st.sampled_from([_LO, _HI, -_GAP[0], _GAP[0], -_GAP[1], _GAP[1]]),
                      st.floats(_LO, _HI).filter(lambda v: not _GAP[0] < abs(v) < _GAP[1]))


@settings(max_examples=40, deadline=None)
@given(st.lists(_accepted, min_size=1, max_size=20), st.sampled_from(["uniform", "normal"]))
def test_roundtrip_at_the_gap_and_the_acceptance_edge(values, output):
  """Exact in float64 (the path of the generated tables) up to the edges themselves. In float32 (inside
  jitted code) the inverse is discontinuous at the gap, where |s| = a and a + 1e-6 are a and b in eta, so
  the float32 round trip is checked away from it."""
  qt = QT_GAP[output]
  x = np.asarray(values, np.float64)[:, None]
  back = qt.inverse(qt.forward(x))
  np.testing.assert_allclose(back, x, atol=1e-8)
  far = np.abs(np.abs(x) - _GAP[0]) > 1e-3
  far &= np.abs(np.abs(x) - _GAP[1]) > 1e-3
  back_j = np.asarray(qt.inverse(qt.forward(jnp.asarray(x, jnp.float32))))
  np.testing.assert_allclose(back_j[far], x[far], atol=5e-4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-12.0, 12.0), min_size=1, max_size=50), st.sampled_from(["uniform", "normal"]))
def test_no_model_value_maps_into_the_gap_or_beyond_the_support(values, output):
  """Whatever a generator outputs, the physical eta is in the acceptance: outside the gap, within the data."""
  qt = QT_GAP[output]
  y = np.asarray(values)[:, None]
  if output == "uniform":
    y = np.clip(y, -1, 1)  # the tanh range
  for eta in (qt.inverse(y)[:, 0], np.asarray(qt.inverse(jnp.asarray(y, jnp.float32)))[:, 0]):
    a = np.abs(eta)
    assert not np.any((a > _GAP[0] + 1e-6) & (a < _GAP[1] - 1e-6))
    assert np.all(eta >= _LO - 1e-5) and np.all(eta <= _HI + 1e-5)


def test_uniform_draws_reach_the_endcap_and_skip_the_gap():
  """A perfect generator (uniform draws in the uniform coordinates, their image Phi^-1(e + (1 - 2e) u) in the
  normal ones) reproduces the barrel / gap / endcap fractions; without the squeeze the linear piece across
  the gap puts events in it."""
  a_data = np.abs(_ETA[:, 0])
  rng = np.random.default_rng(2)
  u = rng.uniform(0, 1, (200_000, 1))
  e = 0.5 / 200
  for output, y in (("uniform", 2 * u - 1), ("normal", scipy.special.ndtri(e + (1 - 2 * e) * u))):
    a = np.abs(QT_GAP[output].inverse(y)[:, 0])
    assert np.mean((a > _GAP[0]) & (a < _GAP[1])) == 0
    np.testing.assert_allclose(np.mean(a > _GAP[1]), np.mean(a_data > _GAP[1]), atol=0.004)
  plain = fit_quantile_transform(_ETA, 200)
  a = np.abs(plain.inverse(rng.uniform(-1, 1, (200_000, 1)))[:, 0])
  assert np.mean((a > _GAP[0]) & (a < _GAP[1])) > 5e-4


def test_normal_output_is_the_uniform_one_through_phi():
  """to_uniform(normal forward) = uniform forward: the binned metric sees the same coordinates."""
  qn = fit_quantile_transform(_SAMPLE, 200, "normal")
  z = qn.forward(_SAMPLE)
  np.testing.assert_allclose(qn.to_uniform(z), QT.forward(_SAMPLE), atol=1e-6)
  np.testing.assert_allclose(np.asarray(qn.to_uniform(jnp.asarray(z, jnp.float32))), QT.forward(_SAMPLE),
                             atol=1e-5)
  assert np.abs(z).max() <= float(scipy.special.ndtri(1 - 0.5 / 200)) + 1e-9
  u = scipy.stats.kstest(z[:, 1], "norm").statistic
  assert u < 0.02


# Normal coordinates with the "sample" tails: knots equally spaced in the normal coordinate out to
# +-Phi^-1(1 - 1/(2N)), so the sample's tails come back from a standard normal (a perfect generator).
_HEAVY = np.random.default_rng(3).laplace(0.0, 0.1, (20000, 1))  # steep, heavy-tailed (like an acoplanarity)
QT_TAILS = {t: fit_quantile_transform(_HEAVY, 500, "normal", tails=t) for t in ("knots", "sample")}
_HEAVY_UNIFORM = fit_quantile_transform(_HEAVY, 500)


def test_sample_tails_bound_and_probabilities():
  from ganjax.data.preprocess import knot_probs, output_bound
  for n, q in ((24000, 500), (100_000, 1000), (300, 64)):
    b = output_bound("normal", q, n, "sample")
    assert abs(b - scipy.special.ndtri(1 - 0.5 / n)) < 1e-9
    p = knot_probs("normal", q, n, "sample")
    assert p[0] == 0 and p[-1] == 1 and np.all(np.diff(p.astype(np.float32)) > 0) and len(p) == min(q, n)
    # interior knots equally spaced in the normal coordinate
    y = scipy.special.ndtri(0.5 / n + (1 - 1 / n) * p[1:-1])
    np.testing.assert_allclose(np.diff(y), 2 * b / (len(p) - 1), rtol=1e-6)
  assert abs(output_bound("normal", 500) - 3.0902) < 1e-4  # the knots tails: Phi^-1(1 - 1/(2Q))
  assert output_bound("uniform", 500, 24000, "sample") == 1.0


def test_sample_tails_forward_is_standard_normal_out_to_the_extremes():
  z = QT_TAILS["sample"].forward(_HEAVY)[:, 0]
  assert scipy.stats.kstest(z, "norm").statistic < 0.01
  for t in (2.5, 3.0, 3.5):  # tail fractions (binomial sigma) where the knots tails stop at 3.09
    p = 2 * scipy.stats.norm.sf(t)
    assert abs(np.mean(np.abs(z) > t) - p) < 4 * np.sqrt(p / len(z)) + 1 / len(z)
  assert np.abs(QT_TAILS["knots"].forward(_HEAVY)).max() <= 3.0903


def test_sample_tails_give_back_the_tails_of_the_sample():
  """A standard normal through the inverse (a perfect generator in normal coordinates) reproduces the true
  Laplace tail fractions with the sample tails; the knots tails pile 1/Q of it onto the sample's extremes."""
  y = np.random.default_rng(4).normal(size=(400_000, 1))
  for q in (0.998, 0.9995):
    cut = scipy.stats.laplace.ppf(q, 0, 0.1)
    true = 1 - q
    got = {t: np.mean(QT_TAILS[t].inverse(y)[:, 0] > cut) for t in QT_TAILS}
    # the fit's own sample noise on a tail fraction p from N = 20000 rows dominates the generated one's
    sigma = np.sqrt(true / len(_HEAVY))
    assert abs(got["sample"] - true) < 4 * sigma, (q, got)
  x = {t: QT_TAILS[t].inverse(y)[:, 0] for t in QT_TAILS}
  at_extremes = {t: np.mean((x[t] >= _HEAVY.max() - 1e-6) | (x[t] <= _HEAVY.min() + 1e-6)) for t in x}
  assert at_extremes["knots"] > 1e-3 and at_extremes["sample"] < 2e-4  # 1/Q vs ~1/N of the mass
  # the whole distribution: KS against the true CDF, at the sample's own noise level
  assert scipy.stats.kstest(x["sample"][:20000], scipy.stats.laplace(0, 0.1).cdf).pvalue > 1e-3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_sample_tails_roundtrip_on_support(fracs):
  qt = QT_TAILS["sample"]
  lo, hi = qt.knots_DxQ[0, 0], qt.knots_DxQ[0, -1]
  x = (lo + np.asarray(fracs)[:, None] * (hi - lo)).astype(np.float64)
  np.testing.assert_allclose(qt.inverse(qt.forward(x)), x, atol=1e-4 * (hi - lo))
  np.testing.assert_allclose(np.asarray(qt.inverse(qt.forward(jnp.asarray(x, jnp.float32)))), x,
                             atol=1e-3 * (hi - lo))
  # the metric's uniform coordinate is the probability integral transform here too
  np.testing.assert_allclose(qt.to_uniform(qt.forward(x)), _HEAVY_UNIFORM.forward(x), atol=4e-3)
