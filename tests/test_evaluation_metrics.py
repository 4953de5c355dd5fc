"""The evaluation statistics against independent references (scipy.stats, numpy brute force, closed forms),
and their nulls centred where theory says."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.optimize
import scipy.stats

from ganjax.metrics import distances, event_bootstrap, truthless_amplification, two_sample
from ganjax.metrics.likelihood import neg2_log_likelihood


# ----------------------------------------------------------------------------- Frechet


def test_frechet_distance_closed_forms():
  rng = np.random.default_rng(0)
  # diagonal covariances commute: FD = |dmu|^2 + sum (s1 - s2)^2
  mu1, mu2 = rng.normal(size=3), rng.normal(size=3)
  s1, s2 = rng.uniform(0.5, 2, 3), rng.uniform(0.5, 2, 3)
  assert distances.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(
      np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2), rel=1e-10)
  # general covariances: tr(C1 + C2 - 2 sqrtm(C1 C2)) with scipy's sqrtm
  a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
  c1, c2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
  ref = np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
  assert distances.frechet_distance(np.zeros(4), c1, np.zeros(4), c2) == pytest.approx(ref, rel=1e-8)


def test_fpd_extrapolates_to_the_gaussian_value_and_null_to_zero():
  rng = np.random.default_rng(1)
  cov = np.array([[1.0, 0.5], [0.5, 1.0]])
  x = rng.multivariate_normal([0, 0], cov, 20_000)
  y = rng.multivariate_normal([0.3, 0], np.diag([1.0, 2.0]), 20_000)
  truth = distances.frechet_distance(np.zeros(2), cov, np.array([0.3, 0]), np.diag([1.0, 2.0]))
  r = distances.fpd(x, y, n_min=2000, n_max=10_000, n_batches=10, n_boot=30)
  assert abs(r["value"] - truth) < 4 * r["error"] + 0.01 * truth
  # null: the finite-N bias is k/N > 0; the intercept is ~0
  x2 = rng.multivariate_normal([0, 0], cov, 20_000)
  null = distances.fpd(x, x2, n_min=2000, n_max=10_000, n_batches=10, n_boot=30)
  assert null["fd_at_sizes"][0] > 0 and abs(null["value"]) < 4 * null["error"] + 1e-4
  assert abs(null["value"]) < 0.2 * null["fd_at_sizes"][0]


# ----------------------------------------------------------------------------- kernel


def _mmd2_brute(x, y, wx, wy):
  """O(n^2) double sums written out from the definition (Gretton et al. Lemma 6, pair weights w_i w_j)."""
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1.0) ** 3
  def within(a, w):
    num = den = 0.0
    for i in range(len(a)):
      for j in range(len(a)):
        if i != j:
          num += w[i] * w[j] * k(a[i], a[j])
          den += w[i] * w[j]
    return num / den
  cross = sum(wx[i] * wy[j] * k(x[i], y[j]) for i in range(len(x)) for j in range(len(y)))
  return within(x, wx) + within(y, wy) - 2 * cross / (wx.sum() * wy.sum())


def test_mmd2_matches_brute_force_and_null_is_unbiased():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(40, 3)), rng.normal(0.5, 1, size=(30, 3))
  assert distances.mmd2_unbiased(x, y) == pytest.approx(_mmd2_brute(x, y, np.ones(40), np.ones(30)), rel=1e-9)
  wx, wy = rng.uniform(0.2, 2, 40), rng.uniform(0.2, 2, 30)
  assert distances.mmd2_unbiased(x, y, wx, wy) == pytest.approx(_mmd2_brute(x, y, wx, wy), rel=1e-9)
  assert distances.poly_kernel_sums(x, y, block=7) == pytest.approx(distances.poly_kernel_sums(x, y), rel=1e-12)
  # unbiased: the mean over many null pairs is 0 within its standard error
  vals = [distances.mmd2_unbiased(rng.normal(size=(200, 3)), rng.normal(size=(200, 3))) for _ in range(200)]
  assert abs(np.mean(vals)) < 3 * np.std(vals) / math.sqrt(len(vals))
  r = distances.kpd(rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3)), batch_size=1000)
  assert r["batch_size"] == 1000 and abs(r["value"]) < 5 * r["error"] + 1e-4


# ----------------------------------------------------------------------------- Wasserstein


def test_wasserstein_matches_scipy():
  rng = np.random.default_rng(3)
  u, v = rng.normal(size=500), rng.exponential(size=300)
  assert distances.wasserstein_1d(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v), rel=1e-10)
  wu, wv = rng.uniform(0, 3, 500), rng.uniform(0, 3, 300)
  assert distances.wasserstein_1d(u, v, wu, wv) == pytest.approx(
      scipy.stats.wasserstein_distance(u, v, wu, wv), rel=1e-10)
  ints = rng.integers(0, 5, 200).astype(float)  # ties
  assert distances.wasserstein_1d(ints, ints[:50] + 1) == pytest.approx(
      scipy.stats.wasserstein_distance(ints, ints[:50] + 1), rel=1e-10)
  r = distances.wasserstein_features(np.stack([u[:300], u[:300] * 2], 1), np.stack([v, v], 1), n_boot=10)
  assert r["per_feature"][0] == pytest.approx(scipy.stats.wasserstein_distance(u[:300], v), rel=1e-10)
  assert r["error"] > 0


# ----------------------------------------------------------------------------- AUC, Platt


def test_auc_matches_mann_whitney_and_weighted_brute_force():
  rng = np.random.default_rng(4)
  st, sg = rng.normal(0.3, 1, 300).round(1), rng.normal(0, 1, 200).round(1)  # rounded: ties
  u = scipy.stats.mannwhitneyu(st, sg).statistic
  assert two_sample.auc(st, sg) == pytest.approx(u / (300 * 200), rel=1e-12)
  wt, wg = rng.uniform(0, 2, 300), rng.uniform(0, 2, 200)
  gt = (st[:, None] > sg[None]) + 0.5 * (st[:, None] == sg[None])
  assert two_sample.auc(st, sg, wt, wg) == pytest.approx((wt @ gt @ wg) / (wt.sum() * wg.sum()), rel=1e-12)
  assert two_sample.auc_null_std(300, 200) == pytest.approx(
      math.sqrt((300 + 200 + 1) / (12 * 300 * 200)))


def test_platt_minimises_the_balanced_bce():
  rng = np.random.default_rng(5)
  st, sg = rng.normal(1, 1, 400) * 3, rng.normal(-1, 1, 300) * 3  # overconfident scores
  wg = rng.uniform(0.5, 1.5, 300)
  a, b = two_sample.platt(st, sg, None, wg)
  ref = scipy.optimize.minimize(lambda p: two_sample.balanced_bce(st, sg, None, wg, p[0], p[1]), [1.0, 0.0],
                                method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12}).x
  assert (a, b) == pytest.approx(tuple(ref), abs=1e-4)
  assert a < 1  # the overconfident scores are tempered


# ----------------------------------------------------------------------------- classifier test


def _gauss_jsd(mu: float) -> float:
  """JSD (nats) of N(0, 1) and N(mu, 1) by quadrature."""
  p = lambda x: scipy.stats.norm.pdf(x)
  q = lambda x: scipy.stats.norm.pdf(x, mu)
  f = lambda x: 0.5 * p(x) * np.log(2 * p(x) / (p(x) + q(x))) + 0.5 * q(x) * np.log(2 * q(x) / (p(x) + q(x)))
  return scipy.integrate.quad(f, -12, 12 + mu)[0]


@pytest.fixture(scope="module")
def summaries():
  """The shared table (ganjax.evaluation.summary) for a shifted Gaussian (with the classifier: its main and
  its null training, the only two classifier fits of this file) and for a truth-like sample (distances)."""
  from ganjax import evaluation
  rng = np.random.default_rng(6)
  n = 3000
  truth, more = rng.normal(size=(n, 2)), rng.normal(size=(2 * n, 2))
  cols = ["a", "b"]
  table = lambda x: {c: x[:, i] for i, c in enumerate(cols)}
  cfg = two_sample.default_config(2)
  cfg.train.epochs, cfg.train.batch_size, cfg.model.hidden = 12, 128, (32, 32)
  shift = evaluation.summary(rng.normal(size=(n, 2)) + [0.8, 0], truth, truth_null=more, classifier_config=cfg,
                             kpd_batch_size=500, generated_weights=np.ones(n), baseline=more[:n] + [1.2, 0])
  good = evaluation.summary(table(rng.normal(size=(n, 2))), table(truth), cols, truth_null=table(more),
                            classifier=False, kpd_batch_size=500)
  return {"shift": shift, "good": good, "rows": {r["statistic"]: r for r in shift["rows"]}}


def test_classifier_null_is_centred(summaries):
  rows, c = summaries["rows"], summaries["shift"]["classifier"]
  assert abs(rows["classifier AUC"]["null_mean"] - 0.5) < 3 * rows["classifier AUC"]["null_std"]
  assert rows["classifier AUC"]["null_std"] == pytest.approx(two_sample.auc_null_std(1500, 1500))
  assert abs(rows["classifier JSD (ln2 - BCE, nats)"]["null_mean"]) < 0.01
  assert c["null_weights"]["quantiles"]["0.5"] == pytest.approx(1.0, abs=0.15)
  assert rows["fraction of w=D/(1-D) outside [1/2, 2]"]["null_mean"] < 0.05


def test_classifier_separates_and_bounds_the_jsd(summaries):
  rows = summaries["rows"]
  auc, jsd = rows["classifier AUC"], rows["classifier JSD (ln2 - BCE, nats)"]
  truth_auc = scipy.stats.norm.cdf(0.8 / math.sqrt(2))  # optimal AUC for a unit-variance mean shift
  assert truth_auc - 0.04 < auc["value"] < truth_auc + 3 * auc["error"]
  assert 0.7 * _gauss_jsd(0.8) < jsd["value"] < _gauss_jsd(0.8) + 3 * jsd["error"]
  assert rows["fraction of w=D/(1-D) outside [1/2, 2]"]["value"] > 0.2
  assert not auc["compatible"] and not jsd["compatible"]


# ----------------------------------------------------------------------------- truthless amplification


def test_averaging_amplification_recovers_the_model_spread_and_is_calibrated():
  rng = np.random.default_rng(7)
  m, k, n_gen, n_train = 40, 400, 20_000, 100
  p_true = np.full(k, 1.0 / 20)
  tau = 0.004  # model error per member, unbiased
  p_m = p_true + rng.normal(0, tau, (m, k))
  counts = rng.binomial(n_gen, p_m)
  r = truthless_amplification.truth_check(counts, n_gen, p_true, n_train)
  assert np.sqrt(np.mean(r["sigma_model"] ** 2)) == pytest.approx(tau, rel=0.05)
  assert r["sigma_stat"] == pytest.approx(np.sqrt(p_true * (1 - p_true) / n_gen), rel=0.05)
  expected_amp = p_true[0] * (1 - p_true[0]) / (tau ** 2 + p_true[0] * (1 - p_true[0]) / n_gen) / n_train
  assert np.median(r["amplification_member"]) == pytest.approx(expected_amp, rel=0.1)
  assert np.median(r["amplification_truth_member"]) == pytest.approx(expected_amp, rel=0.1)
  assert r["coverage_ensemble"] == pytest.approx(0.68, abs=0.06)
  assert r["coverage_member"] == pytest.approx(0.68, abs=0.03)
  assert abs(r["pull_ensemble_mean"]) < 4 / math.sqrt(k)
  # a common bias the spread cannot see: truth-based amplification drops, coverage fails
  biased = truthless_amplification.truth_check(rng.binomial(n_gen, p_m + 2 * tau), n_gen, p_true, n_train)
  assert np.median(biased["amplification_truth_member"]) < 0.5 * np.median(biased["amplification_member"])
  assert biased["coverage_ensemble"] < 0.1
  s = truthless_amplification.summary(r)
  assert s["amplification_member"]["median"] == pytest.approx(np.median(r["amplification_member"]))


# ----------------------------------------------------------------------------- event bootstrap of -2lnL


def test_event_bootstrap_matches_brute_force_resampling_and_delta_method():
  rng = np.random.default_rng(8)
  n, s, n_bins = 2000, 5, 10
  latent = rng.integers(0, n_bins, n)  # the event's "conditioning": its generations are correlated with it
  real = latent
  gen = np.where(rng.uniform(size=(n, s)) < 0.7, latent[:, None], rng.integers(0, n_bins, (n, s)))
  r = event_bootstrap.neg2lnl(real, gen, n_bins, n_boot=100, seed=3)
  assert r["value"] == pytest.approx(neg2_log_likelihood(np.bincount(real, minlength=n_bins),
                                                         np.bincount(gen.ravel(), minlength=n_bins)))
  # brute force: resample the event rows themselves with the same random draws
  rb = np.random.default_rng(3)
  vals = []
  for _ in range(100):
    ix = rb.integers(0, n, n)
    vals.append(neg2_log_likelihood(np.bincount(real[ix], minlength=n_bins),
                                    np.bincount(gen[ix].ravel(), minlength=n_bins)))
  assert r["error"] == pytest.approx(np.std(vals, ddof=1), rel=1e-9)
  # delta method: the influence of event i on -2 sum_k m_k ln(n_k / sum n) is
  # -2 ln p(real_i) - 2 sum_k m_k g_ik / n_k (+ a constant), g_ik = its generations in bin k
  m_k, n_k = np.bincount(real, minlength=n_bins), np.bincount(gen.ravel(), minlength=n_bins)
  g_ik = np.stack([np.bincount(row, minlength=n_bins) for row in gen])
  influence = -2 * np.log(n_k[real] / gen.size) - 2 * g_ik @ (m_k / n_k)
  assert r["error"] == pytest.approx(math.sqrt(n) * np.std(influence), rel=0.2)
  assert r["per_bin"]["n_bins"] == n_bins and r["per_bin"]["chi2"] < 3 * n_bins
  d = event_bootstrap.difference(real, gen, gen, n_bins, n_boot=20)
  assert d["value"] == 0 and d["error"] == 0


# ----------------------------------------------------------------------------- the shared summary table


def test_summary_table_flags_a_shift_and_passes_the_truth(summaries):
  from ganjax import evaluation
  good, bad = summaries["good"], summaries["shift"]
  assert good["null_sizes"] == [3000, 3000] and bad["weighted"] and not good["weighted"]
  rows_good = {r["statistic"]: r for r in good["rows"]}
  rows_bad = summaries["rows"]
  assert len(rows_bad) == 6 and set(rows_good) < set(rows_bad)
  for name in ("FPD (N -> inf)", "KPD (MMD^2, cubic kernel)", "mean W1 per feature"):
    assert not rows_bad[name]["compatible"], name
    assert rows_bad[name]["baseline"] > rows_bad[name]["value"], name  # the baseline is shifted further
  assert sum(r["compatible"] for r in good["rows"]) >= 2  # at 2 sigma one of three may fluctuate
  text = evaluation.format_table(bad)
  assert "| classifier AUC |" in text and "| baseline |" in text
  with pytest.raises(ValueError, match="generated: missing columns"):
    evaluation.summary({"a": np.zeros(3)}, {"a": np.zeros(3), "b": np.zeros(3)}, ["a", "b"])


def test_within_sigma_selection_keeps_the_earlier_model_on_ties():
  """The driver's margin: n_sigma times the paired event-bootstrap std of -2lnL(now) - -2lnL(kept) (checked
  against a brute-force bootstrap); a lower -2lnL within it is a tie. The kept model's bins come from the kept
  models and step (a fresh instance, as after a resume, gives the same margins as one that cached them)."""
  from ganjax.evaluation import WithinSigmaSelection
  rng = np.random.default_rng(10)
  n, s, n_bins = 1500, 4, 8
  p = np.arange(1, n_bins + 1) / np.sum(np.arange(1, n_bins + 1))
  real = rng.choice(n_bins, n, p=p)
  models = {"good": rng.choice(n_bins, (n, s), p=p), "close": rng.choice(n_bins, (n, s), p=p),  # equally good
            "bad": rng.integers(0, n_bins, (n, s))}
  nll = lambda g: neg2_log_likelihood(np.bincount(real, minlength=n_bins), np.bincount(g.ravel(), minlength=n_bins))
  calls, M = [], np.array  # a member's "model": its name

  def bins_fn(models_M, step_M):  # the step must arrive with the models
    calls.append(list(step_M))
    return np.stack([models[m] for m in models_M])

  tie = WithinSigmaSelection(real, n_bins, bins_fn, n_sigma=2.0, n_boot=50, seed=3)
  np.testing.assert_array_equal(tie(M(["bad", "bad"]), np.array([-1, -1]), M(["bad", "bad"]), 4), [0.0, 0.0])
  margin = tie(M(["bad", "bad"]), np.array([4, -1]), M(["good", "close"]), 8)  # member 1: nothing kept
  assert calls == [[4, 4], [8, 8]] and margin[1] == 0  # the kept bins are those of step 4's call: reused
  # brute force: the same replicas (multiplicities) for both generators
  boot = np.random.default_rng(3)
  diffs = []
  for _ in range(50):
    c = np.bincount(boot.integers(0, n, n), minlength=n).astype(float)
    m = np.bincount(real, weights=c, minlength=n_bins)
    h = lambda g: np.bincount(g.ravel(), weights=np.repeat(c, s), minlength=n_bins)
    diffs.append(neg2_log_likelihood(m, h(models["good"])) - neg2_log_likelihood(m, h(models["bad"])))
  np.testing.assert_allclose(margin[0], 2.0 * np.std(diffs, ddof=1), rtol=1e-10)
  assert nll(models["good"]) < nll(models["bad"]) - margin[0]  # much better: replaces
  fresh = WithinSigmaSelection(real, n_bins, bins_fn, n_sigma=2.0, n_boot=50, seed=3)
  np.testing.assert_array_equal(fresh(M(["bad", "bad"]), np.array([4, -1]), M(["good", "close"]), 8), margin)
  assert calls[-2:] == [[8, 8], [4, 0]]  # a fresh instance recomputes the kept bins at the kept step
  tie_margin = tie(M(["good", "bad"]), np.array([8, -1]), M(["close", "close"]), 12)
  assert abs(nll(models["close"]) - nll(models["good"])) < tie_margin[0]  # equally good: a tie, kept earlier
  bad_bins = dict(models, broken=np.full((n, s), -1))
  broken = WithinSigmaSelection(real, n_bins, lambda m, st: np.stack([bad_bins[x] for x in m]), n_boot=10)
  assert np.isnan(broken(M(["good"]), np.array([4]), M(["broken"]), 8)[0])  # bins outside the metric: no replacement


def test_hgg_index_fn_bins_are_the_histogram():
  """The main job's per-object metric bins (for the event bootstrap) reproduce the one-call histogram."""
  import jax
  import jax.numpy as jnp
  from ganjax.data.preprocess import fit_quantile_transform
  from ganjax.hgg import metric
  from ganjax.models.dcgan import Generator
  rng = np.random.default_rng(0)
  gen_features, dims = ("fake_pt", "fake_eta", "fake_phi", "fake_id"), ("fake_pt", "fake_eta", "ptgg_over_mgg")
  phys = np.stack([rng.exponential(20, 400) + 30, rng.normal(0, 1, 400), rng.uniform(-3.1, 3.1, 400),
                   rng.uniform(-1, 1, 400)], -1)
  gen_qt = fit_quantile_transform(phys, 50)
  ratio_qt = fit_quantile_transform(rng.exponential(0.3, (400, 1)), 50)
  metric_qt = type(gen_qt)(knots_DxQ=np.stack([gen_qt.knots_DxQ[0], gen_qt.knots_DxQ[1], ratio_qt.knots_DxQ[0]]),
                           probs_Q=gen_qt.probs_Q)
  aux = {"pho_pt": rng.exponential(20, 150) + 40, "pho_eta": rng.normal(0, 1, 150), "pho_phi": rng.uniform(-3, 3, 150)}
  events = metric.pad_events(rng.uniform(-1, 1, (150, 2)), aux, chunk=64)
  g = Generator(n_out=4, width=0.125)
  params = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)), jnp.zeros((1, 2)))
  args = (g, 5, gen_features, dims, gen_qt, metric_qt, 5, 64)
  key, ids = jax.random.PRNGKey(3), jnp.arange(4)
  counts = np.asarray(jax.jit(metric.make_histogram_fn(*args))(params, key, events, ids))
  idx_SxN = np.asarray(jax.jit(metric.make_index_fn(*args))(params, key, events, ids))[:, :events.n_events]
  np.testing.assert_array_equal(np.bincount(idx_SxN.ravel(), minlength=counts.size), counts)
  real = {"fake_pt": phys[:150, 0], "fake_eta": phys[:150, 1], "ptgg_over_mgg": rng.exponential(0.3, 150)}
  np.testing.assert_array_equal(
      np.bincount(metric.real_bin_index(real, dims, metric_qt, 5), minlength=125),
      metric.real_histogram(real, gen_features, dims, gen_qt, metric_qt, 5))
