"""Tiny end-to-end tests of the analysis-specific GAN training (configs/zmumu.py:test)."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data import zmumu
from ganjax.train import asg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg="test"):
  spec = importlib.util.spec_from_file_location("zmumu_cfg", os.path.join(ROOT, "configs", "zmumu.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _setup(config):
  table = zmumu.load(config)
  split = asg.split_table(table, config.val_frac, config.test_frac, config.seed)
  data = asg.make_data(config, split.train, zmumu.DERIVED)
  return split, data, asg.make_train(config)


def test_vmapped_training_regression_terms_and_exact_resume():
  config = _config()
  config.snapshot_every = 1
  config.segment_steps = 4
  split, data, trainer = _setup(config)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  c_off = jnp.zeros((2, 1))
  c_on = jnp.full((2, 1), 1e-2)
  state0 = jax.jit(jax.vmap(trainer.init))(keys, jnp.concatenate([c_on[:1], c_off[:1]]),
                                  jnp.concatenate([c_on[:1], c_off[:1]]))
  seg = jax.jit(jax.vmap(trainer.train_segment, in_axes=(0, None)))
  state1, snaps, hist = seg(state0, data)
  state2, _, hist2 = seg(state1, data)
  assert jax.tree.leaves(snaps)[0].shape[:2] == (2, 4)
  assert all(np.all(np.isfinite(np.asarray(v))) for v in hist.values())
  # Eq. 2 terms recomputed from the logged batch mean / width of M_ll
  t_mean, t_std = float(data.target_mean_R[0]), float(data.target_std_R[0])
  mll_ref = np.asarray(zmumu.mll(split.train))
  assert np.isclose(t_mean, mll_ref.mean(), rtol=1e-5) and np.isclose(t_std, mll_ref.std(), rtol=1e-4)
  expect = 1e-2 * (np.asarray(hist["mll_mean"][0]) - t_mean) ** 2 + 1e-2 * (np.asarray(hist["mll_std"][0]) - t_std) ** 2
  np.testing.assert_allclose(np.asarray(hist["g_regression"][0]), expect, rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(hist["g_regression"][1]), 0.0)
  np.testing.assert_allclose(np.asarray(hist["g_loss"]), np.asarray(hist["g_bce"] + hist["g_regression"]), rtol=1e-6)
  # the last snapshot is the state's generator; resume is exact (RNG by fold_in(key, step))
  last = jax.tree.map(lambda a: a[:, -1], snaps)
  for a, b in zip(jax.tree.leaves(last), jax.tree.leaves(state1.g_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.segment_steps = 8
  seg8 = jax.jit(jax.vmap(asg.make_train(config).train_segment, in_axes=(0, None)))
  state_8, _, _ = seg8(state0, data)
  for a, b in zip(jax.tree.leaves(state_8.g_params), jax.tree.leaves(state2.g_params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  # generation: physical features; M_ll of generated events equals the formula on them
  gen = trainer.generate(jax.tree.map(lambda a: a[0], state2.g_params), data, jax.random.PRNGKey(1), 256)
  assert set(gen) == set(config.features) and gen["px1"].shape == (256,)


def test_experiment_end_to_end(tmp_path):
  spec = importlib.util.spec_from_file_location("zmumu_exp", os.path.join(ROOT, "experiments", "zmumu.py"))
  exp = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(exp)
  config = _config("test")
  config.model = "full"
  config.features = zmumu.FULL
  config.zero_spike = ("iso1", "iso2")
  config.asinh = {"dxy1": 0.01, "dxy2": 0.01}
  config.selection = ("mll", "dphi", "iso1")
  out = exp.run(config, str(tmp_path), plots=False)
  assert os.path.exists(tmp_path / "metrics.json") and os.path.exists(tmp_path / "generated.parquet")
  sel = out["selected"]
  assert np.isfinite(sel["ks_sum_test_size_matched"]) and out["floor"]["ks_sum_halves"] > 0
  assert len(out["members"]) == config.n_members
  assert 0 <= sel["iso1_zero_fraction"] <= 1


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
  got = asg.neg2lnl(gen, real, names, train, n_bins=5)

  def cdf(cols):
    return np.stack([np.searchsorted(np.sort(train[n]), cols[n], side="right") / 4000 for n in names], 1)

  edges = [np.linspace(0, 1, 6)] * 2
  m, _ = np.histogramdd(cdf(real), bins=edges)
  n, _ = np.histogramdd(cdf(gen), bins=edges)
  p = np.maximum(n, 0.5) / n.sum()
  np.testing.assert_allclose(got, -2 * np.sum(m * np.log(p)), rtol=1e-10)
  assert asg.neg2lnl(real, real, names, train, 5) < got  # a perfect generator scores lower
