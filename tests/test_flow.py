"""The conditional spline flow (ganjax/models/flow.py): invertible (property test), log|det| equal to a
brute-force jax.jacobian, a density that integrates to 1 in 1D and 2D, samples that follow it (KS against
the numerically integrated CDF), finite values and gradients at and beyond the spline bounds, and the main
job end to end with the flow as its generator."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ganjax.engine import losses
from ganjax.models.flow import Flow, rq_spline


def _random_flow(n_features, n_cond, seed=0, scale=0.1, **kw):
  """A flow with random (not identity) parameters: the initial ones plus N(0, scale^2) noise."""
  flow = Flow(n_features, hidden=(16,), **kw)
  x, c = jnp.zeros((1, n_features)), jnp.zeros((1, n_cond))
  params = jax.jit(lambda k: flow.init(k, x, c, method=Flow.log_prob))(jax.random.PRNGKey(seed))
  rng = np.random.default_rng(seed)
  return flow, jax.tree.map(lambda a: a + scale * rng.normal(size=a.shape).astype(np.float32), params)


@pytest.fixture(scope="module")
def flow3():
  """D = 3, C = 2, four layers, bound 3 after x / 1.5."""
  flow, params = _random_flow(3, 2, n_layers=4, x_scale=1.5)
  fwd = jax.jit(lambda p, x, c: flow.apply(p, x, c, method=Flow.forward))
  inv = jax.jit(lambda p, z, c: flow.apply(p, z, c, method=Flow.inverse))
  return flow, params, fwd, inv


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-20.0, 20.0, allow_nan=False, width=32), min_size=15, max_size=15),
       st.sampled_from([0.0, 3.0, 4.5, -4.5, 1e3]))
def test_invertible(flow3, values, edge):
  """f^-1(f(x)) = x and log|det| of the inverse = -log|det| of the forward, anywhere on the real line
  (including the spline bounds +-B * x_scale = +-4.5 and far outside them). In float64: far from the data
  the conditioners give steep splines (|log det| ~ 20) that float32 inverts to only ~1e-2."""
  _, params, fwd, inv = flow3
  x = np.asarray(values, np.float64).reshape(5, 3)
  x[0, 0] = edge
  c = np.asarray(values[::-1][:10], np.float64).reshape(5, 2) / 10.0
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    z, ld = fwd(p64, x, c)
    xb, ld_inv = inv(p64, z, c)
  assert np.all(np.isfinite(z)) and np.all(np.isfinite(ld))
  tol = 1e-6 * max(1.0, np.abs(x).max())
  np.testing.assert_allclose(xb, x, atol=tol)
  # Where a layer's spline is nearly flat, inverting it loses digits (x off by ~1e-5 at |x| = 17 even in
  # float64), and the inverse's log|det| is evaluated at that x: same tolerance as the round trip.
  np.testing.assert_allclose(ld_inv, -ld, atol=tol)


def test_logdet_matches_jacobian(flow3):
  """log|det dz/dx| of forward against slogdet of jax.jacobian, per row."""
  flow, params, fwd, inv = flow3
  x = 2.0 * jax.random.normal(jax.random.PRNGKey(5), (20, 3))
  c = jax.random.normal(jax.random.PRNGKey(6), (20, 2))
  z, ld = fwd(params, x, c)
  np.testing.assert_allclose(inv(params, z, c)[0], x, atol=1e-4)  # float32 round trip on data-like inputs
  one = lambda method: jax.jit(jax.vmap(jax.jacobian(lambda xi, ci: flow.apply(params, xi[None], ci[None],
                                                                                 method=method)[0][0])))
  _, brute = np.linalg.slogdet(np.asarray(one(Flow.forward)(x, c), np.float64))
  np.testing.assert_allclose(ld, brute, atol=1e-4, rtol=1e-4)  # the inverse's = -forward's (test_invertible)
  assert np.abs(ld).max() > 0.1  # not the identity


def test_bounds_finite_values_and_gradients():
  """At the bounds, exactly on the knots' ends and far outside: finite log p and finite parameter
  gradients of the NLL (the NaN-at-the-bounds failure of spline flows), identity in the tails."""
  flow, params = _random_flow(2, 1, scale=0.3, n_layers=2, bound=1.0)
  x = jnp.asarray([[1.0, -1.0], [-1.0, 1.0], [1e4, -1e4], [0.0, 1.0 + 1e-7], [np.nextafter(1.0, 0.0), 0.0]],
                  jnp.float32)
  c = jnp.ones((5, 1))
  nll = lambda p: losses.neg_log_likelihood(flow.apply(p, x, c, method=Flow.log_prob))
  loss, g = jax.jit(jax.value_and_grad(nll))(params)
  assert np.isfinite(loss) and all(np.all(np.isfinite(a)) for a in jax.tree.leaves(g))
  w, h, d = np.random.default_rng(0).normal(size=(3, 6, 8)).astype(np.float32)
  x = jnp.asarray([-7.0, -3.0, 3.0, 7.0, -3.0 + 1e-4, 3.0 - 1e-4])
  y, ld = jax.jit(rq_spline, static_argnums=(4, 5))(x, w, h, d[:, :7], 3.0, False)
  np.testing.assert_array_equal(y[:4], x[:4])
  np.testing.assert_array_equal(ld[:4], 0.0)
  # continuity at the bounds: the spline reaches +-B with derivative 1
  np.testing.assert_allclose(y[4:], x[4:], atol=1e-5)
  np.testing.assert_allclose(ld[4:], 0.0, atol=1e-2)


@pytest.fixture(scope="module")
def flow1():
  """D = 1 conditioned on C = 1 (the spline parameters come from the context alone): jitted log p(x | c)
  on a grid and sample(key, c)."""
  flow, params = _random_flow(1, 1, seed=3, scale=0.3, n_layers=2, x_scale=2.0)
  log_prob = jax.jit(lambda x, c: flow.apply(params, x, c, method=Flow.log_prob))
  sample = jax.jit(lambda k, c: flow.apply(params, k, c, method=Flow.sample))
  return log_prob, sample


def test_density_integrates_to_one_1d(flow1):
  log_prob, _ = flow1
  x = np.linspace(-20.0, 20.0, 40_001, dtype=np.float32)
  for cval in (-1.0, 0.5):
    lp = log_prob(x[:, None], jnp.full((x.size, 1), cval))
    assert abs(np.trapezoid(np.exp(np.asarray(lp, np.float64)), x) - 1.0) < 1e-3


def test_density_integrates_to_one_2d():
  flow, params = _random_flow(2, 1, seed=4, scale=0.1, n_layers=4, x_scale=1.5)
  g = np.linspace(-9.0, 9.0, 601, dtype=np.float32)
  xx, yy = np.meshgrid(g, g, indexing="ij")
  x = np.stack([xx.ravel(), yy.ravel()], -1)
  lp = jax.jit(lambda x, c: flow.apply(params, x, c, method=Flow.log_prob))(x, jnp.full((x.shape[0], 1), 0.7))
  dens = np.exp(np.asarray(lp, np.float64)).reshape(xx.shape)
  assert abs(np.trapezoid(np.trapezoid(dens, g, axis=1), g) - 1.0) < 1e-3
  assert dens.max() > 2 * stats.norm.pdf(0.0) ** 2 / 1.5 ** 2  # not the initial (Gaussian) density


def test_samples_follow_density(flow1):
  """KS test of 4000 samples against the CDF integrated numerically from the flow's own density."""
  log_prob, sample = flow1
  x = np.linspace(-20.0, 20.0, 40_001, dtype=np.float32)
  for cval in (-1.0, 0.5):
    lp = log_prob(x[:, None], jnp.full((x.size, 1), cval))
    pdf = np.exp(np.asarray(lp, np.float64))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    s = sample(jax.random.PRNGKey(7), jnp.full((4000, 1), cval))[:, 0]
    assert stats.kstest(np.asarray(s, np.float64), lambda v: np.interp(v, x, cdf)).pvalue > 0.01
  # and a clearly different context does not pass for this one (the test has power)
  s_other = sample(jax.random.PRNGKey(7), jnp.full((4000, 1), 3.0))[:, 0]
  assert stats.kstest(np.asarray(s_other, np.float64), lambda v: np.interp(v, x, cdf)).pvalue < 1e-3


def test_identity_at_init_and_generator_clip():
  flow = Flow(2, n_layers=2, hidden=(8,), clip=1.0)
  params = flow.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1, 3)))
  z = jnp.asarray([[0.3, -0.2], [2.5, -4.0]])
  lp, x = jax.jit(lambda p, z, c: (flow.apply(p, z, c, method=Flow.log_prob), flow.apply(p, z, c)))(
      params, z, jnp.zeros((2, 3)))
  np.testing.assert_allclose(lp, stats.norm.logpdf(np.asarray(z)).sum(-1), rtol=1e-6)  # identity up to
  x = np.asarray(x)                                                                      # permutations
  np.testing.assert_allclose(np.sort(x[0]), [-0.2, 0.3], atol=1e-6)
  np.testing.assert_array_equal(np.sort(x[1]), [-1.0, 1.0])  # clipped to the support


def test_main_job_with_the_flow(tmp_path):
  """python -m ganjax.main --config=configs/hgg.py:test,flow: the flow trains by maximum likelihood, is
  selected by the same S-sample -2lnL, generates the CR (inside the preprocessed support) and feeds DCTR;
  metrics.json adds its exact test NLL."""
  import subprocess
  import sys

  from ganjax import io
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
  out = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/hgg.py:test,flow",
                        f"--workdir={tmp_path}", "--config.output.validation=False", "--config.dctr.enabled=True",
                        "--config.dctr.train.epochs=1", "--config.metric.test_samples=(3,)"], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  m = json.load(open(tmp_path / "metrics.json"))
  assert m["model_kind"] == "flow" and "discriminator" not in m
  # the features are standard-normal marginals (data.quantile_output = "normal") and the flow starts as the
  # identity: near 4 (ln(2 pi) + 1) / 2 = 5.68 nats, the standard normal's entropy, after 16 steps
  assert abs(m["test_flow_nll"] - 5.68) < 0.3
  assert set(m["test_nll"]) == {"3"} and m["best_val_nll"] == min(m["history"]["val_nll"])
  assert len(m["history"]["loss_nll"]) == 2 and "loss_d" not in m["history"]
  assert m["generator"]["params"] > 0 and np.isfinite(m["s2_fake_pt_ratio"])
  assert "classifier" in m["dctr"]  # DCTR of the flow's CR (weights checked below)
  cols, _ = io.read_parquet(str(tmp_path / "ganed_cr.parquet"))
  for c in ("gan_fake_pt", "gan_fake_eta", "gan_fake_phi", "gan_fake_id", "gan_mgg", "dctr_weight"):
    assert np.all(np.isfinite(cols[c])), c
  assert np.all(cols["gan_fake_pt"] > 0) and np.all(np.abs(cols["gan_fake_phi"]) <= np.pi)


def test_flow_options_of_every_method():
  """`flow` combines with the presets of the main job, amplification and Z -> mu mu (in any order)."""
  for spec in ("hgg:quick,flow", "hgg:flow,quick"):
    c = load_config(spec)
    assert c.model.kind == "flow" and tuple(c.model.flow.hidden) == (48, 48) and c.data.n_train == 24_000
  assert load_config("hgg:test,dctr").model.kind == "gan"
  c = load_config("ganplify:cpu5d,flow")
  assert c.model.kind == "flow" and c.n_members == 10 and c.data.toy == "shell" and c.train.optimizer.b1 == 0.9
  assert load_config("ganplify:cpu5d").model.kind == "gan"
  with pytest.raises(ValueError, match="unknown option"):
    load_config("ganplify:cpu1d,flwo")
  c = load_config("zmumu:reduced,flow")
  assert c.model.kind == "flow" and c.train.optimizer.name == "adam" and c.train.steps == 3000


def test_flow_bound_covers_the_sample_tails():
  """With data.quantile_tails="sample" the features fill +-Phi^-1(1 - 1/(2 n_train)) (4.42 at the paper's
  100k): the default bound 4.5 covers it, a bound of 4 is refused by name; the knots tails fill +-3.29."""
  from ganjax import hgg
  from ganjax.engine.errors import BadInputError
  hgg.check_config(load_config("hgg:flow"))
  with pytest.raises(BadInputError, match=r"bound > 4\.42"):
    hgg.check_config(load_config("hgg:flow", **{"model.flow.bound": 4.0}))
  hgg.check_config(load_config("hgg:flow", **{"model.flow.bound": 4.0, "data.quantile_tails": "knots"}))
  with pytest.raises(BadInputError, match="quantile_tails"):
    hgg.check_config(load_config("hgg:test", **{"data.quantile_tails": "tails"}))
