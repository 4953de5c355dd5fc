"""S^2 and KS of ganjax.metrics.onedim against scipy.stats and numpy brute force."""

import numpy as np
import pytest
import scipy.stats

from ganjax.metrics import onedim


@pytest.mark.parametrize("n1,n2,ties", [(7, 11, False), (500, 800, True), (20000, 15000, False)])
def test_ks_matches_scipy(n1, n2, ties):
  rng = np.random.default_rng(n1)
  a, b = rng.normal(size=n1), rng.normal(0.1, 1.2, size=n2)
  if ties:
    a, b = np.round(a, 1), rng.integers(-2, 3, size=n2).astype(float)
  d, p = onedim.ks_2samp(a, b)
  ref = scipy.stats.ks_2samp(a, b, method="asymp")
  assert d == pytest.approx(ref.statistic, abs=1e-12)
  assert p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)


def test_weighted_ks_equals_repeated_sample_and_brute_force():
  rng = np.random.default_rng(3)
  a, b = np.round(rng.normal(size=300), 1), rng.normal(0.3, 1.0, size=200)
  wa, wb = rng.integers(0, 4, size=300), rng.integers(1, 3, size=200)
  d, _ = onedim.ks_2samp(a, b, wa, wb)
  assert d == pytest.approx(scipy.stats.ks_2samp(np.repeat(a, wa), np.repeat(b, wb)).statistic, abs=1e-12)
  # brute force: weighted ECDFs on every data point
  t = np.concatenate([a, b])
  fa = (wa[None, :] * (a[None, :] <= t[:, None])).sum(1) / wa.sum()
  fb = (wb[None, :] * (b[None, :] <= t[:, None])).sum(1) / wb.sum()
  assert d == pytest.approx(np.max(np.abs(fa - fb)), abs=1e-12)
  # uniform non-integer weights change nothing
  assert onedim.ks_2samp(a, b, np.full(300, 0.37), None)[0] == pytest.approx(onedim.ks_2samp(a, b)[0])


def _brute_s2(x, y, edges, wx=None, wy=None):
  x, y = np.clip(x, edges[0], edges[-1]), np.clip(y, edges[0], edges[-1])
  wx = np.ones_like(x) if wx is None else wx
  wy = np.ones_like(y) if wy is None else wy
  s = 0.0
  for k in range(len(edges) - 1):
    last = k == len(edges) - 2
    inx = (x >= edges[k]) & ((x <= edges[k + 1]) if last else (x < edges[k + 1]))
    iny = (y >= edges[k]) & ((y <= edges[k + 1]) if last else (y < edges[k + 1]))
    h1, h2 = wx[inx].sum() / wx.sum(), wy[iny].sum() / wy.sum()
    if h1 + h2 > 0:
      s += 0.5 * (h1 - h2)**2 / (h1 + h2)
  return s


def test_onedim_table_s2_ks_and_histograms():
  rng = np.random.default_rng(0)
  n = 4000
  sr = {"pt": rng.exponential(30, n) + 20, "nj": rng.poisson(2, n).astype(np.float32), "w": rng.uniform(0.5, 1.5, n)}
  cr = {"pt": rng.exponential(20, n) + 20, "nj": rng.poisson(2.5, n), "w": np.ones(n)}
  ganed = {"pt": rng.exponential(29, n) + 20, "nj": rng.poisson(2, n), "w": np.ones(n)}
  for weight in (None, "w"):
    rows, hists = onedim.onedim_table(sr, {"ganed": ganed, "cr": cr}, ["pt", "nj"], weight=weight)
    for row in rows:
      obs = row["observable"]
      edges = np.asarray(hists[obs]["edges"])
      wref = sr["w"] if weight else None
      for name, s in (("ganed", ganed), ("cr", cr)):
        ws = s["w"] if weight else None
        assert row["s2"][name] == pytest.approx(_brute_s2(s[obs], sr[obs], edges, ws, wref), rel=1e-10)
        assert row["ks"][name] == pytest.approx(onedim.ks_2samp(s[obs], sr[obs], ws, wref)[0])
        assert np.sum(hists[obs][name]["counts"]) == pytest.approx(np.sum(ws) if weight else n)
      assert row["s2"]["ganed"] < row["s2"]["cr"] and row["ks"]["ganed"] < row["ks"]["cr"]
  nj_edges = np.asarray(hists["nj"]["edges"])
  assert np.allclose(np.diff(nj_edges), 1.0) and nj_edges[0] % 1 == 0.5  # integer observable: unit bins
  assert len(hists["pt"]["edges"]) == 51


def test_identical_and_disjoint_limits():
  x = np.arange(100.0)
  rows, _ = onedim.onedim_table({"x": x}, {"same": {"x": x}, "far": {"x": x + 1000}}, ["x"])
  assert rows[0]["s2"]["same"] == 0 and rows[0]["ks"]["same"] == 0
  assert rows[0]["ks"]["far"] == 1.0
  with pytest.raises(ValueError, match="far: column 'x' has 1 non-finite"):
    onedim.onedim_table({"x": x}, {"far": {"x": np.r_[np.nan, x[1:]]}}, ["x"])
  with pytest.raises(ValueError, match="2 weights for 3 values"):
    onedim.ks_2samp([1, 2, 3], [1, 2], [1, 1], None)


def test_s2_floor_matches_its_large_sample_expectation_and_brute_force():
  """The S^2 floor (two samples of one distribution) against (B - 1)(1/n1 + 1/n2)/4 and against S^2 of
  pairs of samples drawn directly with numpy."""
  from ganjax.metrics.separation import separation_power, separation_power_floor
  rng = np.random.default_rng(0)
  edges = np.linspace(-3, 3, 31)
  ref = rng.normal(size=200_000)
  counts, _ = np.histogram(np.clip(ref, -3, 3), edges)
  floor = separation_power_floor(counts, 20_000, 8_000, n_rep=300, seed=1)
  assert floor["mean"] == pytest.approx(floor["expected"], rel=0.1)
  direct = [separation_power(rng.choice(ref, 20_000), rng.choice(ref, 8_000), edges) for _ in range(100)]
  assert floor["mean"] == pytest.approx(np.mean(direct), rel=0.1)
  assert floor["mean"] < floor["q"] < 2 * floor["mean"]
