"""The analysis-specific generator's data interface (data.source / tree / columns / mass window, analysis= a
plain module), the mass-peak figures against scipy and known Gaussians, and the figures' labels."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, load_config
from scipy import stats

from ganjax.asg import data as adata
from ganjax.asg import metrics as ametrics
from ganjax.data import zmumu
from ganjax.data.tables import read_table

N = 400  # events of the packaged CSV written to the test files
# our name -> the name in a "foreign" file (a different experiment's ntuple convention)
FOREIGN = {"pt1": "mu1_pt", "eta1": "mu1_eta", "phi1": "mu1_phi", "pt2": "mu2_pt", "eta2": "mu2_eta",
           "phi2": "mu2_phi"}
MAPPING = ",".join(f"{k}={v}" for k, v in FOREIGN.items())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """The first N packaged events as (a) a ROOT file with two TTrees, renamed columns and no Q/dxy/iso
  branches, (b) a parquet file with our names and no dxy/iso columns."""
  import pyarrow as pa
  import pyarrow.parquet as pq
  import uproot

  d = tmp_path_factory.mktemp("dimuon")
  raw = read_table(zmumu.CSV_PATH, columns=zmumu.RAW_COLUMNS)
  kin = {k: raw[k][:N] for k in FOREIGN}
  root = str(d / "dimuons.root")
  with uproot.recreate(root) as f:
    f.mktree("Dimuons", {FOREIGN[k]: np.float64 for k in kin})
    f["Dimuons"].extend({FOREIGN[k]: v for k, v in kin.items()})
    f.mktree("Other", {"x": np.float64})
    f["Other"].extend({"x": np.arange(3.0)})
  parquet = str(d / "dimuons.parquet")
  pq.write_table(pa.table({**kin, "Q1": raw["Q1"][:N], "Q2": raw["Q2"][:N]}), parquet)
  return {"root": root, "parquet": parquet, "dir": d}


def _reference(n=N, window=(60.0, 120.0)):
  config = load_config("zmumu:reduced")
  raw = read_table(zmumu.CSV_PATH, columns=zmumu.RAW_COLUMNS)
  f = zmumu.features_from_raw({k: v[:n] for k, v in raw.items()}, "reduced")
  keep = zmumu.in_window(f, window)
  return config, {k: v[keep] for k, v in f.items()}


def test_root_tree_with_column_mapping_and_no_unused_columns(files):
  _, ref = _reference()
  config = load_config("zmumu:reduced", **{"data.source": files["root"], "data.tree": "Dimuons",
                                           "data.columns": MAPPING})
  got = zmumu.load(config)
  assert set(got) == set(ref)
  for k in ref:
    np.testing.assert_allclose(got[k], ref[k], rtol=1e-12)
  # two trees: the tree must be named; a wrong name lists the file's trees
  with pytest.raises(ValueError, match=r"dimuons\.root: pass tree=.*'Dimuons', 'Other'"):
    zmumu.load(load_config("zmumu:reduced", **{"data.source": files["root"], "data.columns": MAPPING}))
  with pytest.raises(ValueError, match=r"no TTree 'Events'"):
    zmumu.load(load_config("zmumu:reduced", **{"data.source": files["root"], "data.tree": "Events",
                                               "data.columns": MAPPING}))


def test_parquet_without_iso_dxy_and_missing_columns_named(files):
  _, ref = _reference()
  got = zmumu.load(load_config("zmumu:reduced", **{"data.source": files["parquet"]}))
  np.testing.assert_allclose(got["E1"], ref["E1"], rtol=1e-12)
  # the full model uses iso and dxy: each missing one is named with the file
  with pytest.raises(ValueError, match=r"dimuons\.parquet: column\(s\) 'dxy1', 'iso1', 'dxy2', 'iso2' not found"):
    zmumu.load(load_config("zmumu:full", **{"data.source": files["parquet"]}))
  # a mapped column that the file lacks: our name and the file's name
  with pytest.raises(ValueError, match=r"pt1 \(file column 'muon_pt'\) not found"):
    zmumu.load(load_config("zmumu:reduced", **{"data.source": files["parquet"], "data.columns": "pt1=muon_pt"}))
  with pytest.raises(ValueError, match=r"unknown name\(s\) \['ptt1'\]"):
    zmumu.load(load_config("zmumu:reduced", **{"data.source": files["parquet"], "data.columns": "ptt1=pt1"}))
  with pytest.raises(ValueError, match="not of the form ours=theirs"):
    zmumu.load(load_config("zmumu:reduced", **{"data.source": files["parquet"], "data.columns": "pt1"}))


def test_mass_window_from_the_config():
  config = load_config("zmumu:reduced", **{"data.mll_min": 80.0, "data.mll_max": 100.0})
  got = zmumu.load(config)
  m = np.asarray(zmumu.mll(got))
  _, ref = _reference(n=None, window=(80.0, 100.0))
  assert m.min() > 80 and m.max() < 100 and len(m) == len(ref["px1"]) < 10583
  with pytest.raises(ValueError, match=r"0 of 10583 events have 200.0 < M_ll < 300.0"):
    zmumu.load(load_config("zmumu:reduced", **{"data.mll_min": 200.0, "data.mll_max": 300.0}))


PLAIN_MODULE = '''"""A user's analysis module: the Z -> mu mu features of a file with its own column names."""
from ganjax.data import zmumu

DERIVED = dict(zmumu.DERIVED)
OUTPUTS = ("mll", "ptll")


def load(config):
  return zmumu.load(config)
'''


def test_plain_module_analysis_by_name_and_by_path(files, monkeypatch):
  d = files["dir"]
  (d / "myanalysis.py").write_text(PLAIN_MODULE)
  by_path = adata.analysis_module(str(d / "myanalysis.py"))
  assert by_path.OUTPUTS == ("mll", "ptll") and "mll" in by_path.DERIVED
  monkeypatch.syspath_prepend(str(d))
  assert adata.analysis_module("myanalysis").OUTPUTS == ("mll", "ptll")
  assert adata.analysis_module("zmumu") is zmumu  # the built-in name
  with pytest.raises(ValueError, match=r"analysis 'nosuchanalysis': no module .* a path to a \.py file"):
    adata.analysis_module("nosuchanalysis")
  with pytest.raises(ValueError, match="no such file"):
    adata.analysis_module(str(d / "missing.py"))
  (d / "incomplete.py").write_text("def load(config):\n  return {}\n")
  with pytest.raises(ValueError, match=r"does not define \['DERIVED'\]"):
    adata.analysis_module(str(d / "incomplete.py"))


def test_command_line_bad_column_is_one_line_exit_2(files, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/zmumu.py:test",
                      f"--workdir={tmp_path / 'w'}", f"--config.data.source={files['root']}",
                      "--config.data.tree=Dimuons", "--config.data.columns=pt1=mu1_pt"],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 2, r.stderr[-2000:]
  lines = [line for line in r.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and "dimuons.root" in lines[0] and "'eta1'" in lines[0], r.stderr
  assert not os.path.exists(tmp_path / "w" / "metrics.json")


# ---- the mass peak's figures ------------------------------------------------------------------------

def test_gaussian_fit_is_the_maximum_likelihood_of_a_gaussian():
  rng = np.random.default_rng(0)
  x = rng.normal(91.0, 2.5, 100_000)
  mu, sigma = ametrics.gaussian_fit(x, 70.0, 110.0)
  mu_ref, sigma_ref = stats.norm.fit(x)  # the range holds the whole Gaussian: scipy's MLE is the reference
  assert abs(mu - mu_ref) < 2e-3 and abs(sigma / sigma_ref - 1) < 2e-3
  # truncated to a narrow range, the fit still finds the Gaussian (it models the truncation)
  mu, sigma = ametrics.gaussian_fit(x, 89.0, 94.0)
  assert abs(mu - 91.0) < 0.05 and abs(sigma / 2.5 - 1) < 0.03


def test_core_fit_finds_the_core_under_tails_and_mass_peak_figures():
  rng = np.random.default_rng(1)
  core = rng.normal(91.0, 2.0, 80_000)
  tails = rng.normal(88.0, 12.0, 20_000)  # a wide component (radiative and resolution tails)
  m = np.concatenate([core, tails])
  mu, sigma = ametrics.core_fit(m, 70.0, 110.0)
  assert abs(mu - 91.0) < 0.1 and abs(sigma / 2.0 - 1) < 0.05, (mu, sigma)
  assert ametrics.gaussian_fit(m, 70.0, 110.0)[1] > 1.5 * sigma  # one Gaussian over all of 70-110 is not the core
  p = ametrics.mass_peak(m, window=(60.0, 120.0), core=(70.0, 110.0), peak=91.1876, half_width=5.0)
  inw = m[(m > 60) & (m < 120)]
  assert p["n"] == inw.size and np.isclose(p["fraction_in_window"], inw.size / m.size)
  assert np.isclose(p["mean"], inw.mean()) and np.isclose(p["rms"], inw.std())
  assert np.isclose(p["fraction_near_peak"], np.mean(np.abs(inw - 91.1876) < 5.0))
  assert np.isclose(p["core_width"], sigma)
  # comparison: KS and p-value are scipy's on the in-window masses
  gen = rng.normal(91.0, 2.4, 30_000)
  c = ametrics.mass_peak_comparison(gen, m)
  ref = stats.ks_2samp(gen[(gen > 60) & (gen < 120)], inw)
  assert np.isclose(c["ks"], ref.statistic) and np.isclose(c["ks_pvalue"], ref.pvalue)
  assert np.isclose(c["core_width_rel_dev"], c["generated"]["core_width"] / sigma - 1)
  assert 0.1 < c["core_width_rel_dev"] < 0.3 and c["ks_pvalue"] < 1e-6


def test_packaged_data_core_width():
  """The packaged data's Z peak: core (+-2 sigma iterated Gaussian) 2.16 GeV, mean 87.9 GeV, RMS 8.9 GeV."""
  m = np.asarray(zmumu.mll(zmumu.load(load_config("zmumu:reduced"))), np.float64)
  p = ametrics.mass_peak(m)
  assert abs(p["core_width"] - 2.16) < 0.02 and abs(p["core_mean"] - 90.80) < 0.02
  assert abs(p["mean"] - 87.93) < 0.01 and abs(p["rms"] - 8.88) < 0.01 and p["fraction_in_window"] == 1.0


# ---- figures: labels ---------------------------------------------------------------------------------

def test_figures_have_y_labels_tick_numbers_units_and_experiment_label(tmp_path, monkeypatch):
  import matplotlib.pyplot as plt
  import matplotlib.text

  from ganjax.plots import zmumu as zplots

  figs = []
  monkeypatch.setattr(zplots, "save_figure", lambda fig, path: figs.append(fig))
  rng = np.random.default_rng(0)
  d = {n: rng.normal(40, 10, 300) for n in zmumu.REDUCED}
  d.update(mll=rng.normal(90, 3, 300), ptll=rng.exponential(10, 300),
           iso1=np.where(rng.random(300) < 0.6, 0, rng.exponential(2, 300)))
  zplots.features(d, d, zmumu.REDUCED + ("mll",), str(tmp_path / "f.png"))
  zplots.zpt_and_spike(d, d, str(tmp_path / "z.png"))
  zplots.correlations(np.eye(2), np.eye(2), ("a", "b"), str(tmp_path / "c.png"))
  hist = {"step": [1, 2], "d_loss": [[1.0], [0.9]], "g_bce": [[1.0], [1.1]], "g_mll_mean": [[90.0], [91.0]],
          "g_mll_std": [[8.0], [8.5]], "ks_sum_val": [[0.3], [0.2]]}
  zplots.history(hist, np.array([True]), ("mll",), str(tmp_path / "h.png"))
  for fig in figs:
    texts = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    assert "CMS" in texts and "Open Data" in texts and "7 TeV" in texts, texts[:300]
  grid = figs[0]
  mains = [ax for ax in grid.axes if not ax.get_xlabel()]  # the distribution panels (x label on the ratio)
  ratios = [ax for ax in grid.axes if ax.get_xlabel()]
  assert len(mains) == len(ratios) == 8
  for ax in mains + ratios:
    assert ax.get_ylabel(), ax
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_visible()]
    assert any(s.strip() for s in labels), ax  # tick numbers are drawn
  xlabels = [ax.get_xlabel() for ax in ratios]
  assert all(s.endswith("[GeV]") for s in xlabels), xlabels  # px1 ... E2 and M_ll in GeV
  assert all("[1/GeV]" in ax.get_ylabel() for ax in mains)
  plt.close("all")
  # label=() draws none (a user's own, non-CMS data)
  figs.clear()
  zplots.features(d, d, ("mll",), str(tmp_path / "f2.png"), label=())
  assert "CMS" not in " ".join(t.get_text() for t in figs[0].findobj(matplotlib.text.Text))
  plt.close("all")
