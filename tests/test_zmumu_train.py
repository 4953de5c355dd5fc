"""Tiny end-to-end tests of the analysis-specific GAN on the engine (configs/zmumu.py:test): Eq. 2 terms,
selection = argmin of the validation KS sum with the kept generator of that step, resume after SIGTERM,
TensorBoard logs, and the command line."""

import importlib
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, load_config, tb_scalars
from scipy import stats

from ganjax.asg import data as adata
from ganjax.asg import metrics as ametrics
from ganjax.asg import train as atrain
from ganjax.data import zmumu
from ganjax.engine.errors import BadInputError, InterruptedError_

asg_run = importlib.import_module("ganjax.asg.run")  # the module (ganjax.asg.run is also the function's name)

# the full model (zero-spike iso, asinh dxy) on the test preset's tiny networks; 3 members, the last with Eq. 2
# off, so that two members compete for the selection
FULL = {"model.name": "full", "model.features": zmumu.FULL, "model.zero_spike": ("iso1", "iso2"),
        "model.asinh": {"dxy1": 0.01, "dxy2": 0.01}, "selection.quantities": ("mll", "dphi", "iso1"),
        "eval.spike_features": ("iso1", "iso2"), "eval.plots": False, "n_members": 3}


def _setup(config):
  split = adata.split_table(zmumu.load(config), config.data.val_frac, config.data.test_frac, config.seed)
  return split, adata.make_data(config, split.train, zmumu.DERIVED)


def test_regression_terms_and_segments_compose():
  config = load_config("zmumu:test")
  split, data = _setup(config)
  members = atrain.make_members(config, zmumu.DERIVED)
  c_MxR = np.asarray([[1e-2], [0.0]], np.float32)
  c3_MxP = np.asarray([[3e-3], [0.0]], np.float32)
  state0 = atrain.set_regression(members.init(jax.random.split(jax.random.PRNGKey(0), 2)), c_MxR, c_MxR, c3_MxP)
  state1, hist = members.segment(state0, data, 4)
  state2, _ = members.segment(state1, data, 4)
  hist = {k: np.asarray(v) for k, v in hist.items()}
  assert hist["d_loss"].shape == (2, 4) and all(np.all(np.isfinite(v)) for v in hist.values())
  # Eq. 2 terms recomputed from the logged batch mean / width of M_ll
  t_mean, t_std = float(data.target_mean_R[0]), float(data.target_std_R[0])
  mll_ref = np.asarray(zmumu.mll(split.train))
  assert np.isclose(t_mean, mll_ref.mean(), rtol=1e-5) and np.isclose(t_std, mll_ref.std(), rtol=1e-4)
  expect = 1e-2 * (hist["g_mll_mean"][0] - t_mean) ** 2 + 1e-2 * (hist["g_mll_std"][0] - t_std) ** 2
  np.testing.assert_allclose(hist["g_regression"][0], expect + 3e-3 * hist["g_mll_w2"][0], rtol=1e-4)
  # the distribution term's targets: the training M_ll's quantiles at the levels (b + 1/2) / B
  bs = config.train.batch_size
  np.testing.assert_allclose(np.asarray(data.target_quantiles_PxB[0]),
                             np.quantile(mll_ref, (np.arange(bs) + 0.5) / bs), rtol=1e-5)
  np.testing.assert_array_equal(hist["g_regression"][1], 0.0)
  np.testing.assert_allclose(hist["g_loss"], hist["g_bce"] + hist["g_regression"], rtol=1e-6)
  # RNG by fold_in(key, step): two segments of 4 steps train the same model as one of 8
  state_8, _ = members.segment(state0, data, 8)
  for a, b in zip(jax.tree.leaves(state_8.params), jax.tree.leaves(state2.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  # generation: physical features of the config
  gen = atrain.make_generate(config)(jax.tree.map(lambda a: a[0], state2.params["g"]), data.pre,
                                     jax.random.PRNGKey(1), 256)
  assert set(gen) == set(config.model.features) and gen["px1"].shape == (256,)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  """One uninterrupted run of the full model (4 evaluations of 10 steps, 3 members)."""
  config = load_config("zmumu:test", **FULL)
  workdir = str(tmp_path_factory.mktemp("zmumu") / "a")
  return config, workdir, asg_run.run(config, workdir, log=lambda s: None)


def test_selection_is_argmin_of_validation_ks_with_that_steps_generator(full_run):
  """Each member keeps the generator of the step with the lowest validation KS sum (recomputed here with
  scipy from a retraining), and the selected member is the Eq. 2-on member with the lowest one."""
  config, workdir, out = full_run
  hist = json.load(open(os.path.join(workdir, "history.json")))
  steps, ks_ExM = np.asarray(hist["step"]), np.asarray(hist["ks_sum_val"])
  np.testing.assert_array_equal(steps, [10, 20, 30, 40])
  argmin_M = steps[np.argmin(ks_ExM, axis=0)]
  assert not np.array_equal(argmin_M, steps[np.argmax(ks_ExM, axis=0)])  # the test can tell min from max
  for m, mem in enumerate(out["members"]):
    assert mem["selected_step"] == argmin_M[m]
    assert mem["ks_sum_val"] == ks_ExM[:, m].min()
  on = [m for m, mem in enumerate(out["members"]) if mem["regression_terms"]]
  assert on == [0, 1] and out["selected_member"] == on[int(np.argmin(ks_ExM[:, on].min(0)))]
  assert out["selected_member"] != on[int(np.argmax(ks_ExM[:, on].min(0)))]
  sc = out["selection_ks_vs_neg2lnl"]["members"]
  nll_ExM = np.asarray(hist["neg2lnl_val"])
  assert [s["step_by_neg2lnl"] for s in sc] == steps[np.argmin(nll_ExM, axis=0)].tolist()

  # retrain the members segment by segment, keep each one's generator at its selected step
  split, data = _setup(config)
  members = atrain.make_members(config, zmumu.DERIVED)
  c1, c2, c3 = atrain.member_weights(config)
  assert np.all(c1[2] == 0) and np.all(c3[2] == 0) and np.all(c3[:2] > 0)  # the last member without the terms
  state = atrain.set_regression(members.init(jax.random.split(jax.random.PRNGKey(config.seed), 3)), c1, c2, c3)
  generate = atrain.make_generate(config)
  sel, n_val = tuple(config.selection.quantities), len(split.val["px1"])
  val_q = adata.derived_values(zmumu.DERIVED, split.val, sel)
  kept = [None] * 3
  for step in steps:
    state, _ = members.segment(state, data, config.train.eval_every)
    for m in range(3):
      g = jax.tree.map(lambda a: a[m], state.params["g"])
      if step == argmin_M[m]:
        kept[m] = g
      if m == out["selected_member"]:  # the recorded validation KS sum, recomputed with scipy
        ev = adata.derived_values(zmumu.DERIVED, generate(g, data.pre, asg_run.selection_key(config.seed, step),
                                                          n_val), sel)
        ref = sum(stats.ks_2samp(ev[n], val_q[n]).statistic for n in sel)
        np.testing.assert_allclose(ks_ExM[list(steps).index(step), m], ref, rtol=1e-6)
  keys = jax.random.split(jax.random.PRNGKey(config.seed + 3), 3)
  for m in range(3):
    gen = generate(kept[m], data.pre, keys[m], config.eval.n_generate)
    assert np.isclose(float(np.mean(zmumu.mll(gen))), out["members"][m]["mll_mean"], rtol=1e-5)
  from ganjax.io import read_parquet
  cols, meta = read_parquet(os.path.join(workdir, "generated.parquet"))
  i = out["selected_member"]
  assert meta["member"] == str(i) and meta["step"] == str(argmin_M[i])
  gen = generate(kept[i], data.pre, keys[i], config.eval.n_generate)
  np.testing.assert_allclose(cols["E1"], np.asarray(gen["E1"]), rtol=1e-6)


def test_full_model_outputs_and_tensorboard(full_run):
  config, workdir, out = full_run
  assert os.path.exists(os.path.join(workdir, "metrics.json"))
  sel = out["selected"]
  assert np.isfinite(sel["ks_sum_test_size_matched"]) and out["floor"]["ks_sum_halves"] > 0
  assert len(out["members"]) == 3 and 0 <= sel["iso1_zero_fraction"] <= 1
  assert out["n_events"]["train"] + out["n_events"]["val"] + out["n_events"]["test"] == 10227
  files = [f for f in os.listdir(os.path.join(workdir, "tb")) if f.startswith("events.out.tfevents")]
  assert len(files) == 1
  scalars = tb_scalars(os.path.join(workdir, "tb"))
  ks = [(step, v) for tag, step, v in scalars if tag == "ks_sum_val/member_0"]
  hist = json.load(open(os.path.join(workdir, "history.json")))
  assert [s for s, _ in ks] == [10, 20, 30, 40]
  np.testing.assert_allclose([v for _, v in ks], np.asarray(hist["ks_sum_val"])[:, 0], rtol=1e-6)
  assert {"d_loss/member_2", "g_mll_mean/member_0", "neg2lnl_val/mean"} <= {tag for tag, _, _ in scalars}


def test_resume_after_sigterm_equals_uninterrupted(full_run, tmp_path):
  config, workdir_a, out_a = full_run
  workdir = str(tmp_path / "b")

  def sigterm_at_20(step):
    if step == 20:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(InterruptedError_, match="SIGTERM"):
    asg_run.run(config, workdir, log=lambda s: None, on_segment_end=sigterm_at_20)
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  out_b = asg_run.run(config, workdir, log=lambda s: None)
  assert out_b["resumed_from_step"] == 20 and out_a["resumed_from_step"] == 0
  ma = json.load(open(os.path.join(workdir_a, "metrics.json")))
  mb = json.load(open(os.path.join(workdir, "metrics.json")))
  drop = ("train_seconds", "total_seconds", "resumed_from_step")
  assert {k: v for k, v in mb.items() if k not in drop} == {k: v for k, v in ma.items() if k not in drop}
  ha = json.load(open(os.path.join(workdir_a, "history.json")))
  hb = json.load(open(os.path.join(workdir, "history.json")))
  assert {k: v for k, v in ha.items() if k != "seconds"} == {k: v for k, v in hb.items() if k != "seconds"}


def test_bad_config_is_refused_before_training(tmp_path):
  config = load_config("zmumu:test", **{"selection.quantities": ("mll", "nope"), "regression.off_members": 5})
  with pytest.raises(BadInputError, match=r"regression.off_members=5.*selection.quantities \['nope'\]"):
    asg_run.run(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")
  config = load_config("zmumu:test", **{"data.source": str(tmp_path / "missing.csv")})
  with pytest.raises(BadInputError, match="missing.csv"):
    asg_run.run(config, str(tmp_path / "w"))


def test_command_line_end_to_end(tmp_path):
  """The command line on a user's own dimuon file: a ROOT TTree with its own column names and no Q / dxy / iso
  branches, read by a plain analysis module given as a path (which reuses the Z -> mu mu one)."""
  import uproot

  raw = zmumu.read_raw(zmumu.CSV_PATH, zmumu.RAW_COLUMNS)
  src = str(tmp_path / "mydimuons.root")
  with uproot.recreate(src) as f:
    f["tree"] = {f"mu{k[-1]}_{k[:-1]}": raw[k] for k in zmumu.required_columns("reduced")}
  mapping = ",".join(f"{k}=mu{k[-1]}_{k[:-1]}" for k in zmumu.required_columns("reduced"))
  (tmp_path / "myanalysis.py").write_text("from ganjax.data.zmumu import DERIVED, OUTPUTS, load\n")
  workdir = str(tmp_path / "cli")
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/zmumu.py:test", f"--workdir={workdir}",
                      f"--config.analysis={tmp_path / 'myanalysis.py'}", f"--config.data.source={src}",
                      "--config.data.tree=tree", f"--config.data.columns={mapping}"],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "selected member 0" in r.stdout
  from ganjax.io import read_parquet
  cols, _ = read_parquet(os.path.join(workdir, "generated.parquet"))
  assert set(zmumu.REDUCED) | {"mll", "ptll"} <= set(cols)  # the derived physics quantities next to the features
  np.testing.assert_allclose(cols["mll"], np.asarray(zmumu.mll({k: cols[k] for k in zmumu.REDUCED})), rtol=1e-5,
                             atol=0.05)  # E^2 - p^2 cancels in float32 for the untrained generator's tiny masses
  np.testing.assert_allclose(cols["ptll"], np.hypot(cols["px1"] + cols["px2"], cols["py1"]), rtol=1e-5)
  files = set(os.listdir(workdir))
  assert {"metrics.json", "history.json", "generated.parquet", "config.json", "tb", "checkpoints",
          "fig4_history.png", "fig5_features.png", "fig6_features_noreg.png", "fig8_derived.png",
          "fig9_correlations.png", "fig10_zpt_iso.png"} <= files
  out = json.load(open(os.path.join(workdir, "metrics.json")))
  assert out["config"]["preset"] == "test" and [m["regression_terms"] for m in out["members"]] == [True, False]
  assert out["n_events"]["train"] + out["n_events"]["val"] + out["n_events"]["test"] == 10583
  peak = out["selected"]["peak"]
  assert peak["real"]["n"] == out["n_events"]["test"] and 0 <= peak["ks_pvalue"] <= 1
  assert out["selected"]["by_ks_mll"]["selected_step"] in (10, 20, 30, 40)


def test_member_terms_give_each_member_its_weights():
  config = load_config("zmumu:test", **{"n_members": 4, "regression.terms": {"mll": (1.0, 2.0), "mll_peak": (3.0, 4.0)},
                                        "regression.distribution": {"mll": 5.0},
                                        "regression.member_terms": ("mll+mll_peak+w2:mll", "w2:mll", "mll_peak", "")})
  c1, c2, c3 = atrain.member_weights(config)
  np.testing.assert_array_equal(c1, [[1, 3], [0, 0], [0, 3], [0, 0]])
  np.testing.assert_array_equal(c2, [[2, 4], [0, 0], [0, 4], [0, 0]])
  np.testing.assert_array_equal(c3, [[5], [5], [0], [0]])
  c1, c2, c3 = atrain.member_weights(load_config("zmumu:test", **{"regression.distribution": {"mll": 5.0}}))
  np.testing.assert_array_equal(c3, [[5], [0]])  # without member_terms: the last off_members have none
  with pytest.raises(ValueError, match=r"member_terms\[1\] = 'w2:ptll': unknown term"):
    atrain.parse_member_terms(load_config("zmumu:test", **{"regression.member_terms": ("mll", "w2:ptll")}))


def test_plots_smoke(tmp_path):
  from ganjax.plots import zmumu as zplots

  rng = np.random.default_rng(0)
  d = {"mll": rng.normal(90, 8, 500), "iso1": np.where(rng.random(500) < 0.6, 0, rng.exponential(2, 500)),
       "ptll": rng.exponential(10, 500)}
  zplots.features(d, d, ("mll", "iso1"), str(tmp_path / "f.png"))
  zplots.correlations(np.eye(2), np.eye(2), ("a", "b"), str(tmp_path / "c.png"))
  zplots.zpt_and_spike(d, d, str(tmp_path / "z.png"))
  assert all((tmp_path / n).stat().st_size > 1000 for n in ("f.png", "c.png", "z.png"))


def test_neg2lnl_matches_numpy_histogramdd():
  rng = np.random.default_rng(0)
  names = ("a", "b")
  train = {n: rng.normal(size=4000) for n in names}
  real = {n: rng.normal(size=1000) for n in names}
  gen = {"a": rng.normal(0.2, 1.1, 3000), "b": rng.normal(size=3000)}
  got = ametrics.neg2lnl(gen, real, names, train, n_bins=5)

  def cdf(cols):
    return np.stack([np.searchsorted(np.sort(train[n]), cols[n], side="right") / 4000 for n in names], 1)

  edges = [np.linspace(0, 1, 6)] * 2
  m, _ = np.histogramdd(cdf(real), bins=edges)
  n, _ = np.histogramdd(cdf(gen), bins=edges)
  p = np.maximum(n, 0.5) / n.sum()
  np.testing.assert_allclose(got, -2 * np.sum(m * np.log(p)), rtol=1e-10)
  assert ametrics.neg2lnl(real, real, names, train, 5) < got  # a perfect generator scores lower


def test_sorted_w2_is_the_optimal_matching():
  """The distribution term: mean (sort(x) - q)^2 is the minimum over all matchings (brute force), and its square
  root's 1-norm sibling is scipy's Wasserstein-1 distance."""
  import itertools

  rng = np.random.default_rng(0)
  x, q = rng.normal(size=(2, 7)), np.sort(rng.normal(1.0, 2.0, size=(2, 7)), axis=1)
  got = np.asarray(atrain.sorted_w2(jax.numpy.asarray(x), jax.numpy.asarray(q)))
  for p in range(2):
    brute = min(np.mean((x[p, list(perm)] - q[p]) ** 2) for perm in itertools.permutations(range(7)))
    np.testing.assert_allclose(got[p], brute, rtol=1e-5)
    np.testing.assert_allclose(np.mean(np.abs(np.sort(x[p]) - q[p])), stats.wasserstein_distance(x[p], q[p]),
                               rtol=1e-10)
  grad = jax.grad(lambda v: atrain.sorted_w2(v, jax.numpy.asarray(q)).sum())(jax.numpy.asarray(x))
  assert np.all(np.isfinite(np.asarray(grad)))
