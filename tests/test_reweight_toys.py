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
  one, hist = train_segment(init(jax.random.key(2)), key, x, n)
  half, _ = train_segment(init(jax.random.key(2)), key, x, n // 2)
  two, _ = train_segment(half, key, x, n - n // 2)
  assert int(two["step"]) == n
  for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.all(np.isfinite(np.asarray(hist["d_loss"])))
  # G really is trained: the parameters moved and samples have the data's dimension
  g0 = init(jax.random.key(2))["g"]
  moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
           zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(one["g"]))]
  assert max(moved) > 0
  assert generate(one["g"], jax.random.key(3), 7).shape == (7, 1)


def test_config_presets():
  for preset, latent, hidden in [("bimodal", 5, (20, 20, 20)), ("circle", 8, (64, 128, 256)),
                                 ("grid", 25, (64, 128, 256))]:
    c = toys_config.get_config(preset)
    assert c.gan.latent_dim == latent and tuple(c.reweight.hidden) == hidden
    assert c.gan.n_steps == 10_000 and c.gan.batch_size == 128 and c.reweight.clip == 5.0
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
  with pytest.raises(ValueError, match="does not exist"):
    exp.combine([str(tmp_path / "missing")], str(tmp_path / "all"))
