"""DCTR reweighter (ganjax/dctr/reweight.py): learned weights vs the exact likelihood ratio, calibration vs
scipy, clipping / normalisation properties, batched evaluation, the balanced sampler, input errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from ganjax import engine
from ganjax.dctr import reweight
from ganjax.engine.errors import BadInputError
from ganjax.models.classifier import MLPClassifier


N = 6000  # events per class in the training tests


def _cfg(**kw):
  """A small reweighter config; kw: dotted keys of reweight.default_config()."""
  c = reweight.default_config()
  c.columns = ["a", "b"]
  c.model.hidden = (16,)
  c.train.batch_size = 256
  c.train.epochs = 4
  c.train.optimizer.learning_rate = 3e-3
  c.clip = 0.0
  c.calibrate = False  # calibration is tested against scipy below and end to end in test_reweight_toys
  c.eval_batch_size = 1024
  for key, value in kw.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def _gauss(rng, n, mu):
  return {"a": rng.normal(mu, 1.0, n), "b": rng.normal(0.0, 1.0, n)}


def test_matched_generator_gives_unit_weights():
  """Generated drawn from the truth density: the classifier can only learn noise, w ~ 1."""
  rng = np.random.default_rng(0)
  truth, gen = _gauss(rng, N, 0.0), _gauss(rng, N, 0.0)
  w, rep = reweight.reweight(truth, gen, _cfg())
  assert w.shape == (N,)
  assert np.sum(w) == pytest.approx(N)
  assert np.std(w) < 0.15, np.std(w)
  assert np.quantile(w, 0.99) < 1.4 and np.quantile(w, 0.01) > 0.7
  assert 0.45 < rep["val_auc"] < 0.55
  assert rep["weights"]["n_eff_fraction"] > 0.97


def test_shifted_generator_learns_the_likelihood_ratio():
  """truth N(0,1), generated N(0.5,1) in 'a': ideal log w = -0.5 a + const (Eq. 3); also checks that
  apply_to evaluates on new events and that the label convention (truth = 1) is right."""
  rng = np.random.default_rng(1)
  truth, gen, other = _gauss(rng, N, 0.0), _gauss(rng, N, 0.5), _gauss(rng, 3000, 0.5)
  w, rep = reweight.reweight(truth, gen, _cfg(), apply_to=other)
  ideal = np.exp(-0.5 * other["a"])
  ideal *= ideal.size / ideal.sum()
  core = np.abs(other["a"] - 0.5) < 2.0
  err = np.abs(np.log(w[core]) - np.log(ideal[core]))
  assert np.median(err) < 0.08, np.median(err)
  assert np.corrcoef(np.log(w), other["a"])[0, 1] < -0.9
  weighted_mean = np.sum(w * other["a"]) / np.sum(w)
  assert abs(weighted_mean) < 0.06  # pulled from 0.5 onto the truth mean 0
  assert len(rep["val_loss"]) == 4 and 0 <= rep["best_epoch"] < 4


def test_truth_event_weights_are_used():
  """Truth drawn from N(0,1) but weighted to N(0.5,1) vs generated N(0.5,1): w ~ 1."""
  rng = np.random.default_rng(2)
  truth, gen = _gauss(rng, N, 0.0), _gauss(rng, N, 0.5)
  tw = np.exp(0.5 * truth["a"] - 0.125)
  w, _ = reweight.reweight(truth, gen, _cfg(), truth_weights=tw)
  assert np.std(w) < 0.12, np.std(w)  # ~0.5 if the truth weights were ignored


def _balanced_bce(beta, lt, lg):
  sp = lambda z: np.logaddexp(0.0, z)  # noqa: E731
  return 0.5 * (np.mean(sp(-beta * lt)) + np.mean(sp(beta * lg)))


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_temperature_matches_scipy(scale):
  rng = np.random.default_rng(3)
  x_t, x_g = rng.normal(0.0, 1, 3000), rng.normal(0.8, 1, 2000)
  true_logit = lambda x: -0.8 * x + 0.32  # noqa: E731  exact log(p_T / p_G)
  lt, lg = scale * true_logit(x_t), scale * true_logit(x_g)
  beta = float(reweight.fit_inverse_temperature(jnp.asarray(lt), jnp.ones(lt.size), jnp.asarray(lg),
                                                jnp.ones(lg.size)))
  ref = optimize.minimize_scalar(lambda lb: _balanced_bce(np.exp(lb), lt, lg), bounds=(-5, 5),
                                 method="bounded", options={"xatol": 1e-8}).x
  assert np.log(beta) == pytest.approx(ref, abs=1e-3)
  assert beta * scale == pytest.approx(1.0, abs=0.15)  # undoes the over/under-confidence


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-8, 8), min_size=1, max_size=200), st.sampled_from([0.0, 0.5, 2.0, 5.0]),
       st.booleans())
def test_finalize_weights_clip_and_normalise(log_w, clip, normalize):
  log_w = np.array(log_w)
  w, info = reweight.finalize_weights(log_w, clip=clip, normalize=normalize)
  raw = np.exp(log_w)
  expected = np.minimum(raw, clip) if clip > 0 else raw
  assert info["n_clipped"] == (int(np.sum(raw > clip)) if clip > 0 else 0)
  if normalize:
    assert np.sum(w) == pytest.approx(w.size, rel=1e-9)
    assert info["normalisation"] * expected.sum() == pytest.approx(w.size, rel=1e-9)
  else:
    assert info["normalisation"] == 1.0
  np.testing.assert_allclose(w, info["normalisation"] * expected, rtol=1e-12)
  assert np.all(w / info["normalisation"] <= (clip if clip > 0 else np.inf) * (1 + 1e-12))


def test_batched_evaluation_equals_direct_apply():
  model = MLPClassifier((5, 3))
  x = jax.random.normal(jax.random.key(0), (53, 2))
  params = jax.jit(model.init)(jax.random.key(1), x[:1])
  rw = {"params": params, "mean": jnp.array([0.5, -1.0]), "std": jnp.array([2.0, 0.5]),
        "inv_temperature": jnp.float32(0.7)}
  got = reweight.make_log_weight_fn(model, eval_batch_size=8)(rw, x)
  want = 0.7 * model.apply(params, (x - rw["mean"]) / rw["std"])
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_bad_input_is_reported_before_training():
  rng = np.random.default_rng(4)
  good = _gauss(rng, 100, 0.0)
  with pytest.raises(ValueError, match=r"generated: missing columns \['b'\]"):
    reweight.fit(good, {"a": good["a"]}, _cfg())
  bad = {"a": good["a"].copy(), "b": good["b"]}
  bad["a"][[3, 7]] = np.nan
  with pytest.raises(ValueError, match="truth: column 'a' has 2 of 100 rows that are NaN"):
    reweight.fit(bad, good, _cfg())
  with pytest.raises(ValueError, match="'b' has 99 rows"):
    reweight.fit(good, {"a": good["a"], "b": good["b"][:99]}, _cfg())
  with pytest.raises(ValueError, match="columns` is empty"):
    reweight.fit(good, good, _cfg(columns=[]))
  with pytest.raises(ValueError, match="too few for a held-out split"):
    reweight.fit({"a": np.ones(1), "b": np.ones(1)}, good, _cfg())
  with pytest.raises(ValueError, match="truth: 1 of 100 event weights"):
    reweight.fit(good, good, _cfg(), truth_weights=np.r_[-1.0, np.ones(99)])


def test_optimizer_schedule_and_weight_decay():
  """The reweighter's optimizer comes from engine.make_optimizer: cosine's first update is Adam's and its
  update at step n is zero; adamw with zero gradient shrinks a parameter by lr * wd * p; bad options are a
  BadInputError (a ValueError) before training."""
  p, g = {"w": jnp.array([2.0, -1.0])}, {"w": jnp.array([0.3, 0.3])}
  n, lr = 10, 0.1

  def updates(tx, steps):
    state, out = tx.init(p), []
    for _ in range(steps):
      u, state = tx.update(g, state, p)
      out.append(np.asarray(u["w"]))
    return out

  def opt(**kw):
    return _cfg(**{"train.optimizer.learning_rate": lr, **{f"train.optimizer.{k}": v for k, v in kw.items()}}
                ).train.optimizer

  adam = updates(engine.make_optimizer(opt(), n), n + 1)
  cos = updates(engine.make_optimizer(opt(schedule="cosine"), n), n + 1)
  np.testing.assert_allclose(cos[0], adam[0], rtol=1e-6)
  np.testing.assert_allclose(cos[n], 0.0, atol=1e-9)
  assert np.all(np.abs(cos[n // 2]) < np.abs(adam[n // 2]))
  tx = engine.make_optimizer(opt(name="adamw", weight_decay=0.5), n)
  u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)
  np.testing.assert_allclose(np.asarray(u["w"]), -lr * 0.5 * np.asarray(p["w"]), rtol=1e-6)
  rng = np.random.default_rng(0)
  for bad, match in [({"train.optimizer.schedule": "step"}, "schedule"),
                     ({"train.optimizer.name": "adamw", "train.optimizer.weight_decay": -1.0}, "weight_decay"),
                     ({"train.optimizer.weight_decay": 0.1}, "needs train.optimizer.name='adamw'"),
                     ({"train.optimizer.name": "sgd"}, "use adam or adamw")]:
    with pytest.raises(BadInputError, match=match):
      reweight.reweight(_gauss(rng, 50, 0.0), _gauss(rng, 50, 0.0), _cfg(**bad))


def test_sampler_tiles_the_smaller_class():
  """Epoch e of the classifier's sampler: step s takes positions s * half + [0, half) of per-class
  permutations from fold_in(fold_in(run key, e), 0 | 1), wrapping around the smaller class; the epoch covers
  the larger class once."""
  nt, ng, half = 23, 50, 8
  spec = reweight.make_spec(_cfg(**{"train.batch_size": 2 * half}), nt, ng, 2)
  spe = spec.sampler.steps_per_epoch
  assert spe == -(-ng // half)
  key = jax.random.PRNGKey(5)
  it, ig, _ = spec.sampler.plan(key, jnp.int32(3))
  k = jax.random.fold_in(key, 3)
  perm_t = np.asarray(jax.random.permutation(jax.random.fold_in(k, 0), nt))
  perm_g = np.asarray(jax.random.permutation(jax.random.fold_in(k, 1), ng))
  for s in range(spe):
    np.testing.assert_array_equal(it[s], perm_t[(s * half + np.arange(half)) % nt])
    np.testing.assert_array_equal(ig[s], perm_g[(s * half + np.arange(half)) % ng])
  assert set(np.asarray(ig).ravel()) == set(range(ng)) and set(np.asarray(it).ravel()) == set(range(nt))


def test_workdir_fit_resumes_to_the_same_reweighter(tmp_path):
  """A fit in a workdir (driver checkpoints, TensorBoard) stopped after epoch 2 and rerun ends with the
  reweighter and report of an uninterrupted library fit (workdir=None)."""
  from ganjax.engine.errors import InterruptedError_
  rng = np.random.default_rng(5)
  truth, gen = _gauss(rng, 600, 0.0), _gauss(rng, 600, 0.5)
  cfg = _cfg(calibrate=True)
  want, _, rep_want = reweight.fit(truth, gen, cfg)

  def stop(step):
    if step == 2 * rep_want["steps_per_epoch"]:
      raise InterruptedError_("stopped for the test")

  with pytest.raises(InterruptedError_):
    reweight.fit(truth, gen, cfg, workdir=str(tmp_path), on_segment_end=stop)
  got, _, rep = reweight.fit(truth, gen, cfg, workdir=str(tmp_path))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), want, got)
  for k in ("train_loss", "val_loss", "best_epoch", "temperature", "val_loss_calibrated", "val_auc"):
    assert rep[k] == rep_want[k], k
  assert os.listdir(tmp_path / "tb") and os.path.isdir(tmp_path / "checkpoints" / "best")
