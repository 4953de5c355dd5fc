"""validate() and write_report() end to end on a small synthetic gamma+jets-like example."""

import json
import os

import numpy as np
import pytest

from ganjax import validation


def _events(n, rng, fake_sr_like: bool):
  """Toy events with the 15 columns: the event part is region independent, the fake photon is drawn from
  the SR conditional (SR, GANed CR) or from a softer, differently correlated CR one (MC CR)."""
  pho_pt = 35 * (1 + rng.pareto(3.0, n))
  pho_eta = rng.normal(0, 1.0, n)
  pho_phi = rng.uniform(-np.pi, np.pi, n)
  n_vtx = rng.poisson(20, n)
  n_jets = 1 + rng.poisson(0.4 + 0.6 * np.log(pho_pt / 35) + 0.02 * n_vtx)
  z = rng.normal(size=n)
  if fake_sr_like:
    fake_pt = 25 * np.exp(0.35 * z + 0.5 * np.log(pho_pt / 35))
    fake_id = np.tanh(1.5 + 0.3 * rng.normal(size=n) - 0.02 * (n_vtx - 20))
  else:
    fake_pt = 18 * np.exp(0.45 * z + 0.1 * np.log(pho_pt / 35) + 0.05 * n_jets)
    fake_id = np.tanh(-0.5 + 0.5 * rng.normal(size=n))
  fake_eta = 0.6 * pho_eta + 0.8 * rng.normal(size=n)
  fake_phi = np.mod(pho_phi + np.pi + rng.normal(0, 0.3, n) + np.pi, 2 * np.pi) - np.pi
  px = pho_pt * np.cos(pho_phi) + fake_pt * np.cos(fake_phi)
  py = pho_pt * np.sin(pho_phi) + fake_pt * np.sin(fake_phi)
  deta = pho_eta - fake_eta
  dphi = np.abs(np.mod(pho_phi - fake_phi + np.pi, 2 * np.pi) - np.pi)
  mgg = np.sqrt(2 * pho_pt * fake_pt * (np.cosh(deta) - np.cos(dphi)))
  ptgg = np.hypot(px, py)
  return {"fake_id": fake_id, "fake_pt": fake_pt, "fake_eta": fake_eta, "fake_phi": fake_phi,
          "pho_id": np.tanh(2.5 + 0.3 * rng.normal(size=n)), "pho_pt": pho_pt, "pho_eta": pho_eta,
          "pho_phi": pho_phi, "n_jets": n_jets.astype(np.float32), "n_vtx": n_vtx, "ptgg_over_mgg": ptgg / mgg,
          "ptgg": ptgg, "mgg": mgg, "detagg": deta, "dphigg": dphi, "weight": rng.uniform(0.5, 1.5, n)}


@pytest.fixture(scope="module")
def samples():
  rng = np.random.default_rng(11)
  return _events(6000, rng, True), _events(8000, rng, False), _events(8000, rng, True)


def test_validate_and_write_report(samples, tmp_path):
  sr, cr, ganed = samples
  res = validation.validate(sr, cr, ganed, validation.HGG_OBSERVABLES, weight="weight", n_batches=10)
  json.dumps(res, allow_nan=False)  # strictly JSON-serialisable
  s = res["summary"]
  assert len(res["observables"]) == 15 and s["n_pairs"] == 105
  assert res["n_events"] == {"sr": 6000, "cr": 8000, "ganed": 8000}
  # the GANed CR follows the SR model, the MC CR does not
  assert s["chi"] < 1.2 and s["chi_cr_vs_sr"] > 1.6
  assert s["s2_fake_pt_ganed_over_cr"] < 0.2
  bad_cr = {tuple(p["pair"]) for p in res["chi"]["cr_vs_sr"]["pairs_above_threshold"]}
  assert ("fake_pt", "pho_pt") in bad_cr  # the changed correlation is named
  d = np.asarray(res["dcor"]["sr"])
  assert d.shape == (15, 15) and np.allclose(np.diag(d), 1)
  rows = {r["observable"]: r for r in res["onedim"]}
  assert rows["pho_pt"]["s2"]["ganed"] < 0.02 and rows["fake_id"]["ks"]["cr"] > 0.5

  paths = validation.write_report(res, str(tmp_path))
  expected = ({"validation.json", "summary.md", "corner.png", "dcor_matrices.png", "sqrt_chi2.png"}
              | {f"hist_{k}.png" for k in validation.HGG_OBSERVABLES})
  assert {os.path.basename(p) for p in paths} == expected
  for p in paths:
    assert os.path.getsize(p) > 100, p
  assert sorted(os.listdir(tmp_path)) == sorted(expected)  # no temporary files left behind
  with open(tmp_path / "validation.json") as f:
    assert json.load(f)["summary"] == json.loads(json.dumps(s))
  text = (tmp_path / "summary.md").read_text()
  assert f"chi (GANed CR vs MC SR) = {s['chi']:.3f}" in text and "| fake_pt |" in text
  for p in res["chi"]["ganed_vs_sr"]["pairs_above_threshold"]:
    assert f"- {p['pair'][0]} x {p['pair'][1]}: sqrt(chi2) = {p['sqrt_chi2']:.2f}" in text


def test_validate_rejects_bad_input(samples):
  sr, cr, ganed = samples
  broken = dict(ganed, mgg=np.r_[np.nan, ganed["mgg"][1:]])
  with pytest.raises(ValueError, match="GANed CR: column 'mgg' has 1 non-finite"):
    validation.validate(sr, cr, broken)
  with pytest.raises(ValueError, match="MC CR: missing columns \\['n_vtx'\\]"):
    validation.validate(sr, {k: v for k, v in cr.items() if k != "n_vtx"}, ganed)
  with pytest.raises(ValueError, match="weight column 'w'"):
    validation.validate(sr, cr, ganed, weight="w")


def test_contour_levels_hold_the_fractions():
  from ganjax.plots.validation import contour_levels
  rng = np.random.default_rng(0)
  h, _, _ = np.histogram2d(rng.normal(size=50000), rng.normal(size=50000), bins=60, range=[[-5, 5]] * 2)
  levels = contour_levels(h, h.sum())
  fracs = sorted(h[h >= t].sum() / h.sum() for t in levels)
  assert np.allclose(fracs, [0.25, 0.5, 0.75], atol=0.01)


def test_s2_check_and_eta_regions(samples):
  """Per generated observable: S^2 of GANed and MC CR, the floor, the verdict; eta-region fractions against
  numpy brute force."""
  sr, cr, ganed = samples
  res = validation.validate(sr, cr, ganed, validation.HGG_OBSERVABLES, n_batches=4, corner_observables=None)
  check = res["s2_check"]
  assert set(check) == set(validation.GENERATED_OBSERVABLES)
  for obs, row in check.items():
    r = next(r for r in res["onedim"] if r["observable"] == obs)
    assert row["ganed"] == r["s2"]["ganed"] and row["floor"] == r["s2_floor"]["ganed"]["q"]
    assert row["ok"] == (row["ganed"] <= row["cr"] or row["ganed"] <= row["floor"])
  # GANed and SR are two samples of one model: every check holds, and the fake pT one by beating MC CR
  assert res["summary"]["s2_check_ok"] and check["fake_pt"]["ganed"] < check["fake_pt"]["cr"]
  eta = res["eta_regions"]
  for name, t in (("sr", sr), ("ganed", ganed), ("cr", cr)):
    a = np.abs(t["fake_eta"])
    assert eta["barrel"][name] == pytest.approx(np.mean(a < 1.4442))
    assert eta["gap"][name] == pytest.approx(np.mean((a >= 1.4442) & (a <= 1.566)))
    assert eta["endcap"][name] == pytest.approx(np.mean(a > 1.566))
  p_s, p_g = eta["endcap"]["sr"], eta["endcap"]["ganed"]
  pooled = (p_s * 6000 + p_g * 8000) / 14000
  assert eta["endcap"]["pull"] == pytest.approx((p_g - p_s) / np.sqrt(pooled * (1 - pooled) * (1 / 6000 + 1 / 8000)))
  assert eta["within_3_sigma"]


def test_figure_axes_carry_units(samples, tmp_path, monkeypatch):
  """Every axis of the Fig. 5 histograms and the Fig. 6 corner is labelled, momenta and masses in [GeV],
  angles in [rad]; the experiment label is drawn only when asked (figures of real data)."""
  import matplotlib.pyplot as plt
  from ganjax.plots import validation as vplots
  figs = []
  monkeypatch.setattr(vplots, "_save", lambda fig, path: figs.append(fig))
  sr, cr, ganed = samples
  res = validation.validate(sr, cr, ganed, validation.HGG_OBSERVABLES, n_batches=4)
  labels = res["labels"]
  for obs in ("fake_pt", "mgg", "ptgg", "pho_pt"):
    assert labels[obs].endswith("[GeV]"), obs
  assert labels["fake_phi"].endswith("[rad]") and "[" not in labels["fake_eta"]
  vplots.hist_ratio(res["histograms"]["fake_pt"], labels["fake_pt"], "x.png", validation.SAMPLES,
                    unit=validation.UNITS["fake_pt"], experiment="CMS Open Data")
  vplots.corner(res["corner"], labels, "c.png")
  hist, corner = figs
  main, ratio = hist.axes
  assert ratio.get_xlabel() == r"$p_{T,\chi}$ [GeV]" and "GeV$^{-1}$" in main.get_ylabel() and ratio.get_ylabel()
  assert any("CMS" in t.get_text() for t in main.texts)
  d = len(res["corner"]["names"])
  axes = np.asarray(corner.axes).reshape(d, d)
  for i, a in enumerate(res["corner"]["names"]):
    assert axes[d - 1, i].get_xlabel() == labels[a]  # bottom row: x labels with units
    assert axes[i, i].get_ylabel()  # diagonal: density axis
    if i:
      assert axes[i, 0].get_ylabel() == labels[a]
  assert axes[d - 1, 1].get_xlabel().endswith("[GeV]")
  assert not any("CMS" in t.get_text() for ax in corner.axes for t in ax.texts)
  for f in figs:
    plt.close(f)
