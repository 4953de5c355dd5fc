"""The main job end to end on the tiny preset: outputs, best-model selection, SIGTERM save + resume equality
(in process and through the CLI), NaN stop, bad input, vmapped members, data parallelism."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import scipy.special
import orbax.checkpoint as ocp
import pytest
from conftest import load_config, tb_scalars

from ganjax import hgg, io, validation
from ganjax.data import gjets
from ganjax.engine.checkpoints import Checkpoints
from ganjax.engine.errors import BadInputError, InterruptedError_, TrainingDivergedError

hgg_run = importlib.import_module("ganjax.hgg.run")  # the module (ganjax.hgg.run is the function)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPE = 4  # steps per epoch of the test preset: 512 training events in batches of 128


def _config(**overrides):
  return load_config("hgg:test", **overrides)


def tb_values(workdir: str, tag: str) -> dict[int, float]:
  """step -> value of one tag over every event file of workdir/tb (a resumed run adds a file)."""
  return {step: v for t, step, v in tb_scalars(os.path.join(workdir, "tb")) if t == tag}


@pytest.fixture(scope="module")
def regions():
  events = gjets.simulate(6_000, seed=0)
  sr, cr = gjets.split_regions(events)
  return sr, cr, "test simulation"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, regions):
  workdir = str(tmp_path_factory.mktemp("straight"))
  metrics = hgg.run(_config(), workdir, regions=regions)
  return workdir, metrics


def test_outputs(straight_run, regions):
  workdir, metrics = straight_run
  for name in ("config.json", "metrics.json", "ganed_cr.parquet", "mc_sr_test.parquet"):
    assert os.path.exists(os.path.join(workdir, name)), name
  on_disk = json.load(open(os.path.join(workdir, "metrics.json")))
  assert on_disk["best_epoch"] in on_disk["history"]["epoch"]
  assert on_disk["history"]["epoch"] == [2, 4]
  assert set(on_disk["test_nll"]) == {"1", "3"}
  assert np.isfinite(on_disk["best_val_nll"])
  assert on_disk["best_val_nll"] == min(on_disk["history"]["val_nll"])
  assert {"ganed_cr_vs_mc_sr", "mc_cr_vs_mc_sr"} <= set(on_disk["s2"]["fake_pt"])
  cols, meta = io.read_parquet(os.path.join(workdir, "ganed_cr.parquet"))
  _, cr, _ = regions
  assert set(cr) <= set(cols)  # every CR column is kept
  for c in ("gan_fake_pt", "gan_fake_eta", "gan_fake_phi", "gan_fake_id", "gan_mgg", "gan_ptgg_over_mgg"):
    assert c in cols and np.all(np.isfinite(cols[c]))
  assert len(cols["gan_fake_pt"]) == 512
  # Each fake redrawn until the GANed event passes the SR selection (apply.max_draws): gan_draws is the draw
  # that passed, 0 where none did, so it agrees with the host's selection.
  np.testing.assert_array_equal(cols["gan_draws"] > 0, cols["gan_pass_sr"])
  assert on_disk["ganed_cr_pass_sr_fraction"] == pytest.approx(np.mean(cols["gan_pass_sr"]))
  assert on_disk["ganed_cr_first_draw_pass_fraction"] == pytest.approx(np.mean(cols["gan_draws"] == 1))
  assert on_disk["ganed_cr_pass_sr_fraction"] > on_disk["ganed_cr_first_draw_pass_fraction"]
  assert np.all(np.abs(cols["gan_fake_phi"]) <= np.pi)
  # relative_features' default with the full strategy: phi from the recoil axis, pT above the preselection's edge
  assert on_disk["generated_relative_to"] == {"fake_phi": "recoil_phi", "fake_pt": "window"}
  ideal = on_disk["validation"]["ideal_reference"]  # simulator data: the ideal-generator reference
  assert ideal["accepted_fraction"] > 0.9
  for key in ("ideal_vs_mc_sr", "ganed_vs_ideal"):
    assert np.isfinite(ideal[key]["summary"]["chi"]) and set(validation.HGG_OBSERVABLES) == set(ideal[key]["s2"])
  # Diphoton columns are recomputed from the generated photon.
  dip = gjets.diphoton(cols["pho_pt"], cols["pho_eta"], cols["pho_phi"], cols["gan_fake_pt"],
                       cols["gan_fake_eta"], cols["gan_fake_phi"])
  np.testing.assert_allclose(cols["gan_mgg"], dip["mgg"], rtol=1e-5)
  assert "ganjax_config" in meta
  assert on_disk["seconds"]["total"] >= on_disk["seconds"]["train_and_eval"] > 0
  files = [os.path.join(d, f) for d, _, fs in os.walk(workdir) for f in fs]
  assert max(files, key=os.path.getmtime).endswith("metrics.json")  # written last
  val = tb_values(workdir, "val_nll")  # TensorBoard x axis: optimizer steps
  assert sorted(val) == [2 * SPE, 4 * SPE]
  np.testing.assert_allclose([val[k] for k in sorted(val)], on_disk["history"]["val_nll"], rtol=1e-6)
  assert set(tb_values(workdir, "d_loss")) == set(val)


def test_generated_fakes_respect_the_eta_acceptance(straight_run):
  """The tiny trained model's fakes: none in the barrel-endcap gap, none beyond the acceptance (4 epochs are
  too few to spread them into the endcap: the quick preset's measurement shows that, docs/results.md); the
  validation records the region fractions and the S^2 checks with their floors."""
  workdir, metrics = straight_run
  cols, _ = io.read_parquet(os.path.join(workdir, "ganed_cr.parquet"))
  a = np.abs(cols["gan_fake_eta"])
  assert not np.any((a > 1.4442) & (a < 1.566)) and np.all(a < 2.5)
  eta = metrics["validation"]["eta_regions"]
  assert eta["gap"]["ganed"] == 0 and eta["endcap"]["ganed"] == pytest.approx(np.mean(a > 1.566))
  check = metrics["validation"]["s2_check"]
  assert set(check) == set(validation.GENERATED_OBSERVABLES)
  assert all(np.isfinite(v["floor"]) and v["floor"] > 0 for v in check.values())


def test_sigterm_saves_and_resume_equals_straight_run(tmp_path, straight_run, regions):
  _, straight = straight_run
  workdir = str(tmp_path / "resumed")

  def send_sigterm(epoch):
    if epoch == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(InterruptedError_, match="epoch 2"):
    hgg.run(_config(), workdir, regions=regions, on_segment_end=send_sigterm)
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  assert [d for d in os.listdir(os.path.join(workdir, "checkpoints", "latest")) if d.isdigit()] == [str(2 * SPE)]
  resumed = hgg.run(_config(), workdir, regions=regions)
  for key in ("history", "best_epoch", "best_val_nll", "test_nll", "s2"):
    assert resumed[key] == straight[key], key


def test_best_model_is_the_argmin_of_the_validation_history(tmp_path, regions, monkeypatch):
  """The kept generator is the one of the evaluation with the lowest validation -2lnL: the validation metric
  is offset per evaluation so that its minimum is at the second of four, and the best checkpoint must hold
  the generator saved at that epoch (not the first, not the last)."""
  captured, offsets = {}, iter([300.0, 0.0, 200.0, 100.0])
  real_setup, real_nll = hgg_run.setup, hgg_run.neg2_log_likelihood

  def setup(*args, **kwargs):
    s = real_setup(*args, **kwargs)
    captured["val_m"] = s.val_set[1]
    return s

  def nll(real, counts):
    return real_nll(real, counts) + (next(offsets) if real is captured["val_m"] else 0.0)

  monkeypatch.setattr(hgg_run, "setup", setup)
  monkeypatch.setattr(hgg_run, "neg2_log_likelihood", nll)
  workdir, snaps = str(tmp_path / "run"), str(tmp_path / "snapshots")

  def snapshot(epoch):  # the state saved at each segment end (the driver keeps only the last two)
    latest = os.path.join(workdir, "checkpoints", "latest")
    shutil.copytree(os.path.join(latest, str(epoch * SPE)), os.path.join(snaps, str(epoch)))

  metrics = hgg.run(_config(**{"train.eval_every": 1, "output.validation": False}), workdir, regions=regions,
                    on_segment_end=snapshot)
  val, epochs = metrics["history"]["val_nll"], metrics["history"]["epoch"]
  assert epochs == [1, 2, 3, 4] and len(set(val)) == 4
  assert metrics["best_epoch"] == epochs[int(np.argmin(val))] == 2
  assert metrics["best_val_nll"] == min(val)
  restore = lambda path: ocp.StandardCheckpointer().restore(os.path.join(path, "tree"))
  best_dir = os.path.join(workdir, "checkpoints", "best")
  assert [d for d in os.listdir(best_dir) if d.isdigit()] == [str(2 * SPE)]
  best = restore(os.path.join(best_dir, str(2 * SPE)))["best"]
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  at = {e: restore(os.path.join(snaps, str(e)))["state"]["params"]["g"] for e in epochs}
  assert same(best, at[2])
  assert not same(best, at[1]) and not same(best, at[4])  # the generator moved: the check can tell them apart


def test_ties_within_sigma_keep_the_earlier_model_and_resume_exactly(tmp_path, regions, monkeypatch):
  """metric.select_within_sigma = n: a later generator replaces the kept one only when its validation -2lnL
  is lower by more than n paired event-bootstrap sigma (the margin, recorded in the history). Epoch 3's value
  is offset 100 lower, well within 100 sigma (~2.5 each): epoch 1 stays kept while the plain rule takes
  epoch 3. Interrupted after epoch 1 and after epoch 2 and resumed, the run ends as an uninterrupted one: the
  margins come from the kept generator saved in the checkpoint (a memory in the process would restart after
  epoch 2 and take epoch 3)."""
  epoch, real_setup, real_nll = {}, hgg_run.setup, hgg_run.neg2_log_likelihood

  def setup(*args, **kwargs):
    s = real_setup(*args, **kwargs)
    epoch["val_m"] = s.val_set[1]
    return s

  def nll(real, counts):  # evaluate() computes the validation -2lnL once per epoch (eval_every = 1)
    if real is not epoch["val_m"]:
      return real_nll(real, counts)
    epoch["now"] += 1
    return real_nll(real, counts) - (100.0 if epoch["now"] == 3 else 0.0)

  monkeypatch.setattr(hgg_run, "setup", setup)
  monkeypatch.setattr(hgg_run, "neg2_log_likelihood", nll)
  config = _config(**{"metric.select_within_sigma": 100.0, "train.eval_every": 1, "output.validation": False})

  def run(workdir, first_epoch, stop_at=None):
    epoch["now"] = first_epoch - 1

    def stop(e):
      if e == stop_at:
        os.kill(os.getpid(), signal.SIGTERM)
    return hgg.run(config, workdir, regions=regions, on_segment_end=stop)

  straight = run(str(tmp_path / "straight"), 1)
  h = straight["history"]
  assert h["epoch"] == [1, 2, 3, 4] and h["val_nll_margin"][0] == 0
  assert all(100 < m < 1e4 for m in h["val_nll_margin"][1:])  # 100 sigma, sigma ~ a few units
  assert h["val_nll"][2] < h["val_nll"][0] - 50  # epoch 3 is much lower, yet within its margin: a tie
  assert straight["best_epoch"] == 1 and straight["best_val_nll"] == h["val_nll"][0]
  assert straight["selection"]["plain_best_epoch"] == 3 and straight["selection"]["n_sigma"] == 100
  workdir = str(tmp_path / "resumed")
  for first, stop_at in ((1, 1), (2, 2)):
    with pytest.raises(InterruptedError_, match=f"epoch {stop_at}"):
      run(workdir, first, stop_at)
  resumed = run(workdir, 3)
  for key in ("history", "best_epoch", "best_val_nll", "selection", "test_nll", "s2"):
    assert resumed[key] == straight[key], key
  margin = tb_values(workdir, "val_nll_margin")
  assert sorted(margin) == [e * SPE for e in h["epoch"]]
  np.testing.assert_allclose([margin[k] for k in sorted(margin)], h["val_nll_margin"], rtol=1e-6)


def test_cli_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
  """python -m ganjax.main: SIGTERM after the first segment's checkpoint saves and exits with status 130;
  the same command again resumes and ends with the metrics of an uninterrupted run; TensorBoard logs in tb/."""
  overrides = {"train.epochs": 8, "output.validation": False}
  workdir = str(tmp_path / "cli")
  cmd = [sys.executable, "-m", "ganjax.main", "--config=configs/hgg.py:test", f"--workdir={workdir}",
         *(f"--config.{k}={v}" for k, v in overrides.items())]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  latest = os.path.join(workdir, "checkpoints", "latest")
  deadline = time.time() + 300
  while not (os.path.isdir(latest) and any(d.isdigit() for d in os.listdir(latest))):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.02)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-2000:]
  assert "interrupted" in err and "rerun with" in err
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  saved = max(int(d) for d in os.listdir(latest) if d.isdigit())
  assert saved < 8 * SPE  # stopped before the end: the rerun really resumes
  again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"resuming {workdir} at epoch {saved // SPE}" in again.stdout + again.stderr
  resumed = json.load(open(os.path.join(workdir, "metrics.json")))
  straight = hgg.run(_config(**overrides), str(tmp_path / "straight"))
  for key in ("history", "best_epoch", "best_val_nll", "test_nll", "s2", "s2_fake_pt_ratio"):
    assert resumed[key] == straight[key], key
  val = tb_values(workdir, "val_nll")
  assert sorted(val) == [e * SPE for e in resumed["history"]["epoch"]] == [2 * SPE, 4 * SPE, 6 * SPE, 8 * SPE]


def test_changed_config_in_existing_workdir_is_refused(straight_run, regions):
  workdir, _ = straight_run
  with pytest.raises(BadInputError, match="different config"):
    hgg.run(_config(**{"train.label_noise": 0.1}), workdir, regions=regions)


def test_nan_loss_stops_and_names_the_epoch(tmp_path, regions):
  with pytest.raises(TrainingDivergedError, match="epoch 1"):
    hgg.run(_config(**{"train.optimizer.learning_rate": float("inf"), "train.eval_every": 1}), str(tmp_path),
            regions=regions)


def _bad(regions, msg, tmp_path, config=None, mutate=None):
  sr, cr, name = regions
  sr, cr = dict(sr), dict(cr)
  if mutate:
    sr, cr = mutate(sr, cr)
  with pytest.raises(BadInputError, match=msg):
    hgg.run(config or _config(), str(tmp_path), regions=(sr, cr, name))


def test_bad_inputs(tmp_path, regions):
  def nan_in_sr(sr, cr):
    x = sr["jet_pt"].copy()
    x[[3, 7, 11]] = np.nan
    x[5] = np.inf
    return {**sr, "jet_pt": x}, cr
  _bad(regions, r"non-finite.*jet_pt: 4 rows", tmp_path / "a", mutate=nan_in_sr)
  _bad(regions, r"missing column.*'n_vtx'", tmp_path / "b",
       mutate=lambda sr, cr: (sr, {k: v for k, v in cr.items() if k != "n_vtx"}))
  _bad(regions, "CR is empty", tmp_path / "c", mutate=lambda sr, cr: (sr, {k: v[:0] for k, v in cr.items()}))
  _bad(regions, "SR is empty", tmp_path / "d", mutate=lambda sr, cr: ({k: v[:0] for k, v in sr.items()}, cr))
  _bad(regions, r"missing column.*'jet_mass'", tmp_path / "e",
       config=_config(strategy="custom", cond_features=("jet_pt", "jet_mass")))
  _bad(regions, r"n_samples \(S\) must be >= 1", tmp_path / "f", config=_config(**{"metric.n_samples": 0}))
  _bad(regions, "larger than the training set", tmp_path / "g", config=_config(**{"train.batch_size": 4096}))
  _bad(regions, "SR has .* events but", tmp_path / "h", config=_config(**{"data.n_train": 100_000}))
  for sub in "abcdefgh":  # rejected before any compute: nothing but the resolved config was written
    assert not os.path.exists(tmp_path / sub / "checkpoints")


def test_cli_rejects_misspelt_override(tmp_path):
  out = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/hgg.py:test",
                        "--config.train.epoch=3", f"--workdir={tmp_path}"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert "epoch" in out.stderr


def test_flat_table_source_and_root_output(tmp_path):
  """--config.data.source=<file> reads a flat ntuple (renamed columns); outputs can be ROOT TTrees."""
  events = gjets.simulate(6_000, seed=1)
  cols = {("g2_pt" if k == "fake_pt" else k): v for k, v in events.items() if k != "is_sr"}
  cols["evt"] = np.arange(len(cols["pho_pt"]), dtype=np.int64)
  path = str(tmp_path / "ntuple.parquet")
  io.write_parquet(path, cols)
  config = _config(**{"data.source": path, "data.columns": "fake_pt=g2_pt", "data.extra_columns": ("evt",),
                      "output.format": "root", "output.validation": False, "train.epochs": 2,
                      "relative_to_jet": True, "dctr.enabled": True, "dctr.train.epochs": 2})
  metrics = hgg.run(config, str(tmp_path / "run"))
  assert metrics["n_sr_train"] == 512
  out, meta = io.read_root(str(tmp_path / "run" / "ganed_cr.root"))
  assert "gan_fake_pt" in out and "evt" in out and "ganjax_config" in meta
  assert len(out["evt"]) == 512
  assert metrics["generated_relative_to"] == {"fake_eta": "jet_eta", "fake_phi": "jet_phi"}
  assert np.all(np.abs(out["gan_fake_phi"]) <= np.pi)
  # DCTR: per-event weights on the GANed CR, normalised to its size, clipped at 5 before normalisation.
  w = out["dctr_weight"]
  assert np.all(w > 0) and np.isclose(w.mean(), 1.0, rtol=1e-4)
  assert {"median_s2_ratio", "median_r_weighted", "n_eff"} <= set(metrics["dctr"]["summary"])
  assert set(metrics["dctr"]["observables"]) == set(validation.HGG_OBSERVABLES)
  bad = _config(**{"data.source": str(tmp_path / "missing*.parquet")})
  with pytest.raises(BadInputError):
    hgg.run(bad, str(tmp_path / "bad"))


def test_cr_subset_keeps_events_whole(regions):
  """data.n_cr picks whole events: every column of a kept CR row comes from the same event."""
  sr, cr, _ = regions
  config = _config(**{"data.n_cr": 100})
  prep = hgg.Prepared(config, sr, cr)
  rows = {tuple(r) for r in np.stack([cr[c] for c in gjets.ALL_COLUMNS], -1)}
  kept = np.stack([prep.cr[c] for c in gjets.ALL_COLUMNS], -1)
  assert len(kept) == 100 and all(tuple(r) in rows for r in kept)


@pytest.mark.parametrize("strategy,n_cond,relative", [
    ("vanilla", 0, {}), ("partial", 3, {"fake_phi": "jet_phi"}),
    ("full", 9, {"fake_phi": "recoil_phi", "fake_pt": "window"})])
def test_strategies_prepare(tmp_path, regions, strategy, n_cond, relative):
  """Each conditioning strategy (Sec. 3.1) gives the model the right inputs; vanilla has none. Each generated
  feature takes the first relative_features entry whose reference the conditions provide, and the model
  coordinates map back to the physical SR fakes."""
  sr, cr, _ = regions
  prep = hgg.Prepared(_config(strategy=strategy), sr, cr)
  assert prep.cond(prep.train, 0).shape == (512, n_cond)
  assert prep.gen(prep.train).shape == (512, 4)
  assert prep.relative == relative
  back = hgg_run.metric.to_physical(np.asarray(prep.gen_qt.inverse(prep.gen(prep.train).astype(np.float64))),
                                    prep.train, prep.gen_names, prep.relative)
  for i, name in enumerate(prep.gen_names):
    np.testing.assert_allclose(back[name], prep.train[name], rtol=1e-3, atol=2e-3, err_msg=name)
  # the sample tails (data.quantile_tails): the normal coordinate reaches Phi^-1(1 - 1/(2 n_train)), and the
  # metric's own knots (diphoton dims) sit at the generator's probabilities, so its bins stay SR-quantiles
  assert prep.gen_qt.eps == pytest.approx(0.5 / 512) and prep.cond_qt.eps == prep.gen_qt.eps
  assert np.abs(prep.gen(prep.train)).max() == pytest.approx(scipy.special.ndtri(1 - 0.5 / 512), abs=1e-3)
  for k, d in enumerate(prep.metric_dims):
    if d not in prep.gen_names:
      vals = gjets.diphoton(*[prep.train[c] for c in ("pho_pt", "pho_eta", "pho_phi", "fake_pt", "fake_eta",
                                                      "fake_phi")])[d]
      u = prep.metric_qt.select([k]).forward(np.asarray(vals, np.float64)[:, None])[:, 0]
      np.testing.assert_allclose(np.histogram(u, 4, (-1, 1))[0] / len(u), 0.25, atol=0.02, err_msg=d)
  ckpt = Checkpoints(str(tmp_path))  # the fitted transforms travel with every checkpoint
  ckpt.save_best(1, {"aux": prep.transforms()}, {})
  tree, _, step = ckpt.restore_best({"aux": prep.transforms()})
  np.testing.assert_array_equal(tree["aux"]["gen"].knots_DxQ, prep.gen_qt.knots_DxQ)
  assert step == 1
  ckpt.close()


def test_vmapped_members_equal_runs_alone(tmp_path, straight_run, regions):
  """Members differing in label noise (and seed) train as one program; the member with the config's own
  hyperparameters reproduces the single run, the other one differs."""
  _, straight = straight_run
  out = hgg.train_members(_config(), str(tmp_path / "members"),
                          [{"train.label_noise": 0.0, "seed": 1}, {}], regions=regions)
  other, same = out["members"]
  for k in ("loss_d", "loss_g", "train_nll", "val_nll"):
    assert same["history"][k] == pytest.approx(straight["history"][k], rel=1e-4), k
  assert same["test_nll"] == pytest.approx({s: v for s, v in straight["test_nll"].items()}, rel=1e-4)
  assert same["s2_fake_pt_ratio"] == pytest.approx(straight["s2_fake_pt_ratio"], rel=1e-4)
  assert other["label_noise"] == 0.0 and other["seed"] == 1
  assert other["history"]["loss_d"] != pytest.approx(straight["history"]["loss_d"], rel=1e-4)
  assert json.load(open(tmp_path / "members" / "members.json"))["n_members"] == 2
  with pytest.raises(BadInputError, match="model.latent_dim"):
    hgg.train_members(_config(), str(tmp_path / "bad"), [{"model.latent_dim": 8}], regions=regions)


# Data-parallel main job: the batch split over 8 forced CPU devices (a subprocess: this
# process has one device) gives the single-device run within float tolerance; the gradient all-reduce only
# changes the summation order.
_DATA_PARALLEL_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_disable_most_optimizations", True)
import numpy as np
from configs import hgg as hgg_config
from ganjax import hgg, io
from ganjax.data import gjets

assert len(jax.devices()) == 8, jax.devices()
events = gjets.simulate(6_000, seed=0)
sr, cr = gjets.split_regions(events)
c = hgg_config.get_config("test")
c.output.validation = False  # train.devices = 0: all 8
m = hgg.run(c, f"{sys.argv[1]}/dev8", regions=(sr, cr, "sim"))
out = {"history": m["history"], "test_nll": m["test_nll"], "best_epoch": m["best_epoch"],
       "n_devices": len(m["devices"])}
cols = io.read_parquet(f"{sys.argv[1]}/dev8/ganed_cr.parquet")[0]
out["gan_fake_pt"] = np.asarray(cols["gan_fake_pt"], float).tolist()
# The 8-device program is really data-parallel: gradients are all-reduced across the batch split.
from ganjax.hgg.train import make_train
from ganjax.parallel import data_mesh, replicate
mesh = data_mesh(8)
train = make_train(c, 5, 4, 512, mesh=mesh)
st = replicate(train.init(jax.random.PRNGKey(0)), mesh)
d = replicate({"gen": np.zeros((512, 4), np.float32), "cond": np.zeros((512, 5), np.float32)}, mesh)
hlo = jax.jit(train.train_segment, static_argnums=2).lower(st, d, 4).compile().as_text()
out["all_reduce"] = "all-reduce" in hlo
print("RESULT" + json.dumps(out))
"""


def test_data_parallel_8_devices_equals_single_device(tmp_path, straight_run):
  workdir, one = straight_run
  one_fake_pt = io.read_parquet(os.path.join(workdir, "ganed_cr.parquet"))[0]["gan_fake_pt"].tolist()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO)
  r = subprocess.run([sys.executable, "-c", _DATA_PARALLEL_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                     text=True, cwd=REPO, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  eight = json.loads(r.stdout.split("RESULT", 1)[1])
  assert eight.pop("all_reduce")  # the 8-device step really all-reduces gradients
  assert eight["n_devices"] == 8 and len(one["devices"]) == 1
  for k in ("loss_d", "loss_g", "train_nll", "val_nll"):
    assert one["history"][k] == pytest.approx(eight["history"][k], rel=1e-3), k
  assert one["best_epoch"] == eight["best_epoch"]
  for s in one["test_nll"]:
    assert one["test_nll"][s] == pytest.approx(eight["test_nll"][s], rel=1e-3)
  assert one_fake_pt == pytest.approx(eight["gan_fake_pt"], rel=1e-3, abs=1e-3)


def test_batch_not_divisible_by_devices_is_refused():
  c = _config(**{"train.devices": 5})  # more than the single test device
  with pytest.raises(BadInputError, match="train.devices"):
    hgg.check_config(c)
