"""NanoAOD reader: the real 200-event CMS file against a per-event Python reference, synthetic edge cases,
random events against a brute-force reference, and errors that name the file and branch."""

import math
import os
import shutil

import awkward as ak
import numpy as np
import pytest
import uproot

from ganjax.data import gjets, nanoaod

REAL = os.path.join(os.path.dirname(__file__), "data", "cms2015_ttbar_nanoaod_200ev.root")
# ttbar: few photon pairs, mostly failing the ID; loosen so that every pair is kept.
LOOSE = dict(preselection=False, prompt_id_min=-1.0, cr_id_floor=-1.0, sr_id_min=-0.5)


# ---- an independent per-event reference (plain Python on lists) --------------------------------------


def _dr(eta1, phi1, eta2, phi2):
  dphi = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
  return math.hypot(eta1 - eta2, dphi)


def _in_acceptance(eta):
  a = abs(eta)
  return a < 2.5 and not (1.4442 < a < 1.566)


def reference(events: list[dict], sel: nanoaod.Selection):
  """(rows, cutflow) by a loop over events, written from the module docstring, not from the code."""
  rows = []
  flow = dict.fromkeys(nanoaod.CUTFLOW_STEPS, 0)
  for ev in events:
    flow["events"] += 1
    pt, eta, phi, pid = ev["Photon_pt"], ev["Photon_eta"], ev["Photon_phi"], ev[sel.id_branch]
    cands = [i for i in range(len(pt)) if pt[i] > sel.photon_pt_min]
    if len(cands) < 2:
      continue
    flow["two_photons"] += 1
    if sel.mode == "mc":
      flav = ev["Photon_genPartFlav"]
      prompts = [i for i in cands if flav[i] in sel.prompt_flavours]
      fakes = [i for i in cands if flav[i] in sel.fake_flavours]
      if not prompts or not fakes:
        continue
      ip, jf = max(prompts, key=lambda i: pt[i]), max(fakes, key=lambda i: pt[i])
    else:
      i0, i1 = sorted(cands, key=lambda i: -pt[i])[:2]
      ip, jf = (i1, i0) if sel.data_prompt == "higher_id" and pid[i1] > pid[i0] else (i0, i1)
    flow["prompt_and_fake"] += 1
    jets = list(zip(ev["Jet_pt"], ev["Jet_eta"], ev["Jet_phi"]))
    j = ev["Photon_jetIdx"][jf]
    if not 0 <= j < len(jets):
      if sel.no_jet == "drop" or not jets:
        continue
      j = min(range(len(jets)), key=lambda k: _dr(jets[k][1], jets[k][2], eta[jf], phi[jf]))
    flow["fake_jet"] += 1
    if not pid[ip] > sel.prompt_id_min:
      continue
    flow["prompt_id"] += 1
    # Massless four-vectors: m^2 = E^2 - p^2.
    p4 = [(pt[i] * math.cosh(eta[i]), pt[i] * math.cos(phi[i]), pt[i] * math.sin(phi[i]), pt[i] * math.sinh(eta[i]))
          for i in (ip, jf)]
    e, px, py, pz = (a + b for a, b in zip(*p4))
    mgg = math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
    if sel.preselection and not (100 < mgg < 180 and max(pt[ip], pt[jf]) > mgg / 3 and min(pt[ip], pt[jf]) > mgg / 4
                                 and _in_acceptance(eta[ip]) and _in_acceptance(eta[jf])):
      continue
    flow["preselection"] += 1
    if not pid[jf] > sel.cr_id_floor:
      continue
    flow["sr_or_cr"] += 1
    is_sr = pid[jf] > sel.sr_id_min
    flow["sr" if is_sr else "cr"] += 1
    n_jets = sum(1 for (jp, je, jph) in jets if jp > sel.jet_pt_min and abs(je) < sel.jet_eta_max
                 and (sel.jet_prompt_dr <= 0 or _dr(je, jph, eta[ip], phi[ip]) > sel.jet_prompt_dr))
    rows.append({"pho_pt": pt[ip], "pho_eta": eta[ip], "pho_phi": phi[ip], "pho_id": pid[ip],
                 "fake_pt": pt[jf], "fake_eta": eta[jf], "fake_phi": phi[jf], "fake_id": pid[jf],
                 "jet_pt": jets[j][0], "jet_eta": jets[j][1], "jet_phi": jets[j][2], "n_jets": n_jets,
                 "n_vtx": ev["PV_npvs"], "mgg": mgg, "ptgg": math.hypot(px, py), "is_sr": is_sr})
  return rows, flow


def assert_matches_reference(table, cutflow, rows, flow):
  assert cutflow == flow
  assert len(table["pho_pt"]) == len(rows)
  for col in rows[0] if rows else []:
    want = np.array([r[col] for r in rows], np.float64)
    np.testing.assert_allclose(table[col].astype(np.float64), want, rtol=2e-4, atol=2e-3, err_msg=col)


def _real_lists(branches):
  return uproot.open(REAL)["Events"].arrays(list(branches), library="ak").to_list()


# ---- the real file ---------------------------------------------------------------------------------


def test_real_file_photon_counts_and_data_mode_match_reference():
  sel = nanoaod.Selection(mode="data", **LOOSE)
  table, cutflow = nanoaod.nanoaod_events(REAL, **LOOSE, mode="data")
  # Photon counts by hand: nPhoton straight from the file.
  n_photon = uproot.open(REAL)["Events"]["nPhoton"].array(library="np")
  assert cutflow["events"] == 200 == len(n_photon)
  assert cutflow["two_photons"] == int((n_photon >= 2).sum()) == 9
  rows, flow = reference(_real_lists(sel.branches()), sel)
  assert_matches_reference(table, cutflow, rows, flow)
  assert 0 < cutflow["sr"] < cutflow["sr_or_cr"] == 9


def test_real_file_mc_mode_matches_reference():
  # ttbar has no fake with a genPartFlav-1 prompt photon; counting electron-matched (11) as prompt gives 4.
  opts = dict(LOOSE, mode="mc", prompt_flavours=(1, 11))
  sel = nanoaod.Selection(**opts)
  table, cutflow = nanoaod.nanoaod_events(REAL, **opts)
  rows, flow = reference(_real_lists(sel.branches()), sel)
  assert_matches_reference(table, cutflow, rows, flow)
  assert cutflow["sr_or_cr"] == 4
  _, default_flow = nanoaod.nanoaod_events(REAL)  # the paper's assignment: nothing in ttbar
  assert default_flow["two_photons"] == 9 and default_flow["prompt_and_fake"] == 0


def test_read_nanoaod_regions_columns_and_no_nan():
  sr, cr, desc = nanoaod.read_nanoaod(REAL, mode="data", extra_columns=("event",), **LOOSE)
  for region in (sr, cr):
    assert set(region) == set(gjets.ALL_COLUMNS) | {"event"}
    for c in gjets.ALL_COLUMNS:
      assert region[c].dtype == np.float32 and np.isfinite(region[c]).all(), c
  assert len(sr["pho_pt"]) + len(cr["pho_pt"]) == 9 and len(sr["pho_pt"]) and len(cr["pho_pt"])
  assert (sr["fake_id"] > LOOSE["sr_id_min"]).all()
  assert ((cr["fake_id"] > LOOSE["cr_id_floor"]) & (cr["fake_id"] <= LOOSE["sr_id_min"])).all()
  assert len(set(sr["event"]) | set(cr["event"])) == 9 and not set(sr["event"]) & set(cr["event"])
  dip = gjets.diphoton(*[sr[c] for c in ("pho_pt", "pho_eta", "pho_phi", "fake_pt", "fake_eta", "fake_phi")])
  for k, v in dip.items():
    np.testing.assert_allclose(sr[k], v, rtol=1e-5, atol=1e-5)
  assert "cutflow: events 200 -> two_photons 9" in desc and f"SR {len(sr['pho_pt'])}" in desc


def test_glob_of_files_and_max_events(tmp_path):
  for name in ("a.root", "b.root"):
    shutil.copy(REAL, tmp_path / name)
  _, flow = nanoaod.nanoaod_events(str(tmp_path / "*.root"), mode="data", **LOOSE)
  assert flow["events"] == 400 and flow["sr_or_cr"] == 18
  _, flow = nanoaod.nanoaod_events([str(tmp_path / "a.root"), str(tmp_path / "b.root")], max_events=250,
                                   step_size=60, mode="data", **LOOSE)
  assert flow["events"] == 250


# ---- synthetic events ------------------------------------------------------------------------------


def synthetic(events: list[dict]) -> ak.Array:
  """An awkward array with NanoAOD field names from a list of per-event dicts."""
  return ak.Array(events)


def _ev(photons, jets, npv=10):
  """photons: (pt, eta, phi, id, flav, jetIdx); jets: (pt, eta, phi)."""
  p = list(zip(*photons)) if photons else [()] * 6
  j = list(zip(*jets)) if jets else [()] * 3
  return {"Photon_pt": list(p[0]), "Photon_eta": list(p[1]), "Photon_phi": list(p[2]),
          "Photon_mvaID": list(p[3]), "Photon_genPartFlav": list(p[4]), "Photon_jetIdx": list(p[5]),
          "Jet_pt": list(j[0]), "Jet_eta": list(j[1]), "Jet_phi": list(j[2]), "PV_npvs": npv}


SYNTH = [
    # 0: prompt (flav 1) + fake (flav 0) with jetIdx 1; a jet on top of the prompt photon (cleaned from n_jets).
    _ev([(60., 0.1, 0.0, 0.9, 1, 0), (40., -0.5, 2.0, 0.3, 0, 1)],
        [(62., 0.12, 0.01), (70., -0.52, 2.02), (30., 3.0, -1.0), (20., 1.0, 1.0)], npv=17),
    # 1: fake without a stored jet (jetIdx -1): dropped, or the nearest jet (index 1) with no_jet="nearest".
    _ev([(50., 0.3, 1.0, 0.8, 1, -1), (45., 1.0, -2.0, -0.5, 0, -1)],
        [(80., 0.3, 1.0), (55., 1.1, -2.1), (90., -1.0, -2.0)]),
    # 2: only one photon.
    _ev([(50., 0.3, 1.0, 0.8, 1, 0)], [(80., 0.3, 1.0)]),
    # 3: two prompt photons, no fake: no MC assignment; in data the higher-ID one (the subleading) is prompt.
    _ev([(70., 0.0, 0.0, 0.2, 1, 0), (30., 1.0, 3.0, 0.95, 1, 1)], [(71., 0.0, 0.0), (35., 1.0, 3.0)]),
    # 4: fake ID exactly at sr_id_min: CR (SR needs >). jetIdx past the end of the jet list: treated as -1.
    _ev([(55., -1.0, 0.5, 0.7, 1, 0), (35., 0.5, -2.5, 0.0, 0, 5)], [(60., 0.5, -2.5)]),
    # 5: nothing at all (last event empty: offsets edge case).
    _ev([], []),
]


def test_synthetic_mc_assignment_jets_and_regions():
  opts = dict(preselection=False, jet_prompt_dr=0.4)
  table, flow = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(**opts))
  assert flow == {"events": 6, "two_photons": 4, "prompt_and_fake": 3, "fake_jet": 1, "prompt_id": 1,
                  "preselection": 1, "sr_or_cr": 1, "sr": 1, "cr": 0}
  assert table["jet_pt"].tolist() == [70.0] and table["n_jets"].tolist() == [2.0]  # 70 and 30; 62 cleaned
  assert table["n_vtx"].tolist() == [17.0] and table["is_sr"].tolist() == [True]
  table, _ = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(**dict(opts, jet_prompt_dr=0.0)))
  assert table["n_jets"].tolist() == [3.0]  # the 20 GeV jet is below jet_pt_min

  table, flow = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(**opts, no_jet="nearest"))
  assert flow["fake_jet"] == 3 and flow["sr"] == 1 and flow["cr"] == 2
  assert table["jet_pt"].tolist() == [70.0, 55.0, 60.0]
  assert table["is_sr"].tolist() == [True, False, False]  # event 4: fake ID 0.0 == sr_id_min -> CR


def test_synthetic_data_assignment_by_id_or_pt():
  table, flow = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(mode="data", preselection=False,
                                                                   prompt_id_min=-1.0, no_jet="nearest"))
  assert flow["prompt_and_fake"] == 4
  # Event 3: the subleading photon has the higher ID -> it is the prompt; the leading one is the fake.
  assert table["pho_pt"].tolist() == [60.0, 50.0, 30.0, 55.0]
  assert table["fake_pt"].tolist() == [40.0, 45.0, 70.0, 35.0]
  assert table["jet_pt"][2] == 71.0  # the leading photon's jetIdx 0
  table, _ = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(mode="data", data_prompt="leading_pt",
                                                                preselection=False, prompt_id_min=-1.0,
                                                                no_jet="nearest"))
  assert table["pho_pt"].tolist() == [60.0, 50.0, 70.0, 55.0]


def test_photon_pt_threshold_and_nan_is_named():
  table, flow = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(photon_pt_min=32.0, preselection=False))
  assert flow["two_photons"] == 3  # event 3 has a 30 GeV photon
  bad = [dict(SYNTH[0], Photon_mvaID=[0.9, float("nan")])]
  with pytest.raises(ValueError, match=r"mine\.root.*fake_id \(branch Photon_mvaID\): 1 events"):
    nanoaod.select(synthetic(bad), nanoaod.Selection(preselection=False, cr_id_floor=-2.0), origin="mine.root")


@pytest.mark.parametrize("opts", [
    dict(mode="mc"),
    dict(mode="mc", no_jet="nearest", photon_pt_min=20.0, jet_prompt_dr=0.0),
    dict(mode="data", preselection=False, sr_id_min=0.3, cr_id_floor=-0.5),
    dict(mode="data", data_prompt="leading_pt", no_jet="nearest", prompt_id_min=-0.8),
])
def test_random_events_match_brute_force_reference(opts):
  rng = np.random.default_rng(len(str(opts)))
  events = []
  for _ in range(1000):
    n_ph, n_j = rng.integers(0, 5), rng.integers(0, 6)
    photons = [(float(rng.uniform(15, 100)), float(rng.normal(0, 1.2)), float(rng.uniform(-np.pi, np.pi)),
                float(rng.uniform(-1, 1)), int(rng.choice([0, 1, 11])), int(rng.integers(-1, n_j + 1)))
               for _ in range(n_ph)]
    jets = [(float(rng.uniform(10, 150)), float(rng.normal(0, 2.5)), float(rng.uniform(-np.pi, np.pi)))
            for _ in range(n_j)]
    events.append(_ev(photons, jets, npv=int(rng.integers(1, 40))))
  arr = synthetic(events)
  # Round through float32 as NanoAOD stores them, so the reference sees the same numbers.
  arr = ak.with_field(arr, ak.values_astype(arr["Photon_pt"], np.float32), "Photon_pt")
  for f in ("Photon_eta", "Photon_phi", "Photon_mvaID", "Jet_pt", "Jet_eta", "Jet_phi"):
    arr = ak.with_field(arr, ak.values_astype(arr[f], np.float32), f)
  sel = nanoaod.Selection(**opts)
  table, flow = nanoaod.select(arr, sel)
  rows, ref_flow = reference(arr.to_list(), sel)
  assert_matches_reference(table, flow, rows, ref_flow)
  assert flow["sr_or_cr"] >= 10, flow


# ---- files and errors --------------------------------------------------------------------------------


def _write_nanoaod(path, events: list[dict], drop=()):
  arr = synthetic(events)
  data = {"Photon": ak.zip({k[7:]: arr[k] for k in arr.fields if k.startswith("Photon_") and k not in drop}),
          "Jet": ak.zip({k[4:]: arr[k] for k in arr.fields if k.startswith("Jet_")}),
          "PV_npvs": np.asarray(arr["PV_npvs"], np.int32)}
  with uproot.recreate(path) as f:
    f.mktree("Events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
    f["Events"].extend(data)


def test_written_file_reads_like_the_arrays(tmp_path):
  path = str(tmp_path / "synth.root")
  _write_nanoaod(path, SYNTH)
  sel = dict(preselection=False, no_jet="nearest")
  table, flow = nanoaod.nanoaod_events(path, **sel)
  want, want_flow = nanoaod.select(synthetic(SYNTH), nanoaod.Selection(**sel))
  assert flow == want_flow
  for k in want:
    np.testing.assert_allclose(table[k], want[k], rtol=1e-6)


def test_missing_branch_names_file_and_branch(tmp_path):
  path = str(tmp_path / "nogen.root")
  _write_nanoaod(path, SYNTH, drop=("Photon_genPartFlav",))
  with pytest.raises(ValueError, match=r"nogen\.root: branch 'Photon_genPartFlav' not found.*mode='data'"):
    nanoaod.read_nanoaod(path)
  sr, cr, _ = nanoaod.read_nanoaod(path, mode="data", preselection=False)  # data needs no truth
  assert len(sr["pho_pt"]) + len(cr["pho_pt"]) > 0
  with pytest.raises(ValueError, match=r"nogen\.root: branch 'Photon_mvaID_v9' not found.*\['Photon_mvaID'\]"):
    nanoaod.read_nanoaod(path, mode="data", id_branch="Photon_mvaID_v9")
  with pytest.raises(ValueError, match=r"nogen\.root: no tree 'Tree'"):
    nanoaod.read_nanoaod(path, mode="data", tree="Tree")
  with pytest.raises(ValueError, match=r"missing\*\.root: no files match"):
    nanoaod.read_nanoaod(str(tmp_path / "missing*.root"))
  with pytest.raises(ValueError, match="mode must be 'mc' or 'data'"):
    nanoaod.read_nanoaod(path, mode="sim")
  with pytest.raises(ValueError, match=r"cr_id_floor < sr_id_min"):
    nanoaod.read_nanoaod(path, sr_id_min=-0.9, cr_id_floor=0.0)
