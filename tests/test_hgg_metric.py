"""-2 ln Lambda (Eq. 2) against a numpy brute force; the one-call S-sample histogram equals S calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ganjax.data.preprocess import fit_quantile_transform
from ganjax.metrics import likelihood
from ganjax.models.dcgan import Generator
from ganjax.hgg import metric


def _brute_force_nll(real_u, gen_u, n_bins):
  """Loop over bins with explicit edges: -2 sum_k m_k ln(n_k / N_gen), empty bins at half a count."""
  edges = np.linspace(-1, 1, n_bins + 1)
  k = real_u.shape[1]
  def which(u):
    return np.array([[min(max(np.searchsorted(edges, v, side="right") - 1, 0), n_bins - 1) for v in row]
                     for row in u])
  rb, gb = which(real_u), which(gen_u)
  total = 0.0
  for cell in {tuple(r) for r in rb}:
    m = np.sum(np.all(rb == cell, axis=1))
    n = np.sum(np.all(gb == cell, axis=1))
    total += -2.0 * m * np.log(max(n, 0.5) / len(gen_u))
  return total


def test_neg2lnl_matches_brute_force():
  rng = np.random.default_rng(1)
  real = np.clip(rng.normal(0, 0.5, (300, 3)), -1, 1)
  gen = np.clip(rng.normal(0.1, 0.6, (900, 3)), -1, 1)
  n_bins = 4
  m = np.bincount(likelihood.flat_bin_index(real, n_bins), minlength=n_bins ** 3)
  n = np.asarray(likelihood.histogram(jnp.asarray(gen), n_bins))
  assert n.sum() == 900
  np.testing.assert_allclose(likelihood.neg2_log_likelihood(m, n), _brute_force_nll(real, gen, n_bins),
                             rtol=1e-10)


def test_histogram_mask_and_edges():
  u = jnp.array([[-1.0], [-0.999], [0.0], [0.999], [1.0], [0.5]])
  h = likelihood.histogram(u, 2, mask_N=jnp.array([1, 1, 1, 1, 1, 0]))
  np.testing.assert_array_equal(np.asarray(h), [2, 3])


def _setup():
  rng = np.random.default_rng(0)
  gen_features = ("fake_pt", "fake_eta", "fake_phi", "fake_id")
  dims = ("fake_pt", "fake_eta", "ptgg_over_mgg")
  phys = np.stack([rng.exponential(20, 400) + 30, rng.normal(0, 1, 400), rng.uniform(-3.1, 3.1, 400),
                   rng.uniform(-1, 1, 400)], -1)
  gen_qt = fit_quantile_transform(phys, 50)
  ratio_qt = fit_quantile_transform(rng.exponential(0.3, (400, 1)), 50)
  metric_qt = type(gen_qt)(knots_DxQ=np.stack([gen_qt.knots_DxQ[0], gen_qt.knots_DxQ[1],
                                               ratio_qt.knots_DxQ[0]]), probs_Q=gen_qt.probs_Q)
  aux = {"pho_pt": rng.exponential(20, 150) + 40, "pho_eta": rng.normal(0, 1, 150),
         "pho_phi": rng.uniform(-3, 3, 150)}
  cond = rng.uniform(-1, 1, (150, 2))
  events = metric.pad_events(cond, aux, chunk=64)  # 150 events -> 3 chunks of 56 (18 padded)
  g = Generator(n_out=4, width=0.125)
  params = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)), jnp.zeros((1, 2)))
  hist = jax.jit(metric.make_histogram_fn(g, 5, gen_features, dims, gen_qt, metric_qt, 5, 64))
  return g, params, hist, events


def test_one_call_equals_separate_calls():
  _, params, hist, events = _setup()
  key = jax.random.PRNGKey(3)
  together = np.asarray(hist(params, key, events, jnp.arange(6)))
  separate = sum(np.asarray(hist(params, key, events, jnp.array([s]))) for s in range(6))
  assert together.sum() == 6 * 150  # padding is not counted
  np.testing.assert_array_equal(together, separate)


def test_histogram_fn_matches_direct_generation():
  g, params, hist, events = _setup()
  key = jax.random.PRNGKey(5)
  counts = np.asarray(hist(params, key, events, jnp.array([2])))
  # Regenerate sample 2 by hand, chunk by chunk, and bin it.
  ks = jax.random.fold_in(key, 2)
  us = []
  assert metric.chunk_layout(150, 64) == (3, 56) and events.cond.shape[0] == 168
  for c in range(3):
    z = jax.random.normal(jax.random.fold_in(ks, c), (56, 5))
    y = g.apply(params, z, events.cond[c * 56:(c + 1) * 56])
    us.append(np.asarray(y))
  assert counts.sum() == 150
  gen_u = np.concatenate(us)[:150]
  # Marginalise the third dimension (the slowest-varying flat index) and compare with direct binning.
  np.testing.assert_array_equal(counts.reshape(5, 5, 5).sum(0).ravel(),
                                np.bincount(likelihood.flat_bin_index(gen_u[:, :2], 5), minlength=25))


def test_relative_coordinates_back_to_physical():
  """Features generated relative to the parent jet get the jet added back, phi wrapped into [-pi, pi)."""
  g = np.array([[50.0, 0.1, 0.3, 0.5], [40.0, -0.2, -0.4, 0.1]])
  aux = {"jet_eta": np.array([1.0, -2.0]), "jet_phi": np.array([3.0, -3.0])}
  phys = metric.to_physical(g, aux, ("fake_pt", "fake_eta", "fake_phi", "fake_id"),
                              {"fake_eta": "jet_eta", "fake_phi": "jet_phi"})
  np.testing.assert_allclose(phys["fake_eta"], [1.1, -2.2])
  np.testing.assert_allclose(phys["fake_phi"], [3.3 - 2 * np.pi, -3.4 + 2 * np.pi])
  np.testing.assert_allclose(phys["fake_pt"], g[:, 0])


_KIN = st.tuples(st.floats(20.0, 300.0), st.floats(-2.4, 2.4), st.floats(-3.14, 3.14), st.floats(-2.4, 2.4),
                 st.floats(-3.14, 3.14), st.floats(1.0, 600.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(_KIN, min_size=1, max_size=30))
def test_fake_pt_window_is_the_preselection(rows):
  """The fake pT passes the preselection's kinematic cuts (m_gg window, pT/m) exactly inside the window when
  the two pT pieces meet (C < 4.5), and never outside it; against gjets.preselection itself."""
  from ganjax.data import gjets
  a = np.asarray(rows, np.float64)
  cols = dict(pho_pt=a[:, 0], pho_eta=a[:, 1], pho_phi=a[:, 2], fake_eta=a[:, 3], fake_phi=a[:, 4],
              fake_pt=a[:, 5], pho_id=np.ones(len(a)))
  cols["pho_eta"], cols["fake_eta"] = 0.5 * cols["pho_eta"], 0.5 * cols["fake_eta"]  # in the barrel
  cols.update(gjets.diphoton(cols["pho_pt"], cols["pho_eta"], cols["pho_phi"], cols["fake_pt"],
                             cols["fake_eta"], cols["fake_phi"]))
  passes = gjets.preselection(cols)
  lo, hi = gjets.fake_pt_window(cols["pho_pt"], cols["pho_eta"], cols["pho_phi"], cols["fake_eta"],
                                cols["fake_phi"])
  inside = (cols["fake_pt"] > lo * (1 + 1e-9)) & (cols["fake_pt"] < hi * (1 - 1e-9))
  edge = (np.abs(cols["fake_pt"] / lo - 1) < 1e-9) | (np.abs(cols["fake_pt"] / hi - 1) < 1e-9)
  c = np.cosh(cols["pho_eta"] - cols["fake_eta"]) - np.cos(cols["pho_phi"] - cols["fake_phi"])
  assert not np.any(passes & ~inside & ~edge)
  assert not np.any(inside & ~passes & (c < 4.5) & ~edge)


@pytest.mark.parametrize("window", [metric.PRESELECTION, metric.WINDOW])
@settings(max_examples=100, deadline=None)
@given(st.lists(_KIN, min_size=1, max_size=30), st.floats(0.001, 0.999))
def test_preselection_window_coordinate_round_trip(window, rows, frac):
  """fake pT -> log((pT - lo) / pT_gamma) [- log(1 - (pT - lo) / (hi - lo)) for the two-sided window] -> back,
  numpy (float64) and jax (float32), through to_physical with the recoil-relative phi and the window: the
  physical fake is recovered; any model value, however large, maps into the window."""
  a = np.asarray(rows, np.float64)
  pho = dict(pho_pt=a[:, 0], pho_eta=0.5 * a[:, 1], pho_phi=a[:, 2])
  fake_eta, fake_phi = 0.5 * a[:, 3], a[:, 4]
  lo, hi = metric.pt_window(pho, {"fake_eta": fake_eta, "fake_phi": fake_phi})
  ok = (hi > lo * 1.01) & (lo < 1e4)  # not the collinear limit (m -> 0 needs a pT beyond any real one)
  pt = lo + frac * (hi - lo)
  upper = hi if window == metric.WINDOW else None
  v = metric.window_to_model(pt, lo, pho["pho_pt"], upper)
  recoil = metric.reference(pho, metric.RECOIL_PHI)
  np.testing.assert_allclose(np.abs(recoil - pho["pho_phi"]), np.pi, atol=1e-9)  # modulo the wrap
  g = np.stack([v, fake_eta, metric.to_relative(fake_phi, recoil, "fake_phi"), np.zeros(len(a))], -1)
  names, rel = ("fake_pt", "fake_eta", "fake_phi", "fake_id"), {"fake_phi": metric.RECOIL_PHI,
                                                                 "fake_pt": window}
  phys = metric.to_physical(g, pho, names, rel)
  np.testing.assert_allclose(phys["fake_phi"], fake_phi, atol=1e-9)
  np.testing.assert_allclose(phys["fake_pt"][ok], pt[ok], rtol=1e-9)
  phys_j = metric.to_physical(jnp.asarray(g, jnp.float32), {k: jnp.asarray(x, jnp.float32) for k, x in pho.items()},
                              names, rel)
  np.testing.assert_allclose(np.asarray(phys_j["fake_pt"])[ok], pt[ok], rtol=2e-3)
  i = int(np.argmax(ok)) if ok.any() else 0
  extreme = metric.model_to_window(np.array([-1e4, -30.0, 0.0, 5.0] + ([] if upper is None else [30.0, 1e4])),
                                   lo[i], pho["pho_pt"][i], None if upper is None else upper[i])
  assert np.all(extreme >= lo[i]) and np.all(np.isfinite(extreme))
  if upper is None:
    np.testing.assert_allclose(v[ok], np.log((pt[ok] - lo[ok]) / pho["pho_pt"][ok]))
  else:
    assert np.all(extreme <= hi[i] * (1 + 1e-12)) or not ok.any()
    # the logit of the position in the window, shifted by ln((hi - lo) / pT_gamma): far below hi the one-sided one
    np.testing.assert_allclose(v[ok], np.log(frac / (1 - frac)) + np.log((hi[ok] - lo[ok]) / pho["pho_pt"][ok]),
                               rtol=1e-7, atol=1e-7)


def test_momentum_relative_to_a_reference_is_a_log_ratio():
  pt, ref = np.array([10.0, 55.0, 300.0]), np.array([50.0, 50.0, 100.0])
  v = metric.to_relative(pt, ref, "fake_pt")
  np.testing.assert_allclose(v, np.log(pt / ref))
  np.testing.assert_allclose(metric.from_relative(v, ref, "fake_pt"), pt)
  np.testing.assert_allclose(np.asarray(metric.from_relative(jnp.asarray(v), jnp.asarray(ref), "fake_pt")), pt,
                             rtol=1e-6)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 200_000), chunk_units=st.integers(1, 4096), devices=st.sampled_from([1, 2, 8]))
def test_chunk_layout_covers_the_events_with_little_padding(n, chunk_units, devices):
  """Equal chunks of at most `chunk`, device-divisible, padding below one `multiple` per chunk, and the
  layout recovered from the padded length alone (what the jitted histogram sees)."""
  multiple = 8 * devices
  chunk = chunk_units * devices  # check_config: metric.chunk is a multiple of the device count
  n_chunks, size = metric.chunk_layout(n, chunk, multiple)
  assert n_chunks * size >= n and size <= chunk and size % devices == 0
  assert n_chunks == -(-n // chunk)
  assert n_chunks * size - n < n_chunks * multiple
  assert metric.chunk_of(n_chunks * size, chunk) == (n_chunks, size)


def test_metric_spread_falls_like_one_over_sqrt_s():
  """Real counts drawn from the generator itself (every real bin is covered): the std of -2lnL over latent
  keys at S=8 is smaller than at S=1 by at least ~sqrt(8) = 2.8 (Poisson noise of the generated histogram;
  more here, 4.5, because at S=1 many real bins are empty and take the half-count penalty), and matches a
  brute-force recomputation."""
  _, params, hist, events = _setup()
  real = np.asarray(hist(params, jax.random.PRNGKey(99), events, jnp.arange(1)))
  spread = metric.metric_spread(hist, params, events, real, (1, 8), n_keys=24)
  ratio = spread["S1"]["std"] / spread["S8"]["std"]
  assert 2.0 < ratio < 9.0, ratio
  brute = [likelihood.neg2_log_likelihood(real, hist(params, jax.random.PRNGKey(10_000 + k), events, jnp.arange(8)))
           for k in range(24)]
  np.testing.assert_allclose(spread["S8"]["std"], np.std(brute, ddof=1), rtol=1e-12)
