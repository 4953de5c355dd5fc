"""The DCTR toys on the engine: the toy GAN's TrainSpec (exact resume, free choices, R1, standardisation),
the presets, run() end to end with an interrupted and resumed run, and python -m ganjax.main."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, load_config, tb_scalars

from ganjax.data.dctr_toys import get_toy
from ganjax.dctr import gan
from ganjax.engine import losses
from ganjax.engine.errors import BadInputError, InterruptedError_
from ganjax.models.small_gan import make_small_gan

sys.path.insert(0, ROOT)
from experiments import dctr_toys as combine_script  # noqa: E402


def _assert_trees_equal(a, b):
  for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=jax.tree_util.keystr(path))


def _gan(x, preset="test", **overrides):
  """(members, init state) of config.gan with dotted overrides (keys relative to config.gan)."""
  g = load_config(f"dctr_toys:{preset}", **{f"gan.{k}": v for k, v in overrides.items()}).gan
  shift, scale = gan.standardization(x, bool(g.model.standardize))
  members = gan.make_members(g, x.shape[1], shift, scale)
  return g, members, members.init(gan.init_keys(jax.random.PRNGKey(2), jax.random.PRNGKey(1))[None])


def _tiny(x, **overrides):
  return _gan(x, "grid", **{"model.latent_dim": 3, "model.g_hidden": (4,), "model.d_hidden": (4,),
                            "train.batch_size": 8, "train.steps": 6, **overrides})


def test_gan_segments_resume_exactly():
  c = load_config("dctr_toys:test")
  x = get_toy("bimodal").sample(jax.random.PRNGKey(0), c.data.n_truth)
  g, members, s0 = _gan(x)
  n = 20
  one, hist = members.segment(s0, x, n)
  half, _ = members.segment(s0, x, n // 2)
  two, _ = members.segment(half, x, n - n // 2)
  assert int(two.step[0]) == n and hist["d_loss"].shape == (1, n)  # per-step losses (1-step epochs)
  _assert_trees_equal(one, two)
  assert np.all(np.isfinite(np.asarray(hist["d_loss"])))
  moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
           zip(jax.tree.leaves(s0.params["g"]), jax.tree.leaves(one.params["g"]))]
  assert max(moved) > 0  # G really is trained
  gs = jax.tree.map(lambda a: a[0], gan.generator_state(one))
  assert gan.make_generate(g, 1)(gs, jax.random.PRNGKey(3), 7).shape == (7, 1)


def test_gan_free_choices_resume_and_average():
  """Cosine schedule, uniform latent, 2 D steps per G step and G averaging keep the exact resume, and
  g_avg follows avg <- ema * avg + (1 - ema) * g."""
  ema = 0.9
  x = get_toy("grid").sample(jax.random.PRNGKey(0), 64)
  g, members, s0 = _tiny(x, **{"train.optimizer.schedule": "cosine", "model.latent": "uniform",
                               "train.d_steps": 2, "train.g_ema": ema})
  one, _ = members.segment(s0, x, 2)
  s1, _ = members.segment(s0, x, 1)
  two, _ = members.segment(s1, x, 1)
  _assert_trees_equal(one, two)
  for avg, g0, g1 in zip(*(jax.tree.leaves(t) for t in (s1.extra["g_avg"], s0.params["g"], s1.params["g"]))):
    np.testing.assert_allclose(np.asarray(avg), ema * np.asarray(g0) + (1 - ema) * np.asarray(g1),
                               rtol=1e-5, atol=1e-7)
  # D took two steps for G's one: its Adam count is twice G's
  counts = [int(np.asarray(c).reshape(())) for c in jax.tree.leaves(one.opt["d"])
            if np.size(c) == 1 and np.issubdtype(c.dtype, np.integer)]
  assert counts and all(c == 4 for c in counts)
  gs = jax.tree.map(lambda a: a[0], gan.generator_state(one))
  _assert_trees_equal(gs["g"], jax.tree.map(lambda a: a[0], one.extra["g_avg"]))  # generates with the average
  assert gan.make_generate(g, 2)(gs, jax.random.PRNGKey(3), 5).shape == (5, 2)


def test_gan_standardize_and_bad_options():
  """With standardize, G works in (x - mean) / std units: the untrained G already lands on the data."""
  x = np.asarray(get_toy("grid").sample(jax.random.PRNGKey(0), 4000))
  for standardize in (True, False):
    g, _, s = _tiny(x, **{"model.standardize": standardize})
    gs = jax.tree.map(lambda a: a[0], gan.generator_state(s))
    out = np.asarray(gan.make_generate(g, 2)(gs, jax.random.PRNGKey(3), 4000))
    if standardize:
      np.testing.assert_allclose(np.asarray(gs["shift"]), x.mean(axis=0), rtol=1e-5)
      np.testing.assert_allclose(np.asarray(gs["scale"]), x.std(axis=0), rtol=1e-4)
      assert np.all(np.abs(out.mean(axis=0) - x.mean(axis=0)) < x.std(axis=0))
    else:
      assert np.all(np.abs(out.mean(axis=0) - x.mean(axis=0)) > 2.0)  # raw G output starts near 0
  for bad, match in [({"train.optimizer.schedule": "staircase"}, "schedule"), ({"model.latent": "cauchy"}, "latent"),
                     ({"train.d_steps": 0}, "d_steps"), ({"train.g_ema": 1.0}, "g_ema"),
                     ({"train.r1_gamma": -1.0}, "r1_gamma"), ({"train.optimizer.name": "sgd"}, "adam")]:
    with pytest.raises(ValueError, match=match):
      _tiny(x, **bad)


def test_gan_r1_penalty_enters_d_loss():
  """R1 = mean |grad_x logit D|^2 (engine.losses.r1_penalty, against central finite differences of a tiny D)
  enters D's loss as gamma / 2 times it on the step's real batch (randint from split(fold_in(run key, 0),
  3)[0]), and keeps the exact resume."""
  _, disc = make_small_gan(2, (4,), (5, 3))
  d = disc.init(jax.random.PRNGKey(0), np.zeros((1, 2), np.float32))
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (6, 2)))
  eps = 1e-3
  f = lambda z: np.asarray(disc.apply(d, z.astype(np.float32)), np.float64)  # noqa: E731
  grad = np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(2)], axis=1)
  want = np.mean(np.sum(grad ** 2, axis=1))
  assert want > 1e-4
  np.testing.assert_allclose(float(losses.r1_penalty(lambda z: disc.apply(d, z), x)), want, rtol=2e-3)
  xs = get_toy("grid").sample(jax.random.PRNGKey(0), 64)
  loss0, states = {}, {}
  for gamma in (0.0, 2.0):
    _, members, states[gamma] = _tiny(xs, **{"train.r1_gamma": gamma})
    loss0[gamma] = float(members.segment(states[gamma], xs, 1)[1]["d_loss"][0, 0])
  s = jax.tree.map(lambda a: a[0], states[2.0])
  k_idx = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1), 0), 3)[0]
  x_real = (xs[jax.random.randint(k_idx, (8,), 0, xs.shape[0])] - s.extra["shift"]) / s.extra["scale"]
  _, disc8 = make_small_gan(2, (4,), (4,))
  pen = float(losses.r1_penalty(lambda z: disc8.apply(s.params["d"], z), x_real))
  assert pen > 0
  np.testing.assert_allclose(loss0[2.0] - loss0[0.0], 0.5 * 2.0 * pen, rtol=1e-4)
  one, _ = members.segment(states[2.0], xs, 2)
  two, _ = members.segment(members.segment(states[2.0], xs, 1)[0], xs, 1)
  _assert_trees_equal(one, two)


def test_config_presets():
  for preset, latent, hidden in [("bimodal", 5, (20, 20, 20)), ("circle", 8, (64, 128, 256)),
                                 ("grid", 25, (64, 128, 256))]:
    c = load_config(f"dctr_toys:{preset}")
    g, r = c.gan, c.reweight
    assert g.model.latent_dim == latent and tuple(r.model.hidden) == hidden
    assert g.train.steps == 10_000 and g.train.batch_size == 128 and r.clip == 5.0
    assert tuple(g.model.g_hidden) == (15, 15) and tuple(g.model.d_hidden) == (25, 25)
    o = g.train.optimizer
    assert (o.name, o.learning_rate, o.schedule, o.b1, g.model.standardize) == ("adam", 5e-3, "cosine", 0.0, True)
    assert g.train.r1_gamma == 0.1 and r.train.epochs == 100 and r.train.batch_size == 512
  with pytest.raises(ValueError, match="unknown preset"):
    load_config("dctr_toys:spiral")
  with pytest.raises(KeyError, match="no config key"):
    load_config("dctr_toys:test", **{"gan.n_steps": 5})


def test_bad_config_is_refused_before_compute(tmp_path):
  from ganjax.dctr import run
  for over, match in [({"data.toy": "spiral"}, "data.toy"), ({"gan.train.d_steps": 0}, "d_steps"),
                      ({"reweight.train.optimizer.schedule": "linear"}, "schedule"),
                      ({"reweight.columns": ["x0", "x1"]}, "reweight.columns")]:
    with pytest.raises(BadInputError, match=match):
      run(load_config("dctr_toys:test", **over), str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")  # refused before the workdir is claimed


_NUMBERS = ("observables", "summary", "clip_scan")


def _same_numbers(a: dict, b: dict) -> None:
  for k in _NUMBERS:
    assert a[k] == b[k], k
  assert {k: v for k, v in a["reweight"].items() if k != "fit_seconds"} == \
         {k: v for k, v in b["reweight"].items() if k != "fit_seconds"}
  for k in ("d_loss_last10pct", "g_loss_last10pct"):
    assert a["gan"][k] == b["gan"][k], k


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
  """python -m ganjax.main on the test preset (the tests' JAX settings, so in-process runs compare)."""
  workdir = tmp_path_factory.mktemp("main")
  r = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/dctr_toys.py:test",
                      f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                     env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true"))
  assert r.returncode == 0, r.stderr[-3000:]
  return workdir, json.loads((workdir / "metrics.json").read_text())


def test_main_end_to_end(main_run, tmp_path):
  workdir, m = main_run
  for f in ("metrics.json", "config.json", "densities.png", "weights.png", "observables.png", "summary.png"):
    assert (workdir / f).stat().st_size > 0, f
  assert set(m["observables"]) == {"x", "abs_x"}
  s = m["summary"]
  assert s["n_generated"] == 5000 and 0 < s["n_eff_fraction"] <= 1
  assert np.isfinite(s["median_s2_ratio"]) and np.isfinite(s["median_r_weighted"])
  assert m["reweight"]["weights"]["mean"] == pytest.approx(1.0) and len(m["reweight"]["val_loss"]) == 3
  # TensorBoard: the GAN's segment-mean losses every 20 steps, the reweighter's held-out loss every epoch
  d_mean = [(s_, v) for t, s_, v in tb_scalars(workdir / "tb") if t == "d_loss_mean"]
  assert [s_ for s_, _ in d_mean] == list(range(20, 201, 20))
  assert m["gan"]["d_loss_last10pct"] == pytest.approx(d_mean[-1][1], rel=1e-6)
  val = [v for t, _, v in tb_scalars(workdir / "reweight" / "tb") if t == "val_loss"]
  np.testing.assert_allclose(val, m["reweight"]["val_loss"], rtol=1e-6)
  pooled = combine_script.combine([str(workdir)], str(tmp_path / "all"))
  assert pooled["n_observables"] == 2 and (tmp_path / "all" / "summary.png").exists()
  with pytest.raises(ValueError, match="repeats"):
    combine_script.combine([str(workdir)] * 2, str(tmp_path / "all"))
  with pytest.raises(ValueError, match="does not exist"):
    combine_script.combine([str(tmp_path / "missing")], str(tmp_path / "all"))


def test_interrupted_run_resumes_to_the_same_metrics(main_run, tmp_path):
  """Stopped (as by SIGTERM) inside the GAN training, then again inside the DCTR fit, the rerun ends with
  the numbers of the uninterrupted run; a changed config is refused in that workdir."""
  from ganjax.dctr import run
  _, straight = main_run
  workdir = str(tmp_path / "resumed")
  cfg = load_config("dctr_toys:test")

  def stop_at(stage, nth):
    seen = []

    def hook(s, _step):
      seen.append(s)
      if seen.count(stage) == nth and s == stage:
        os.kill(os.getpid(), signal.SIGTERM)
    return hook

  with pytest.raises(InterruptedError_, match="step 100"):
    run(cfg, workdir, log=lambda s: None, on_segment_end=stop_at("gan", 5))
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))
  with pytest.raises(InterruptedError_, match="epoch 2"):
    run(cfg, workdir, log=lambda s: None, on_segment_end=stop_at("reweight", 2))
  resumed = run(cfg, workdir, log=lambda s: None)
  assert resumed["gan"]["resumed_from_step"] == 200
  _same_numbers(resumed, straight)
  with pytest.raises(BadInputError, match="different config"):
    run(load_config("dctr_toys:test", **{"seed": 1}), workdir)
