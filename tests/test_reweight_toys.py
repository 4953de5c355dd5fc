"""Toy GAN training (exact resume) and the DCTR toy experiment end to end on the tiny 'test' preset."""

import importlib.util
import json
import os

import jax
import numpy as np
import pytest

from configs import dctr_toys as toys_config
from ganjax.data.dctr_toys import get_toy
from ganjax.train.small_gan import make_train

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_experiment():
  spec = importlib.util.spec_from_file_location("dctr_toys_exp", os.path.join(_ROOT, "experiments",
                                                                               "dctr_toys.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_small_gan_segments_resume_exactly():
  cfg = toys_config.get_config("test").gan
  init, train_segment, generate = make_train(cfg)
  # the preset's own sizes, so the end-to-end test below reuses these compiled programs
  n = int(cfg.n_steps)
  x = get_toy("bimodal").sample(jax.random.key(0), toys_config.get_config("test").n_truth)
  key = jax.random.key(1)
  one, hist = train_segment(init(jax.random.key(2), x), key, x, n)
  half, _ = train_segment(init(jax.random.key(2), x), key, x, n // 2)
  two, _ = train_segment(half, key, x, n - n // 2)
  assert int(two["step"]) == n
  for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.all(np.isfinite(np.asarray(hist["d_loss"])))
  # G really is trained: the parameters moved and samples have the data's dimension
  g0 = init(jax.random.key(2), x)["g"]
  moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
           zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(one["g"]))]
  assert max(moved) > 0
  assert generate(one, jax.random.key(3), 7).shape == (7, 1)


def _tiny_gan(**overrides):
  cfg = toys_config.get_config("grid").gan
  with cfg.unlocked():
    cfg.update(dict(latent_dim=3, g_hidden=(4,), d_hidden=(4,), batch_size=8, n_steps=6, **overrides))
  return make_train(cfg)


def test_small_gan_free_choices_resume_and_average():
  """Cosine schedule, uniform latent, 2 D steps per G step and G averaging keep the exact resume, and
  g_avg follows avg <- ema * avg + (1 - ema) * g."""
  ema = 0.9
  init, train_segment, generate = _tiny_gan(lr_schedule="cosine", latent="uniform", d_steps=2, g_ema=ema)
  x = get_toy("grid").sample(jax.random.key(0), 64)
  key = jax.random.key(1)
  s0 = init(jax.random.key(2), x)
  one, _ = train_segment(s0, key, x, 2)
  s1, _ = train_segment(s0, key, x, 1)
  two, _ = train_segment(s1, key, x, 1)
  for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for avg, g0, g1 in zip(*(jax.tree_util.tree_leaves(t) for t in (s1["g_avg"], s0["g"], s1["g"]))):
    np.testing.assert_allclose(np.asarray(avg), ema * np.asarray(g0) + (1 - ema) * np.asarray(g1),
                               rtol=1e-5, atol=1e-7)
  # D took two steps for G's one: its Adam count is twice G's
  counts = [int(c) for c in jax.tree_util.tree_leaves(one["d_opt"]) if np.ndim(c) == 0]
  assert counts and all(c == 4 for c in counts)
  assert generate(one, jax.random.key(3), 5).shape == (5, 2)


def test_small_gan_standardize_and_bad_options():
  """With standardize, G works in (x - mean) / std units: the untrained G already lands on the data."""
  x = np.asarray(get_toy("grid").sample(jax.random.key(0), 4000))
  for standardize in (True, False):
    init, _, generate = _tiny_gan(standardize=standardize)
    s = init(jax.random.key(2), x)
    g = np.asarray(generate(s, jax.random.key(3), 4000))
    if standardize:
      np.testing.assert_allclose(np.asarray(s["shift"]), x.mean(axis=0), rtol=1e-5)
      np.testing.assert_allclose(np.asarray(s["scale"]), x.std(axis=0), rtol=1e-4)
      assert np.all(np.abs(g.mean(axis=0) - x.mean(axis=0)) < x.std(axis=0))
    else:
      assert np.all(np.abs(g.mean(axis=0) - x.mean(axis=0)) > 2.0)  # raw G output starts near 0
  for bad, match in [(dict(lr_schedule="step"), "lr_schedule"), (dict(latent="cauchy"), "latent"),
                     (dict(d_steps=0), "d_steps"), (dict(g_ema=1.0), "g_ema")]:
    with pytest.raises(ValueError, match=match):
      _tiny_gan(**bad)


def test_config_presets():
  for preset, latent, hidden in [("bimodal", 5, (20, 20, 20)), ("circle", 8, (64, 128, 256)),
                                 ("grid", 25, (64, 128, 256))]:
    c = toys_config.get_config(preset)
    assert c.gan.latent_dim == latent and tuple(c.reweight.hidden) == hidden
    assert c.gan.n_steps == 10_000 and c.gan.batch_size == 128 and c.reweight.clip == 5.0
    assert tuple(c.gan.g_hidden) == (15, 15) and tuple(c.gan.d_hidden) == (25, 25)
    assert (c.gan.learning_rate, c.gan.lr_schedule, c.gan.standardize) == (5e-3, "cosine", True)
    assert (c.gan.b1, c.gan.r1_gamma) == (0.0, 0.1)
  with pytest.raises(ValueError, match="unknown preset"):
    toys_config.get_config("spiral")


def test_experiment_end_to_end(tmp_path):
  exp = _load_experiment()
  cfg = toys_config.get_config("test")
  m = exp.run(cfg, str(tmp_path / "run"))
  for f in ("metrics.json", "densities.png", "weights.png", "observables.png", "summary.png"):
    assert (tmp_path / "run" / f).stat().st_size > 0, f
  on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert set(on_disk["observables"]) == {"x", "abs_x"}
  s = on_disk["summary"]
  assert s["n_generated"] == cfg.n_eval and 0 < s["n_eff_fraction"] <= 1
  assert np.isfinite(s["median_s2_ratio"]) and np.isfinite(s["median_r_weighted"])
  assert on_disk["reweight"]["weights"]["mean"] == pytest.approx(1.0)
  assert m["summary"] == s
  pooled = exp.combine([str(tmp_path / "run")], str(tmp_path / "all"))
  assert pooled["n_observables"] == 2 and (tmp_path / "all" / "summary.png").exists()
  with pytest.raises(ValueError, match="repeats"):
    exp.combine([str(tmp_path / "run")] * 2, str(tmp_path / "all"))
  with pytest.raises(ValueError, match="does not exist"):
    exp.combine([str(tmp_path / "missing")], str(tmp_path / "all"))


def test_small_gan_r1_penalty():
  """R1 term = mean |grad_x logit D|^2 (central finite differences on a tiny D), enters D's loss as
  gamma / 2 times it, and keeps the exact resume."""
  from ganjax.models.small_gan import make_small_gan
  from ganjax.train.small_gan import r1_penalty
  _, disc = make_small_gan(2, (4,), (5, 3))
  d = disc.init(jax.random.key(0), np.zeros((1, 2), np.float32))
  x = np.asarray(jax.random.normal(jax.random.key(1), (6, 2)))
  eps = 1e-3
  f = lambda z: np.asarray(disc.apply(d, z.astype(np.float32)), np.float64)
  grad = np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(2)], axis=1)
  want = np.mean(np.sum(grad ** 2, axis=1))
  assert want > 1e-4
  np.testing.assert_allclose(float(r1_penalty(disc, d, x)), want, rtol=2e-3)
  # D's recorded loss at step 0 is the gamma = 0 loss + gamma / 2 * the penalty on that step's real batch
  xs = get_toy("grid").sample(jax.random.key(0), 64)
  loss0, states = {}, {}
  for gamma in (0.0, 2.0):
    init, train_segment, _ = _tiny_gan(r1_gamma=gamma)
    states[gamma] = init(jax.random.key(2), xs)
    loss0[gamma] = float(train_segment(states[gamma], jax.random.key(1), xs, 1)[1]["d_loss"][0])
  s = states[2.0]
  k_idx = jax.random.split(jax.random.fold_in(jax.random.key(1), 0), 3)[0]  # the step's batch (one_step)
  x_real = (xs[jax.random.randint(k_idx, (8,), 0, xs.shape[0])] - s["shift"]) / s["scale"]
  _, disc8 = make_small_gan(2, (4,), (4,))
  pen = float(r1_penalty(disc8, s["d"], x_real))
  assert pen > 0
  np.testing.assert_allclose(loss0[2.0] - loss0[0.0], 0.5 * 2.0 * pen, rtol=1e-4)
  init, train_segment, _ = _tiny_gan(r1_gamma=2.0)  # cached: the programs above
  s0 = states[2.0]
  one, _ = train_segment(s0, jax.random.key(1), xs, 2)
  two, _ = train_segment(train_segment(s0, jax.random.key(1), xs, 1)[0], jax.random.key(1), xs, 1)
  for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(ValueError, match="r1_gamma"):
    _tiny_gan(r1_gamma=-1.0)
