"""Tests of the table reader, the Z -> mu mu features and the analysis-specific preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import load_config
from scipy import stats

from ganjax.data import asg_features, zmumu
from ganjax.data.tables import read_table


# ---- read_table ---------------------------------------------------------------------------------

def _write_csv(path, cols):
  names = list(cols)
  rows = np.stack([np.asarray(cols[n], np.float64) for n in names], 1)
  np.savetxt(path, rows, delimiter=",", header=",".join(names), comments="")


def test_read_table_selects_renames_and_reports_missing_column(tmp_path):
  path = str(tmp_path / "t.csv")
  _write_csv(path, {"a": [1.0, 2.0], "b": [3.0, 4.0]})
  out = read_table(path, columns=["b"], rename={"b": "bee"})
  assert list(out) == ["bee"] and np.allclose(out["bee"], [3.0, 4.0])
  with pytest.raises(ValueError, match=r"t\.csv.*\['zz'\] not found.*available columns: \['a', 'b'\]"):
    read_table(path, columns=["a", "zz"])
  with pytest.raises(ValueError, match="not found"):
    read_table(path, rename={"zz": "a"})


def test_read_table_reports_nan_with_column_and_count(tmp_path):
  path = str(tmp_path / "n.csv")
  _write_csv(path, {"a": [1.0, np.nan, np.inf], "b": [1.0, 2.0, 3.0]})
  with pytest.raises(ValueError, match=r"n\.csv: column 'a' has 2 NaN/inf value\(s\) out of 3 rows"):
    read_table(path)
  assert np.allclose(read_table(path, columns=["b"])["b"], [1, 2, 3])


def test_read_table_parquet_and_root_agree_with_csv(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  import uproot

  cols = {"x": np.arange(5.0), "y": np.linspace(0, 1, 5)}
  pq.write_table(pa.table(cols), str(tmp_path / "t.parquet"))
  with uproot.recreate(str(tmp_path / "t.root")) as f:  # a TTree
    f.mktree("Events", {k: np.float64 for k in cols})
    f["Events"].extend(cols)
  with uproot.recreate(str(tmp_path / "n.root")) as f:  # uproot's default: an RNTuple
    f["Events"] = cols
  for name in ("t.parquet", "t.root", "n.root"):
    out = read_table(str(tmp_path / name), columns=["y", "x"], rename={"x": "xx"})
    assert list(out) == ["y", "xx"]
    np.testing.assert_array_equal(out["xx"], cols["x"])
  with pytest.raises(ValueError, match=r"\['w'\] not found.*'x', 'y'"):
    read_table(str(tmp_path / "t.root"), columns=["w"])
  with pytest.raises(ValueError, match="no TTree 'Tree'"):
    read_table(str(tmp_path / "t.root"), tree="Tree")
  with uproot.recreate(str(tmp_path / "j.root")) as f:
    f["Events"] = {"pt": __import__("awkward").Array([[1.0, 2.0], [3.0]])}
  with pytest.raises(ValueError, match="column 'pt' is jagged"):
    read_table(str(tmp_path / "j.root"))


def test_packaged_csv_is_complete():
  raw = read_table(zmumu.CSV_PATH, columns=zmumu.RAW_COLUMNS)
  assert len(raw["pt1"]) == 10583 and set(np.unique(raw["Q1"])) == {-1, 1}


# ---- rotation and invariant mass ----------------------------------------------------------------

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.5, 500, **finite), st.floats(-np.pi, np.pi, **finite),
       st.floats(0.5, 500, **finite), st.floats(-np.pi, np.pi, **finite))
def test_rotation_is_exactly_invertible(pt1, phi1, pt2, phi2):
  px1, py1, px2, py2 = pt1 * np.cos(phi1), pt1 * np.sin(phi1), pt2 * np.cos(phi2), pt2 * np.sin(phi2)
  px1r, py1r, px2r, angle = zmumu.rotate(px1, py1, px2, py2)
  back = zmumu.unrotate(px1r, py1r, px2r, angle)
  scale = max(pt1, pt2)
  np.testing.assert_allclose(back, (px1, py1, px2, py2), rtol=0, atol=4e-16 * scale)
  # invariants: pT's and the opening angle are unchanged, muon 2 lies on +x
  assert np.isclose(np.hypot(px1r, py1r), pt1, rtol=1e-14) and np.isclose(px2r, pt2, rtol=1e-14)
  dphi = np.angle(np.exp(1j * (phi1 - phi2)))
  assert np.isclose(np.cos(np.arctan2(py1r, px1r) - dphi), 1.0, atol=1e-12)


def test_features_mll_matches_pt_eta_phi_formula():
  raw = read_table(zmumu.CSV_PATH, columns=zmumu.RAW_COLUMNS)
  f = zmumu.features_from_raw(raw, "reduced")
  ordered = zmumu.order_muons(raw, raw["pt1"] >= raw["pt2"])
  pt1, eta1, phi1 = ordered["pt1"], ordered["eta1"], ordered["phi1"]
  pt2, eta2, phi2 = ordered["pt2"], ordered["eta2"], ordered["phi2"]
  m = zmumu.MUON_MASS
  e1, e2 = np.sqrt((pt1 * np.cosh(eta1)) ** 2 + m ** 2), np.sqrt((pt2 * np.cosh(eta2)) ** 2 + m ** 2)
  m2 = 2 * m ** 2 + 2 * (e1 * e2 - pt1 * pt2 * (np.cos(phi1 - phi2) + np.sinh(eta1) * np.sinh(eta2)))
  np.testing.assert_allclose(np.asarray(zmumu.mll({k: np.asarray(v) for k, v in f.items()})),
                             np.sqrt(m2), rtol=1e-4)
  assert np.all((np.sqrt(m2) > 60) & (np.sqrt(m2) < 120))
  np.testing.assert_allclose(np.asarray(zmumu.dphi(f)), np.angle(np.exp(1j * (phi1 - phi2))), atol=1e-4)
  np.testing.assert_allclose(np.asarray(zmumu.DERIVED["eta1"](f)), eta1, atol=1e-4)
  assert np.all(np.hypot(f["px1"], f["py1"]) >= f["px2"] * (1 - 1e-12))  # muon 1 leads in pT


def test_mll_of_generated_cartesian_features_equals_formula():
  rng = np.random.default_rng(1)
  f = {k: rng.normal(0, 30, 1000).astype(np.float32) for k in zmumu.REDUCED}
  f["E1"] = np.abs(f["E1"]) + 80.0
  f["E2"] = np.abs(f["E2"]) + 80.0
  p1 = np.stack([f["px1"], f["py1"], f["pz1"]]).astype(np.float64)
  p2 = np.stack([f["px2"], np.zeros(1000), f["pz2"]])
  e1, e2 = f["E1"].astype(np.float64), f["E2"].astype(np.float64)
  m1sq, m2sq = e1 ** 2 - (p1 ** 2).sum(0), e2 ** 2 - (p2 ** 2).sum(0)  # off-shell generated muons
  ref = np.sqrt(m1sq + m2sq + 2 * (e1 * e2 - (p1 * p2).sum(0)))
  got = np.asarray(jax.jit(zmumu.mll)({k: jnp.asarray(v) for k, v in f.items()}))
  np.testing.assert_allclose(got, ref, rtol=2e-5)


def test_full_model_orders_by_charge_and_drops_same_sign():
  raw = read_table(zmumu.CSV_PATH, columns=zmumu.RAW_COLUMNS)
  f = zmumu.features_from_raw(raw, "full")
  os_mask = raw["Q1"] * raw["Q2"] < 0
  assert len(f["px1"]) == int(os_mask.sum()) == 10227
  iso_plus = np.where(raw["Q1"] > 0, raw["iso1"], raw["iso2"])[os_mask]
  np.testing.assert_array_equal(f["iso1"], iso_plus)
  assert set(zmumu.FULL) <= set(f)


# ---- preprocessing: discrete smearing, zero spike ---------------------------------------------

def test_gaussian_smearing_and_floor_gives_back_integer_distribution():
  rng = np.random.default_rng(0)
  n = rng.poisson(25, 200_000).astype(np.float64)
  key = jax.random.PRNGKey(0)
  for sigma in (0.5, 0.15):
    pre, raw = asg_features.fit({"n": n}, ["n"], discrete={"n": sigma})
    u = asg_features.augment(pre.param_D, pre.width_D, pre.kinds, jnp.asarray(raw), key)
    back = np.asarray(asg_features.decode(pre, asg_features.standardize(pre, u))["n"])
    vals = np.arange(5, 50)
    h_true = np.array([(n == v).sum() for v in vals])
    h_back = np.array([(back == v).sum() for v in vals])
    # exact expectation: the true histogram convolved with the floor kernel of N(n + 1/2, sigma)
    k = np.arange(-3, 4)
    kern = stats.norm.cdf((k + 0.5) / sigma) - stats.norm.cdf((k - 0.5) / sigma)
    expected = np.convolve(h_true, kern[::-1], mode="same")
    chi2 = np.sum((h_back - expected) ** 2 / np.maximum(expected, 1))
    assert chi2 < len(vals) + 5 * np.sqrt(2 * len(vals)), (sigma, chi2)
    assert abs(back.mean() - n.mean()) < 0.02  # centring on n + 1/2 preserves the mean
    tv = 0.5 * np.abs(h_back - h_true).sum() / n.size
    assert tv < (0.01 if sigma == 0.15 else 0.03), (sigma, tv)
  # the paper's literal recipe (centre n, floor) shifts the mean by -1/2
  literal = np.floor(n + 0.5 * rng.standard_normal(n.size))
  assert abs(literal.mean() - n.mean() + 0.5) < 0.01


def test_zero_spike_roundtrip_and_smooth_encoding():
  rng = np.random.default_rng(0)
  x = np.where(rng.random(50_000) < 0.66, 0.0, rng.lognormal(0.0, 1.0, 50_000) + 0.15)
  pre, raw = asg_features.fit({"iso": x}, ["iso"], zero_spike=("iso",))
  u = asg_features.augment(pre.param_D, pre.width_D, pre.kinds, jnp.asarray(raw), jax.random.PRNGKey(3))
  # no spike left in model space: the most populated value is unique
  assert np.unique(np.asarray(u)).size > 0.99 * x.size
  back = np.asarray(asg_features.decode(pre, asg_features.standardize(pre, u))["iso"])
  np.testing.assert_allclose(back, x, rtol=2e-6)
  assert np.mean(back == 0) == np.mean(x == 0)
  with pytest.raises(ValueError, match="'iso' has 1 negative"):
    asg_features.fit({"iso": np.array([0.0, 1.0, -1.0])}, ["iso"], zero_spike=("iso",))
  with pytest.raises(ValueError, match=r"features \['nope'\] not in the table"):
    asg_features.fit({"iso": x}, ["nope"])


def test_asinh_and_continuous_roundtrip():
  rng = np.random.default_rng(2)
  cols = {"a": rng.normal(0, 50, 1000), "d": rng.standard_cauchy(1000) * 0.01}
  pre, raw = asg_features.fit(cols, ["a", "d"], asinh={"d": 0.01})
  u = asg_features.augment(pre.param_D, pre.width_D, pre.kinds, jnp.asarray(raw), jax.random.PRNGKey(0))
  back = asg_features.decode(pre, asg_features.standardize(pre, u))
  np.testing.assert_allclose(np.asarray(back["a"]), cols["a"], rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(np.asarray(back["d"]), cols["d"], rtol=1e-3, atol=1e-7)


def test_full_smear_charges_are_discrete_features():
  config = load_config("zmumu:full_smear")
  f = zmumu.load(config)
  assert len(f["Q1"]) == 10583 and set(np.unique(f["Q1"])) == {0.0, 1.0}
  m = config.model
  pre, raw = asg_features.fit(f, m.features, discrete=dict(m.discrete), zero_spike=tuple(m.zero_spike),
                              asinh=dict(m.asinh))
  j = m.features.index("Q1")
  u = asg_features.augment(pre.param_D, pre.width_D, pre.kinds, jnp.asarray(raw), jax.random.PRNGKey(0))
  q1 = np.asarray(asg_features.decode(pre, asg_features.standardize(pre, u))["Q1"])
  # sigma = 0.15: floor(n + 1/2 + sigma z) != n with probability 2 Phi(-0.5 / 0.15) ~ 9e-4
  assert pre.kinds[j] == "discrete" and np.mean(q1 != f["Q1"]) < 2e-3


def test_config_presets_match_the_analysis_module():
  """configs/zmumu.py inlines the feature tuples (configs import nothing from ganjax): they must stay the
  analysis module's; every preset loads, ',adam' switches the optimizer."""
  assert load_config("zmumu:reduced").model.features == zmumu.REDUCED
  for preset in ("full", "full_rawiso"):
    assert load_config(f"zmumu:{preset}").model.features == zmumu.FULL
  assert load_config("zmumu:full_smear").model.features == zmumu.FULL + ("Q1", "Q2")
  opt = load_config("zmumu:reduced,adam").train.optimizer
  assert (opt.name, opt.learning_rate, opt.b1) == ("adam", 2e-4, 0.5)
  assert load_config("zmumu:test").train.optimizer.name == "adadelta"
  shell = load_config("zmumu:reduced,shell").regression
  assert list(shell.terms) == ["mll", "mll_peak", "offshell1", "offshell2"]
  assert all("offshell1+offshell2" in t for t in shell.member_terms)
  assert set(load_config("zmumu:reduced").regression.terms) | set(load_config("zmumu:reduced").regression.distribution) \
      <= set(zmumu.DERIVED)
  from conftest import ROOT
  src = open(f"{ROOT}/configs/zmumu.py").read()
  assert "import ganjax" not in src and "from ganjax" not in src
  with pytest.raises(ValueError, match="unknown preset"):
    load_config("zmumu:nope")
