"""DCTR reweighter (ganjax/reweight.py): learned weights vs the exact likelihood ratio, calibration vs scipy,
clipping / normalisation properties, batched evaluation, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from ganjax import reweight
from ganjax.models.classifier import MLPClassifier


N = 6000  # one sample size for the training tests, so they share one compiled program


def _cfg(**kw):
  c = reweight.default_config()
  c.columns = ["a", "b"]
  c.hidden = (16,)
  c.batch_size = 256
  c.n_epochs = 4
  c.learning_rate = 3e-3
  c.clip = 0.0
  c.calibrate = False  # calibration is tested against scipy below and end to end in test_reweight_toys
  c.eval_batch_size = 1024
  c.update(kw)
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
  """Cosine: the first update is Adam's, the last one (step n) is zero; weight decay with zero gradient
  shrinks a parameter by lr * wd * p (AdamW); bad options are a ValueError before training."""
  p, g = {"w": jnp.array([2.0, -1.0])}, {"w": jnp.array([0.3, 0.3])}
  n, lr = 10, 0.1

  def updates(tx, steps):
    state, out = tx.init(p), []
    for _ in range(steps):
      u, state = tx.update(g, state, p)
      out.append(np.asarray(u["w"]))
    return out

  adam = updates(reweight.make_optimizer(lr, n), n + 1)
  cos = updates(reweight.make_optimizer(lr, n, "cosine"), n + 1)
  np.testing.assert_allclose(cos[0], adam[0], rtol=1e-6)
  np.testing.assert_allclose(cos[n], 0.0, atol=1e-9)
  assert np.all(np.abs(cos[n // 2]) < np.abs(adam[n // 2]))
  tx = reweight.make_optimizer(lr, n, weight_decay=0.5)
  u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)
  np.testing.assert_allclose(np.asarray(u["w"]), -lr * 0.5 * np.asarray(p["w"]), rtol=1e-6)
  rng = np.random.default_rng(0)
  for bad, match in [(dict(lr_schedule="step"), "lr_schedule"), (dict(weight_decay=-1.0), "weight_decay")]:
    with pytest.raises(ValueError, match=match):
      reweight.reweight(_gauss(rng, 50, 0.0), _gauss(rng, 50, 0.0), _cfg(**bad))
