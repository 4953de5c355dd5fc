"""ganjax.plots.style: HEP style with and without mplhep, ratio panels, atomic writes; ratio panels of the
zmumu and ganplify figures against numpy histograms."""

import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganjax.plots import style  # noqa: E402


def test_hep_rc_with_and_without_mplhep(monkeypatch):
  mplhep = pytest.importorskip("mplhep")
  rc = style.hep_rc(13.0)
  assert rc["font.size"] == 13.0 and rc["font.sans-serif"] == mplhep.style.CMS["font.sans-serif"]
  cms = mplhep.style.CMS
  assert rc["xtick.major.size"] == pytest.approx(cms["xtick.major.size"] * 13.0 / cms["font.size"])
  assert "figure.figsize" not in rc
  monkeypatch.setitem(sys.modules, "mplhep", None)  # import mplhep now raises ImportError: a bare install
  rc = style.hep_rc(13.0)
  assert rc["font.size"] == 13.0 and rc["xtick.direction"] == "in" and "font.sans-serif" not in rc


def test_hep_style_restores_rcparams():
  before = plt.rcParams["font.size"], plt.rcParams["xtick.direction"]
  with style.hep_style(font_size=17.0):
    assert plt.rcParams["font.size"] == 17.0 and plt.rcParams["xtick.direction"] == "in"

  @style.hep_style(font_size=9.0)
  def inside():
    return plt.rcParams["font.size"]

  assert inside() == 9.0 and inside() == 9.0  # usable as a decorator, more than once
  assert (plt.rcParams["font.size"], plt.rcParams["xtick.direction"]) == before


def test_draw_ratio_and_save_figure(tmp_path):
  fig = plt.figure()
  ax, rax = style.ratio_axes(fig, None)
  assert rax.get_shared_x_axes().joined(ax, rax)
  edges = np.array([0.0, 1.0, 2.0, 3.0])
  style.draw_ratio(rax, edges, [2.0, 1.0, 5.0], [1.0, 4.0, 0.0], den_err=[0.5, 1.0, 0.0], ylim=(0, 3))
  band, ratio = rax.patches
  np.testing.assert_allclose(ratio.get_data().values, [2.0, 0.25, np.nan])  # empty reference bin: blank
  np.testing.assert_allclose(band.get_data().values[:2], [1.5, 1.25])
  np.testing.assert_allclose(band.get_data().baseline[:2], [0.5, 0.75])
  assert rax.get_ylim() == (0, 3)
  path = tmp_path / "sub" / "f.png"
  style.save_figure(fig, str(path))
  assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in path.parent.iterdir()] == ["f.png"]


def test_zmumu_features_ratio_panels(tmp_path, monkeypatch):
  from ganjax.plots import zmumu

  captured = []
  monkeypatch.setattr(zmumu, "save_figure", lambda fig, path: captured.append(fig))
  rng = np.random.default_rng(0)
  data = {"mll": rng.normal(91, 3, 2000), "dphi": rng.normal(3, 0.1, 2000)}
  gen = {"mll": rng.normal(91.5, 3, 1000), "dphi": rng.normal(3, 0.1, 1000)}
  zmumu.features(data, gen, ("mll", "dphi"), str(tmp_path / "f.png"))
  fig = captured[0]
  assert len(fig.axes) == 4  # main + ratio per quantity
  rax = fig.axes[1]
  edges = zmumu._edges(data["mll"])
  h_d = np.histogram(np.clip(data["mll"], edges[0], edges[-1]), edges, density=True)[0]
  h_g = np.histogram(np.clip(gen["mll"], edges[0], edges[-1]), edges, density=True)[0]
  ratio = rax.patches[-1].get_data().values
  np.testing.assert_allclose(ratio, np.where(h_d > 0, h_g / np.where(h_d > 0, h_d, 1), np.nan), rtol=1e-12)
  plt.close(fig)


def test_ganplify_camel_ratio_to_truth(tmp_path, monkeypatch):
  from scipy.stats import norm

  from ganjax.plots import ganplify

  captured = []
  monkeypatch.setattr(ganplify, "save_figure", lambda fig, path, dpi: captured.append(fig))
  rng = np.random.default_rng(1)
  gan = np.r_[rng.normal(-4, 1, 5000), rng.normal(4, 1, 5000)]
  ganplify.plot_camel({"train": gan[::100], "gan": gan}, str(tmp_path / "c.png"))
  ax, rax = captured[0].axes
  bins = np.linspace(-9, 9, 41)
  truth = 0.5 * (norm.cdf(bins[1:], -4, 1) - norm.cdf(bins[:-1], -4, 1)
                 + norm.cdf(bins[1:], 4, 1) - norm.cdf(bins[:-1], 4, 1)) / np.diff(bins)
  gan_ratio = rax.patches[1].get_data().values
  np.testing.assert_allclose(gan_ratio, np.histogram(gan, bins, density=True)[0] / truth, rtol=1e-9)
  central = (bins[:-1] > -5) & (bins[1:] < 5) & ((bins[1:] < -3) | (bins[:-1] > 3))  # the peaks
  assert np.all(np.abs(gan_ratio[central] - 1) < 0.2)  # a sample of the truth sits at 1 where populated
  plt.close(captured[0])
