"""GANplifying truths, quantile MSE and fit benchmark against independent references (no training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate
from scipy.stats import norm

from ganjax.data import toys
from ganjax.metrics import fit as fitm
from ganjax.metrics import quantiles as qm


def _angle_pdf(power):
  z = integrate.quad(lambda p: np.sin(p) ** power, 0, np.pi)[0]
  return lambda p: np.sin(p) ** power / z


# independent densities written from Eqs. (1), (3), (4) and the 4-sphere surface element
PDFS = {
    ("camel", 0): (lambda x: 0.5 * (norm.pdf(x, -4, 1) + norm.pdf(x, 4, 1)), -np.inf, np.inf),
    ("ring", 0): (lambda r: norm.pdf(r, 4, 1) + norm.pdf(r, -4, 1), 0.0, np.inf),
    ("ring", 1): (lambda p: np.full_like(p, 1 / (2 * np.pi)), 0.0, 2 * np.pi),
    ("shell", 0): (lambda r: norm.pdf(r, 4, 1) + norm.pdf(r, -4, 1), 0.0, np.inf),
    ("shell", 1): (_angle_pdf(3), 0.0, np.pi),
    ("shell", 2): (_angle_pdf(2), 0.0, np.pi),
    ("shell", 3): (_angle_pdf(1), 0.0, np.pi),
    ("shell", 4): (lambda p: np.full_like(p, 1 / (2 * np.pi)), 0.0, 2 * np.pi),
}


@pytest.mark.parametrize("toy_name,coord", sorted(PDFS))
@pytest.mark.parametrize("n_quantiles", [3, 7, 10, 50])
def test_exact_quantiles_hold_equal_truth_mass(toy_name, coord, n_quantiles):
  pdf, lo, hi = PDFS[(toy_name, coord)]
  edges = np.concatenate([[lo], toys.get_toy(toy_name).inner_edges(coord, n_quantiles), [hi]])
  assert np.all(np.diff(edges) > 0)
  mass = [integrate.quad(lambda t: float(pdf(np.float64(t))), a, b, epsabs=1e-13, epsrel=1e-11)[0]
          for a, b in zip(edges[:-1], edges[1:])]
  np.testing.assert_allclose(mass, 1.0 / n_quantiles, rtol=0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, (6, 5), elements=st.floats(-10, 10)).filter(
    lambda x: np.all(np.linalg.norm(x[:, 3:], axis=1) > 1e-2)))
def test_polar_coordinates_invert(x):
  for name, d in (("ring", 2), ("shell", 5)):
    toy = toys.get_toy(name)
    xd = jnp.asarray(x[:, 5 - d:], jnp.float32)
    c = toy.to_coords(xd)
    assert np.all(np.asarray(c[:, 1:]) >= 0) and np.all(np.asarray(c[:, -1]) < 2 * np.pi)
    np.testing.assert_allclose(toy.from_coords(c), xd, atol=2e-5 * (1 + np.abs(x).max()))


def _binnings():
  return [("camel", ("x_20", (0,), 20)), ("ring", ("rphi_7x7", (0, 1), 7)),
          ("shell", ("3^5", (0, 1, 2, 3, 4), 3)), ("shell", ("phi1_10", (1,), 10))]


@pytest.mark.parametrize("toy_name,spec", _binnings())
def test_sample_mse_matches_analytic_expectation(toy_name, spec):
  """E[MSE] of N sampled events = (Nq-1)/(Nq^2 N): checks sampler, coordinates and edges together."""
  toy = toys.get_toy(toy_name)
  b = toy.binning(*spec)
  n, reps = 1000, 200
  keys = jax.random.split(jax.random.PRNGKey(3), reps)
  mse = jax.jit(jax.vmap(lambda k: qm.counts_mse(toy.sample(k, n), toy.to_coords, [b])[0]))(keys)
  mse = np.asarray(mse, np.float64)
  expect = qm.sample_mse_expectation(n, b.n_bins)
  assert abs(mse.mean() - expect) < 4 * mse.std(ddof=1) / np.sqrt(reps), (mse.mean(), expect)


def test_mse_curve_matches_numpy_brute_force():
  toy = toys.get_toy("ring")
  bs = toys.make_binnings(toy, [("r", (0,), 10), ("7x7", (0, 1), 7)])
  key, chunk, n_chunks = jax.random.PRNGKey(5), 50, 6
  out = jax.jit(lambda k: qm.mse_curve(toy.sample, k, toy.to_coords, bs, n_chunks, chunk))(key)
  x = np.concatenate([np.asarray(toy.sample(jax.random.fold_in(key, i), chunk)) for i in range(n_chunks)])
  r, phi = np.hypot(x[:, 0], x[:, 1]), np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
  idx = [np.searchsorted(toy.inner_edges(0, 10), r, side="right"),
         np.searchsorted(toy.inner_edges(0, 7), r, side="right") * 7
         + np.searchsorted(toy.inner_edges(1, 7), phi, side="right")]
  for k in range(n_chunks):
    m = (k + 1) * chunk
    for b_i, (ind, nb) in enumerate(zip(idx, (10, 49))):
      p = np.bincount(ind[:m], minlength=nb) / m
      np.testing.assert_allclose(out["mse"][k, b_i], np.mean((p - 1 / nb) ** 2), rtol=2e-5)
      np.testing.assert_allclose(out["noise"][k, b_i], np.mean(p * (1 - p)) / (m - 1), rtol=2e-5)
  np.testing.assert_array_equal(out["counts"][1], np.bincount(idx[1], minlength=49))


def test_equivalent_events_and_amplification_invert_the_expectation():
  n = np.array([100.0, 300.0, 1e4])
  for k in (10, 49, 7776):
    np.testing.assert_allclose(qm.equivalent_events(qm.sample_mse_expectation(n, k), k), n, rtol=1e-12)
    np.testing.assert_allclose(qm.amplification(qm.sample_mse_expectation(n, k), k, 100), n / 100, rtol=1e-12)
  s = qm.amplification_summary(np.full(5, qm.sample_mse_expectation(500, 10)), np.zeros(5), 10, 100)
  assert s["amplification"] == pytest.approx(5.0) and s["member_amplification_median"] == pytest.approx(5.0)


def test_fit_recovers_parameters():
  true = np.array([-3.5, 0.8, 4.2, 1.3, 0.3])
  rng = np.random.default_rng(0)
  n = 20_000
  comp = rng.random(n) < true[4]
  x = np.where(comp, rng.normal(true[0], true[1], n), rng.normal(true[2], true[3], n))
  r = fitm.fit_mixture(x)
  assert r["valid"]
  assert np.all(np.abs(r["params"] - true) < 5 * r["errors"]), (r["params"], r["errors"])
  assert np.all(r["errors"] < 0.05)


def test_fit_on_100_point_camel_samples_is_unbiased_and_beats_sampling():
  toy = toys.get_toy("camel")
  x = np.asarray(toys.training_samples(toy, jax.random.PRNGKey(2), 40, 100))[..., 0]
  fits = fitm.fit_samples(x)
  assert fits["valid"].all()
  p = fits["params"]
  se = p.std(0, ddof=1) / np.sqrt(len(p))
  assert np.all(np.abs(p.mean(0) - [-4, 1, 4, 1, 0.5]) < 4 * se + 0.02), p.mean(0)
  edges = toy.inner_edges(0, 20)
  np.testing.assert_allclose(fitm.fit_quantile_probs([-4, 1, 4, 1, 0.5], edges), 1 / 20, atol=1e-12)
  fit_mse = qm.quantile_mse(fitm.fit_quantile_probs(p, edges)).mean()
  assert fit_mse < qm.sample_mse_expectation(100, 20) / 2  # the fit is worth > 200 sampled events


def test_bad_input_raises_clear_errors():
  with pytest.raises(ValueError, match="unknown toy"):
    toys.get_toy("donut")
  with pytest.raises(ValueError, match="n_quantiles"):
    toys.get_toy("camel").inner_edges(0, 0)
  with pytest.raises(ValueError, match="not finite"):
    fitm.fit_mixture(np.array([1.0, 2.0, np.nan, 3.0, 4.0, 5.0]))
