"""Dilution, effective sample size, separation floor and the DCTR toys, against analytic / brute-force
references (DCTR paper Sec. II B, Eqs. 2-15)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import jax
from ganjax.data.dctr_toys import get_toy, observables
from ganjax.metrics import dilution as dl
from ganjax.metrics.separation import separation_power


def _bimodal_cdf(x):
  return 0.5 * (stats.norm.cdf(x, -1, 0.4) + stats.norm.cdf(x, 1, 0.4))


def test_r_is_one_for_unit_weights():
  rng = np.random.default_rng(0)
  f = rng.normal(size=50_000)
  assert dl.dilution(f, None, f) == pytest.approx(1.0, abs=1e-12)
  assert dl.dilution(f, np.ones_like(f), f) == pytest.approx(1.0, abs=1e-12)
  g = rng.normal(size=50_000)  # same density, independent sample: r = 1 within sampling error
  assert dl.dilution(g, np.full(g.size, 3.7), f) == pytest.approx(1.0, abs=0.02)
  # unit weights: the uncertainty is the textbook std / sqrt(N)
  assert dl.mean_uncertainty(f) == pytest.approx(f.std() / np.sqrt(f.size), rel=1e-12)


def test_mean_uncertainty_matches_spread_of_replicas():
  """Eqs. 6-8 from sampling estimates == the actual spread of the weighted mean over replicas."""
  toy = get_toy("bimodal")
  rng = np.random.default_rng(1)
  n, reps, mu_g, sd_g = 2000, 400, 0.2, 1.1
  x = rng.normal(mu_g, sd_g, size=(reps, n))
  w = toy.density(x.reshape(-1, 1)).reshape(reps, n) / stats.norm.pdf(x, mu_g, sd_g)  # ideal Eq. 3
  for f in (x, x**2):
    means = np.sum(w * f, axis=1) / np.sum(w, axis=1)
    est = np.array([dl.mean_uncertainty(f[i], w[i]) for i in range(reps)])
    assert np.mean(est) == pytest.approx(np.std(means), rel=0.1)
    # and the weighted mean is unbiased for the truth expectation (Eq. 4): E_T[x] = 0, E_T[x^2] = 1.16
  assert np.mean(np.sum(w * x, 1) / np.sum(w, 1)) == pytest.approx(0.0, abs=4 * np.std(means) / 20)
  assert np.mean(np.sum(w * x**2, 1) / np.sum(w, 1)) == pytest.approx(1.16, rel=0.01)


def test_effective_sample_size_vs_brute_force():
  """Var of a self-normalised weighted mean of iid unit-variance values is 1 / N_eff."""
  rng = np.random.default_rng(2)
  w = rng.lognormal(0.0, 1.0, size=500)
  x = rng.normal(size=(20_000, w.size))
  var = np.var(x @ w / w.sum())
  assert 1.0 / var == pytest.approx(dl.effective_sample_size(w), rel=0.05)
  loop_sum, loop_sq = 0.0, 0.0
  for wi in w:  # brute-force loop of the formula
    loop_sum += wi
    loop_sq += wi * wi
  assert dl.effective_sample_size(w) == pytest.approx(loop_sum**2 / loop_sq, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=60), st.floats(1e-3, 1e3))
def test_effective_sample_size_properties(ws, scale):
  w = np.array(ws)
  n_eff = dl.effective_sample_size(w)
  assert 1.0 - 1e-9 <= n_eff <= w.size * (1 + 1e-9)
  assert dl.effective_sample_size(w * scale) == pytest.approx(n_eff, rel=1e-9)
  assert dl.effective_sample_size(np.full(w.size, scale)) == pytest.approx(w.size, rel=1e-12)


def test_weights_are_validated():
  with pytest.raises(ValueError, match="negative or not finite"):
    dl.effective_sample_size(np.array([1.0, -1.0]))
  with pytest.raises(ValueError, match="shape"):
    dl.mean_uncertainty(np.ones(3), np.ones(4))


@pytest.mark.parametrize("toy_name", ["bimodal", "circle"])
def test_ideal_weights_reproduce_truth_histogram(toy_name):
  """w = p_T / p_G on analytic densities: the weighted generated histogram equals the truth's expected
  counts within its statistical error (sqrt(sum w^2)) -- and the unweighted one does not."""
  toy = get_toy(toy_name)
  rng = np.random.default_rng(3)
  n = 200_000
  mu, sd = (0.2, 1.1) if toy.dim == 1 else (0.0, 1.0)
  x = rng.normal(mu, sd, size=(n, toy.dim))
  p_g = np.prod(stats.norm.pdf(x, mu, sd), axis=1)
  w = toy.density(x) / p_g
  edges = np.linspace(-2.0, 2.0, 41)
  inside = (x[:, 0] > edges[0]) & (x[:, 0] < edges[-1])
  counts, err = dl.weighted_histogram(x[inside, 0], edges, w[inside])
  unweighted, _ = dl.weighted_histogram(x[inside, 0], edges)
  if toy.dim == 1:
    cdf = _bimodal_cdf(edges)
  else:  # x0-marginal of Eq. 13: mixture of N(cos(2 pi i / 8), 0.1)
    cdf = np.mean([stats.norm.cdf(edges, m, 0.1) for m in toy.means_KxD[:, 0]], axis=0)
  expected = n * np.diff(cdf)
  ok = err > 0
  chi2 = np.sum(((counts - expected)[ok] / err[ok]) ** 2)
  assert stats.chi2.sf(chi2, ok.sum()) > 1e-3, chi2
  chi2_unweighted = np.sum(((unweighted - expected)[ok] / np.sqrt(unweighted[ok] + 1)) ** 2)
  assert stats.chi2.sf(chi2_unweighted, ok.sum()) < 1e-10


def test_equal_precision_ratio_matches_dilution():
  """Eq. 9 with the ideal weights: r^2 -> (N_T / N_G) * N_G,needed / N_T."""
  toy = get_toy("bimodal")
  rng = np.random.default_rng(4)
  n_t, n_g = 200_000, 400_000
  xt = np.asarray(toy.sample(jax.random.key(0), n_t))[:, 0]
  xg = rng.normal(0.0, 1.2, n_g)
  ideal = lambda v: toy.density(v[:, None]) / stats.norm.pdf(v, 0.0, 1.2)  # noqa: E731
  for f in (lambda v: v, lambda v: v**2, np.abs):
    r = dl.dilution(f(xg), ideal(xg), f(xt))
    assert r**2 == pytest.approx(n_t / n_g * dl.equal_precision_ratio(f(xt), ideal(xt)), rel=0.06)


def test_separation_noise_floor_matches_null_replicas():
  """Mean S^2 of two same-density (weighted) samples ~ the predicted floor."""
  rng = np.random.default_rng(5)
  edges = np.linspace(-3, 3, 31)
  s2, floor = [], []
  for _ in range(200):
    a, b = rng.normal(size=3000), rng.normal(size=2000)
    wb = rng.exponential(size=b.size)
    s2.append(separation_power(a, b, edges, None, wb))
    floor.append(dl.separation_noise_floor(a, b, edges, None, wb))
  assert np.mean(s2) == pytest.approx(np.mean(floor), rel=0.15)


def test_observable_report():
  rng = np.random.default_rng(6)
  truth = {"a": rng.normal(size=5000), "b": rng.exponential(size=5000)}
  gen = {"a": rng.normal(0.3, 1, 4000), "b": rng.exponential(size=4000)}
  w = np.exp(-0.3 * gen["a"])
  rep = dl.observable_report(truth, gen, w, n_bins=20)
  assert set(rep["observables"]) == {"a", "b"}
  a = rep["observables"]["a"]
  assert a["s2_ratio"] == pytest.approx(a["s2_weighted"] / a["s2_unweighted"])
  assert a["s2_weighted"] < 0.3 * a["s2_unweighted"]  # approximately the ideal weight for "a"
  assert rep["summary"]["n_eff"] == pytest.approx(dl.effective_sample_size(w))
  with pytest.raises(ValueError, match=r"generated: missing observable columns \['c'\]"):
    dl.observable_report({**truth, "c": truth["a"]}, gen, w)


def test_toy_densities_normalised_and_samplers_match():
  for name in ("bimodal", "circle", "grid"):
    toy = get_toy(name)
    lo, hi = toy.means_KxD.min() - 2.5, toy.means_KxD.max() + 2.5
    g = np.linspace(lo, hi, 1201 if toy.dim == 1 else 301)
    if toy.dim == 1:
      integral = np.trapezoid(toy.density(g[:, None]), g)
    else:
      xx, yy = np.meshgrid(g, g)
      integral = toy.density(np.stack([xx.ravel(), yy.ravel()], 1)).sum() * (g[1] - g[0]) ** 2
    assert integral == pytest.approx(1.0, abs=2e-3), name
  x = np.asarray(get_toy("bimodal").sample(jax.random.key(1), 20_000))[:, 0]
  assert stats.kstest(x, _bimodal_cdf).pvalue > 1e-3
  grid = get_toy("grid")
  x2 = np.asarray(grid.sample(jax.random.key(2), 50_000))
  cdf = lambda v: np.mean([stats.norm.cdf(v, m, 0.1) for m in np.arange(1, 6) + 0.1], axis=0)  # noqa: E731
  assert stats.kstest(x2[:, 1], cdf).pvalue > 1e-3
  obs = observables(x2, grid.center)
  assert set(obs) == {"x", "y", "x_plus_y", "x_minus_y", "radius", "angle"}
  assert np.median(obs["radius"]) < 2.5  # measured about the grid's centre (3.1, 3.1)
  with pytest.raises(ValueError, match="unknown DCTR toy"):
    get_toy("spiral")
