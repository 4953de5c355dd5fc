"""Data sources: flat tables with a column mapping (parquet, CSV, ROOT, HDF5), NanoAOD dispatch, regions,
errors naming file and column; parquet and ROOT write -> read round trips with metadata."""

import os
import tempfile

import ml_collections
import numpy as np
import pytest
import uproot
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from ganjax import io
from ganjax.data import gjets, sources, tables

REAL = os.path.join(os.path.dirname(__file__), "data", "cms2015_ttbar_nanoaod_200ev.root")
# File column names an analyst's ntuple might use for ours.
THEIRS = {"pho_pt": "g1_pt", "pho_eta": "g1_eta", "pho_phi": "g1_phi", "pho_id": "g1_mva",
          "fake_pt": "g2_pt", "fake_eta": "g2_eta", "fake_phi": "g2_phi", "fake_id": "g2_mva",
          "jet_pt": "j_pt", "jet_eta": "j_eta", "jet_phi": "j_phi", "n_jets": "njet", "n_vtx": "npv"}


@pytest.fixture(scope="module")
def events():
  return gjets.simulate(1500, seed=3)


def _ntuple(events):
  """The simulated events as an analyst's ntuple: their names, plus a run number and an SR flag."""
  cols = {THEIRS[k]: v for k, v in events.items() if k in THEIRS}
  cols["evt"] = np.arange(len(events["pho_pt"]), dtype=np.int64)
  cols["pass_id"] = events["is_sr"].astype(np.int32)
  return cols


def _write(path, cols):
  if path.endswith(".parquet"):
    io.write_parquet(path, cols)
  elif path.endswith(".root"):
    io.write_root(path, cols, tree="ntuple")
  elif path.endswith(".csv"):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(cols), path)
  elif path.endswith(".h5"):
    import h5py

    with h5py.File(path, "w") as f:
      g = f.create_group("events")
      for k, v in cols.items():
        g.create_dataset(k, data=v)


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".root", ".h5"])
def test_flat_table_with_mapping_gives_the_simulators_regions(tmp_path, events, ext):
  if ext == ".h5":
    pytest.importorskip("h5py")
  path = str(tmp_path / f"ntuple{ext}")
  _write(path, _ntuple(events))
  opts = {"columns": ",".join(f"{k}={v}" for k, v in THEIRS.items()), "preselection": False,
          "extra_columns": "evt", "tree": "events" if ext == ".h5" else ""}
  sr, cr, desc = sources.load_source(path, opts)
  want_sr, want_cr = gjets.split_regions(events)  # simulate() uses the same default thresholds
  for got, want in ((sr, want_sr), (cr, want_cr)):
    assert len(got["pho_pt"]) == len(want["pho_pt"]) > 100
    for c in gjets.ALL_COLUMNS:
      assert got[c].dtype == np.float32
      np.testing.assert_allclose(got[c], want[c], rtol=1e-5, atol=2e-5, err_msg=c)
  assert got["evt"].dtype == np.int64 and "cutflow: rows 1500" in desc
  # The same split from the file's own flag (no cuts then).
  sr2, cr2, desc2 = sources.load_source(path, {**opts, "region_column": "pass_id"})
  np.testing.assert_array_equal(sr2["evt"], sr["evt"])
  np.testing.assert_array_equal(cr2["evt"], cr["evt"])
  assert "regions by column 'pass_id'" in desc2


def test_thresholds_prompt_cut_preselection_and_glob(tmp_path, events):
  cols = {k: v for k, v in events.items() if k in gjets.ALL_COLUMNS}
  io.write_parquet(str(tmp_path / "a.parquet"), {k: v[:700] for k, v in cols.items()})
  io.write_parquet(str(tmp_path / "b.parquet"), {k: v[700:] for k, v in cols.items()})
  opts = {"sr_id_min": 0.4, "cr_id_floor": -0.5, "prompt_id_min": 0.9, "preselection": True}
  table, flow, desc = sources.load_events(str(tmp_path / "*.parquet"), opts)
  prompt = cols["pho_id"] > 0.9
  keep = prompt & (cols["fake_id"] > -0.5)
  # The simulator's events are already preselected; the recomputed mgg may move an edge event at most.
  assert flow["rows"] == 1500 and flow["prompt_id"] == prompt.sum()
  assert abs(flow["sr_or_cr"] - keep.sum()) <= 2 and flow["preselection"] >= flow["prompt_id"] - 2
  assert flow["sr"] == int(table["is_sr"].sum()) == int((table["fake_id"] > 0.4).sum())
  assert flow["sr"] + flow["cr"] == flow["sr_or_cr"] and "2 files" in desc


def test_missing_and_bad_columns_name_file_and_column(tmp_path, events):
  path = str(tmp_path / "nt.parquet")
  io.write_parquet(path, _ntuple(events))
  mapping = {k: v for k, v in THEIRS.items() if k != "fake_id"}  # fake_id unmapped: looked up as 'fake_id'
  with pytest.raises(ValueError, match=r"nt\.parquet: column\(s\) 'fake_id' not found"):
    sources.load_source(path, {"columns": mapping})
  with pytest.raises(ValueError, match=r"nt\.parquet: column\(s\) fake_id \(file column 'g2_id'\) not found"):
    sources.load_source(path, {"columns": {**THEIRS, "fake_id": "g2_id"}})
  with pytest.raises(ValueError, match=r"nt\.parquet: column\(s\) 'weight' not found"):
    sources.load_source(path, {"columns": THEIRS, "extra_columns": ("weight",)})
  with pytest.raises(ValueError, match=r"diphoton columns are always recomputed"):
    sources.load_source(path, {"columns": {**THEIRS, "mgg": "m_gg"}})
  with pytest.raises(ValueError, match=r"unknown column name\(s\) \['fake_iso'\]"):
    sources.load_source(path, {"columns": "fake_iso=iso"})
  with pytest.raises(ValueError, match=r"'pho_pt' is not of the form ours=theirs"):
    sources.load_source(path, {"columns": "pho_pt"})
  bad = _ntuple(events)
  bad["g2_mva"] = bad["g2_mva"].copy()
  bad["g2_mva"][[3, 7]] = np.nan
  io.write_parquet(str(tmp_path / "nan.parquet"), bad)
  with pytest.raises(ValueError, match=r"nan\.parquet: column 'g2_mva' has 2 NaN/inf value\(s\)"):
    sources.load_source(str(tmp_path / "nan.parquet"), {"columns": THEIRS})
  with pytest.raises(ValueError, match=r"nope\.parquet: file not found"):
    sources.load_source(str(tmp_path / "nope.parquet"))
  with pytest.raises(ValueError, match="format must be auto, nanoaod or table"):
    sources.load_source(path, {"format": "csv"})


def test_nanoaod_dispatch_with_config_dict_options():
  data = ml_collections.ConfigDict({"source": REAL, "n_train": 100, "mode": "data", "preselection": False,
                                    "prompt_id_min": -1.0, "cr_id_floor": -1.0, "sr_id_min": -0.5,
                                    "prompt_flavours": (1,), "extra_columns": ("event",)})
  sr, cr, desc = sources.load_source(data.source, data)  # unrelated keys (n_train) are ignored
  assert desc.startswith("NanoAOD") and "two_photons 9" in desc
  assert len(sr["pho_pt"]) + len(cr["pho_pt"]) == 9 and "event" in sr
  flat = tables.list_columns(REAL)
  assert "Photon_pt" in flat and "PV_npvs" in flat
  with pytest.raises(ValueError, match=r"branch 'Photon_mvaID_x' not found"):
    sources.load_source(REAL, {"id_branch": "Photon_mvaID_x"})


def test_flat_root_file_is_not_mistaken_for_nanoaod(tmp_path, events):
  path = str(tmp_path / "flat.root")
  io.write_root(path, {k: v for k, v in events.items() if k in gjets.ALL_COLUMNS}, tree="Events")
  sr, cr, desc = sources.load_source(path, {"preselection": False})
  assert desc.startswith("table") and len(sr["pho_pt"]) + len(cr["pho_pt"]) == 1500


# ---- outputs ------------------------------------------------------------------------------------------


def _outputs(n=1234):
  rng = np.random.default_rng(0)
  return {"gan_fake_pt": rng.exponential(30, n).astype(np.float32), "mgg": rng.normal(125, 10, n),
          "n_jets": rng.integers(0, 9, n).astype(np.int32), "event": rng.integers(0, 2**40, n),
          "gan_pass_sr": rng.random(n) < 0.3, "flav": rng.integers(0, 20, n).astype(np.uint8)}


META = {"ganjax_config": '{"data": {"source": "x*.root"}, "seed": 0}', "ganjax_version": "0.1.0"}


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_write_read_round_trip_is_exact_with_metadata(tmp_path, fmt):
  cols = _outputs()
  path = str(tmp_path / f"out.{fmt}")
  (io.write_parquet if fmt == "parquet" else io.write_root)(path, cols, META)
  got, meta = (io.read_parquet if fmt == "parquet" else io.read_root)(path)
  assert meta == META and list(got) == list(cols)
  for k, v in cols.items():
    assert got[k].dtype == v.dtype, k
    np.testing.assert_array_equal(got[k], v, err_msg=k)
  assert sorted(os.listdir(tmp_path)) == [f"out.{fmt}"]  # no temporary file left behind


def test_root_output_is_a_ttree_that_read_table_and_uproot_read(tmp_path):
  cols = _outputs(250_001)  # more than one basket
  path = str(tmp_path / "out.root")
  io.write_root(path, cols, META, tree="ganed")
  with uproot.open(path) as f:
    assert f.classnames()["ganed;1"] == "TTree"
    assert str(f["metadata/ganjax_version"]) == "0.1.0"
  got = tables.read_table(path, columns=["mgg", "n_jets"])
  np.testing.assert_array_equal(got["mgg"], cols["mgg"])
  io.write_root(path, {"x": np.zeros(0, np.float32)})  # empty tables and overwriting work
  assert io.read_root(path)[0]["x"].shape == (0,)


def test_write_root_rejects_bad_columns_before_writing(tmp_path):
  path = str(tmp_path / "bad.root")
  with pytest.raises(ValueError, match=r"bad\.root: columns must be 1D of equal length.*'b'"):
    io.write_root(path, {"a": np.zeros(3), "b": np.zeros(4)})
  with pytest.raises(ValueError, match=r"bad\.root: only numeric/bool columns.*'s'"):
    io.write_root(path, {"s": np.array(["x", "y"])})
  with pytest.raises(ValueError, match=r"metadata keys \['a/b'\]"):
    io.write_root(path, {"a": np.zeros(3)}, {"a/b": "x"})
  assert not os.listdir(tmp_path)


def test_hdf5_compound_dataset_and_missing_h5py(tmp_path, events, monkeypatch):
  path = str(tmp_path / "pandas_like.h5")
  try:
    import h5py
  except ImportError:
    h5py = None
  if h5py is not None:  # one compound dataset with named fields, as pandas to_hdf(format="table") writes
    cols = _ntuple(events)
    rows = np.zeros(len(cols["g1_pt"]), dtype=[(k, v.dtype) for k, v in cols.items()])
    for k, v in cols.items():
      rows[k] = v
    with h5py.File(path, "w") as f:
      f.create_dataset("df/table", data=rows)
    sr, cr, _ = sources.load_source(path, {"columns": THEIRS, "tree": "df/table", "preselection": False})
    assert len(sr["pho_pt"]) == int(events["is_sr"].sum())
    assert tables.list_columns(path, "df/table")[:2] == ["g1_pt", "g1_eta"]
  else:
    open(path, "wb").close()
  monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # as on a machine without h5py
  with pytest.raises(ValueError, match=r"pandas_like\.h5: reading HDF5 needs the h5py package"):
    sources.load_source(path, {"columns": THEIRS})


_DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 300).flatmap(lambda n: st.lists(
    _DTYPES.flatmap(lambda dt: hnp.arrays(dt, n)), min_size=1, max_size=4)))
def test_root_round_trip_property(arrays):
  cols = {f"c{i}": a for i, a in enumerate(arrays)}
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "p.root")
    io.write_root(path, cols, {"k": "v"}, basket_rows=97)
    got, meta = io.read_root(path)
  assert meta == {"k": "v"} and list(got) == list(cols)
  for k, v in cols.items():
    assert got[k].dtype == v.dtype
    np.testing.assert_array_equal(got[k], v)


def test_config_data_defaults_agree_with_the_library():
  """configs/hgg.py writes the data defaults out (configs import nothing from ganjax); they must be the
  library's (sources.DEFAULT_OPTIONS, from nanoaod.Selection and gjets.GJetsParams)."""
  from conftest import load_config
  data = load_config("hgg").data
  shared = [k for k in sources.DEFAULT_OPTIONS if k in data]
  assert len(shared) >= 15
  for k in shared:
    want = sources.DEFAULT_OPTIONS[k]
    assert (tuple(data[k]) if isinstance(want, tuple) else data[k]) == want, k


@pytest.mark.parametrize("name,content,message", [
    ("empty.parquet", b"", "the file is empty (0 bytes)"),
    ("garbage.parquet", b"not a parquet file at all", "cannot be read as a .parquet file"),
    ("truncated.csv", b"", "the file is empty (0 bytes)"),
    ("header.csv", b"pho_pt,pho_eta,pho_phi,pho_id,fake_pt,fake_eta,fake_phi,fake_id\n", "table is empty (no rows)"),
])
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(ValueError) as e:
    sources.load_source(str(path), {})
  assert str(e.value).startswith(str(path)) and message in str(e.value)
