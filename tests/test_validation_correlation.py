"""Distance correlation against the dcor package; the chi of hgg Sec. 3.2 under the null and an alternative."""

import dcor
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ganjax.metrics import correlation as C


def _samples(n, rng):
  x = rng.normal(size=n)
  return {
      "gauss": x,
      "nonlin": x**2 + 0.3 * rng.normal(size=n),
      "ints": rng.integers(0, 4, size=n),  # integer column, many ties
      "rounded": np.round(x + rng.normal(size=n), 1),  # float ties
      "poisson": rng.poisson(2.0 + np.abs(x)).astype(np.int32),
      "binary": (x > 0.2).astype(float),
  }


@pytest.mark.parametrize("n", [6, 31, 400, 3000])
def test_dcor_matches_dcor_package(n):
  cols = _samples(n, np.random.default_rng(n))
  names = list(cols)
  m = C.distance_correlation_matrix(cols, names)
  for i, a in enumerate(names):
    for j, b in enumerate(names):
      ref = dcor.distance_correlation(np.asarray(cols[a], float), np.asarray(cols[b], float))
      assert abs(m[i, j] - ref) < 1e-8, (a, b)
  assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
  assert C.distance_correlation(cols["gauss"], cols["ints"]) == pytest.approx(m[0, 2], abs=1e-12)


@pytest.mark.parametrize("n", [40, 1000])
def test_u_dcor_sqr_matches_dcor_package(n):
  cols = _samples(n, np.random.default_rng(7 + n))
  names = list(cols)
  m = C.distance_correlation_matrix(cols, names, unbiased=True)
  for i, a in enumerate(names):
    for j, b in enumerate(names[i + 1:], start=i + 1):
      ref = dcor.u_distance_correlation_sqr(np.asarray(cols[a], float), np.asarray(cols[b], float))
      assert abs(m[i, j] - ref) < 1e-8, (a, b)


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 40).flatmap(
    lambda n: hnp.arrays(np.int64, (n, 2), elements=st.integers(-3, 3))))
def test_dcor_small_integer_samples_property(xy):
  ref = dcor.distance_correlation(xy[:, 0].astype(float), xy[:, 1].astype(float))
  assert abs(C.dcor_matrix_array(xy)[0, 1] - ref) < 1e-8


def _toy(n, rng, link=0.6):
  """Correlated 15-column toy: Gaussian AR(1) chain plus nonlinear, integer, binary and independent
  columns; `link` is the correlation of the first chain link (the alternative changes only it)."""
  rho = 0.6
  g = [rng.normal(size=n)]
  for k in range(5):
    r = link if k == 0 else rho
    g.append(r * g[-1] + np.sqrt(1 - r**2) * rng.normal(size=n))
  cols = g + [
      np.exp(g[0]),
      g[1]**2 + 0.5 * rng.normal(size=n),
      rng.poisson(np.exp(0.3 * g[2]) + 1.0).astype(float),
      rng.uniform(-np.pi, np.pi, size=n),
      np.abs(g[3] - g[4]),
      np.round(g[5], 1),
      rng.exponential(size=n) * (1 + np.abs(g[0])),
      (g[1] > 0.3).astype(float),
      rng.normal(size=n),
  ]
  return np.stack(cols, axis=1)


NAMES = [f"c{i}" for i in range(15)]


def test_chi_two_samples_of_one_distribution_is_about_one():
  """Under the null each sqrt(chi2_ij) is ~|N(0,1)|: E[chi] = sqrt(2/pi) = 0.80 and pulls have unit spread.
  Unequal sample sizes on purpose (the equal batch size must cancel the finite-n bias of dCor)."""
  chis, pulls = [], []
  for s in range(6):
    rng = np.random.default_rng(100 + s)
    r = C.dcor_chi(_toy(8000, rng), _toy(14000, rng), NAMES, n_batches=20, seed=s)
    chis.append(r["chi"])
    d = np.array(r["d_cr"]) - np.array(r["d_sr"])
    iu = np.triu_indices(15, 1)
    pulls.append(d[iu] / np.array(r["sigma"])[iu])
    assert 0.5 < r["chi"] < 1.3
  pulls = np.concatenate(pulls)
  assert abs(np.mean(chis) - np.sqrt(2 / np.pi)) < 0.13, chis
  assert 0.8 < np.std(pulls) < 1.3
  assert abs(np.mean(pulls)) < 0.2  # no bias from the different sample sizes


def test_chi_detects_changed_correlation_and_names_the_pair():
  rng = np.random.default_rng(5)
  r = C.dcor_chi(_toy(20000, rng), _toy(20000, rng, link=0.3), NAMES)
  assert r["chi"] > 2.0
  top = r["pairs_above_threshold"][0]
  assert top["pair"] == ["c0", "c1"] and top["sqrt_chi2"] > 10
  assert top["d_sr"] > top["d_cr"]
  m = np.array(r["sqrt_chi2"])
  assert np.allclose(m, m.T) and np.all(np.diag(m) == 0)
  # pairs not involving the chain head c0/c1 or their functions stay compatible
  untouched = [i for i in range(15) if i not in (0, 1, 6, 7, 12, 13)]
  assert np.median(m[np.ix_(untouched, untouched)][np.triu_indices(len(untouched), 1)]) < 1.5


def test_bad_input_is_named():
  cols = {"a": np.arange(10.0), "b": np.ones(10), "c": np.r_[np.nan, np.arange(9.0)]}
  with pytest.raises(ValueError, match="SR: missing columns \\['z'\\]"):
    C.distance_correlation_matrix(cols, ["a", "z"], sample="SR")
  with pytest.raises(ValueError, match="'b' is constant"):
    C.distance_correlation_matrix(cols, ["a", "b"])
  with pytest.raises(ValueError, match="'c' has 1 non-finite"):
    C.distance_correlation_matrix(cols, ["a", "c"])
  with pytest.raises(ValueError, match="batches"):
    C.dcor_chi(np.random.rand(100, 2), np.random.rand(100, 2), ["a", "b"], n_batches=20)
