"""Classifier two-sample test of a generated sample against the truth (CaloChallenge evaluation, Krause et
al. 2410.21611, Sec. 4; the weight tails of Das et al. 2305.16774), on a CPU-sized classifier.

The classifier is the DCTR reweighter of ganjax.dctr.reweight (one MLP trained by the engine, best epoch by
its held-out loss, temperature scaling): this module only splits off a test set it never saw and evaluates
there
- the ROC AUC (0.5: indistinguishable; the held-out AUC of ANY fixed classifier is exactly Mann-Whitney
  distributed under the null, mean 0.5, std sqrt((n_t + n_g + 1) / (12 n_t n_g))),
- the calibrated Jensen-Shannon divergence JSD = ln 2 - BCE (nats; balanced classes): the BCE of the
  classifier after Platt scaling sigmoid(a s + b), a and b fitted on one half of the test set and the BCE
  taken on the other (cross-fitted, both ways averaged), so the calibration does not see the events it is
  scored on; ln 2 - BCE is the lower bound on the JSD that the classifier reaches (0 for one distribution),
- the distribution of the calibrated weights w = D / (1 - D) on the generated test events: quantiles and the
  fraction outside [1/2, 2] (the tails of Das et al.: regions the generator under- or over-populates).
Generated events may carry weights (e.g. DCTR weights): they weigh the training, the AUC and the BCE.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np

LN2 = math.log(2.0)


def auc(score_t, score_g, wt=None, wg=None) -> float:
  """Weighted ROC AUC = P(s_t > s_g) + P(s_t = s_g) / 2 over (weighted) pairs: the Mann-Whitney U / (n_t n_g)
  for unit weights. Truth is the positive class; O(n log n) by sorting the generated scores."""
  st, sg = np.asarray(score_t, np.float64), np.asarray(score_g, np.float64)
  wt = np.ones(len(st)) if wt is None else np.asarray(wt, np.float64)
  wg = np.ones(len(sg)) if wg is None else np.asarray(wg, np.float64)
  order = np.argsort(sg, kind="mergesort")
  sg, cum = sg[order], np.concatenate([[0.0], np.cumsum(wg[order])])
  below = cum[np.searchsorted(sg, st, "left")]
  equal = cum[np.searchsorted(sg, st, "right")] - below
  return float(np.sum(wt * (below + 0.5 * equal)) / (wt.sum() * wg.sum()))


def auc_null_std(n_t: int, n_g: int) -> float:
  """Std of the AUC of a fixed score under the null (Mann-Whitney, no ties)."""
  return math.sqrt((n_t + n_g + 1) / (12.0 * n_t * n_g))


def _softplus(z):
  return np.logaddexp(0.0, z)


def balanced_bce(s_t, s_g, wt=None, wg=None, a: float = 1.0, b: float = 0.0) -> float:
  """Balanced BCE (nats) of sigmoid(a s + b) with truth = 1: (mean_t -ln D + weighted mean_g -ln(1-D)) / 2."""
  wt = np.ones(len(s_t)) if wt is None else np.asarray(wt, np.float64)
  wg = np.ones(len(s_g)) if wg is None else np.asarray(wg, np.float64)
  lt = np.sum(wt * _softplus(-(a * np.asarray(s_t) + b))) / wt.sum()
  lg = np.sum(wg * _softplus(a * np.asarray(s_g) + b)) / wg.sum()
  return float(0.5 * (lt + lg))


def platt(s_t, s_g, wt=None, wg=None, n_iter: int = 50) -> tuple[float, float]:
  """(a, b) minimising balanced_bce(a s + b) (Platt 1999): Newton's method on the convex 2-parameter loss,
  with step halving."""
  s_t, s_g = np.asarray(s_t, np.float64), np.asarray(s_g, np.float64)
  wt = (np.ones(len(s_t)) if wt is None else np.asarray(wt, np.float64))
  wg = (np.ones(len(s_g)) if wg is None else np.asarray(wg, np.float64))
  s = np.concatenate([s_t, s_g])
  y = np.concatenate([np.ones(len(s_t)), np.zeros(len(s_g))])
  w = np.concatenate([0.5 * wt / wt.sum(), 0.5 * wg / wg.sum()])
  x = np.stack([s, np.ones_like(s)], 1)
  theta = np.array([1.0, 0.0])

  def loss(th):
    z = x @ th
    return np.sum(w * np.where(y > 0, _softplus(-z), _softplus(z)))

  cur = loss(theta)
  for _ in range(n_iter):
    p = 1.0 / (1.0 + np.exp(-(x @ theta)))
    grad = x.T @ (w * (p - y))
    hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-12 * np.eye(2)
    step = np.linalg.solve(hess, grad)
    t = 1.0
    while t > 1e-6:
      new = loss(theta - t * step)
      if new <= cur:
        break
      t *= 0.5
    if cur - new < 1e-14:
      theta = theta - t * step if new <= cur else theta
      break
    theta, cur = theta - t * step, new
  return float(theta[0]), float(theta[1])


def calibrated_jsd(s_t, s_g, wt=None, wg=None, seed: int = 0) -> tuple[float, tuple[float, float]]:
  """ln 2 - BCE after Platt scaling, cross-fitted over two random halves of each class; also (a, b) fitted
  on all test events (used for the weights)."""
  s_t, s_g = np.asarray(s_t, np.float64), np.asarray(s_g, np.float64)
  wt = np.ones(len(s_t)) if wt is None else np.asarray(wt, np.float64)
  wg = np.ones(len(s_g)) if wg is None else np.asarray(wg, np.float64)
  rng = np.random.default_rng(seed)
  ht, hg = rng.permutation(len(s_t)) < len(s_t) // 2, rng.permutation(len(s_g)) < len(s_g) // 2
  bce = []
  for ft, fg in ((ht, hg), (~ht, ~hg)):
    a, b = platt(s_t[ft], s_g[fg], wt[ft], wg[fg])
    bce.append(balanced_bce(s_t[~ft], s_g[~fg], wt[~ft], wg[~fg], a, b))
  return LN2 - float(np.mean(bce)), platt(s_t, s_g, wt, wg)


def weight_distribution(log_w_N, w_in_N=None) -> dict:
  """Quantiles of w = D/(1-D) on generated events and the (input-weighted) fraction outside [1/2, 2]."""
  log_w = np.asarray(log_w_N, np.float64)
  w_in = np.ones(len(log_w)) if w_in_N is None else np.asarray(w_in_N, np.float64)
  qs = (0.001, 0.01, 0.16, 0.5, 0.84, 0.99, 0.999)
  return {"quantiles": dict(zip(map(str, qs), np.exp(np.quantile(log_w, qs)).tolist())),
          "fraction_outside_half_to_2": float(np.sum(w_in * (np.abs(log_w) > LN2)) / w_in.sum()),
          "fraction_above_5": float(np.sum(w_in * (log_w > math.log(5.0))) / w_in.sum()),
          "fraction_below_0.2": float(np.sum(w_in * (log_w < -math.log(5.0))) / w_in.sum())}


def default_config(dim: int, seed: int = 0) -> ml_collections.ConfigDict:
  """The DCTR reweighter's config sized for a CPU two-sample test: 3 x 64 ReLU, 30 epochs, batch 512,
  cosine decay; held-out 20% of the fit split for the best epoch and the temperature."""
  from ganjax.dctr import reweight
  c = reweight.default_config()
  c.columns = [f"f{i}" for i in range(dim)]
  c.seed = seed
  c.clip = 0.0
  c.normalize = False
  c.model.hidden = (64, 64, 64)
  c.train.epochs = 30
  c.train.batch_size = 512
  c.train.optimizer.schedule = "cosine"
  return c


def classifier_test(x_truth_NxD, x_gen_MxD, w_gen_M=None, *, config: ml_collections.ConfigDict | None = None,
                    test_fraction: float = 0.5, n_boot: int = 50, seed: int = 0) -> dict:
  """Train the classifier on (1 - test_fraction) of each sample and evaluate on the rest.

  Returns {"auc", "auc_error", "jsd", "jsd_error", "weights": weight_distribution, "weights_error" (of its
  fraction outside [1/2, 2]), "platt", "fit": the reweighter's report, sizes}. Errors: std over n_boot bootstrap replicas of the test events (the
  classifier and the Platt parameters fixed).
  """
  from ganjax.dctr import reweight
  xt, xg = np.asarray(x_truth_NxD, np.float32), np.asarray(x_gen_MxD, np.float32)
  wg = np.ones(len(xg)) if w_gen_M is None else np.asarray(w_gen_M, np.float64)
  cfg = config or default_config(xt.shape[1], seed)
  rng = np.random.default_rng(seed)
  tt = rng.permutation(len(xt)) < int(round(test_fraction * len(xt)))
  tg = rng.permutation(len(xg)) < int(round(test_fraction * len(xg)))
  cols = lambda x: {c: x[:, i] for i, c in enumerate(cfg.columns)}
  rw, log_w_fn, report = reweight.fit(cols(xt[~tt]), cols(xg[~tg]), cfg, generated_weights=wg[~tg],
                                      key=jax.random.PRNGKey(seed))
  s_t = np.asarray(log_w_fn(rw, xt[tt]), np.float64)
  s_g = np.asarray(log_w_fn(rw, xg[tg]), np.float64)
  w_test = wg[tg]
  value_auc = auc(s_t, s_g, None, w_test)
  jsd, (a, b) = calibrated_jsd(s_t, s_g, None, w_test, seed)
  tail_g = (np.abs(a * s_g + b) > LN2).astype(np.float64)
  boot_auc, boot_jsd, boot_tail = [], [], []
  for _ in range(n_boot):  # test-set bootstrap, classifier fixed
    it, ig = rng.integers(0, len(s_t), len(s_t)), rng.integers(0, len(s_g), len(s_g))
    boot_auc.append(auc(s_t[it], s_g[ig], None, w_test[ig]))
    boot_jsd.append(LN2 - balanced_bce(s_t[it], s_g[ig], None, w_test[ig], a, b))
    boot_tail.append(np.sum(w_test[ig] * tail_g[ig]) / np.sum(w_test[ig]))
  return {"auc": value_auc, "auc_error": float(np.std(boot_auc, ddof=1)),
          "auc_null_std": auc_null_std(len(s_t), len(s_g)),
          "jsd": jsd, "jsd_error": float(np.std(boot_jsd, ddof=1)),
          "weights": weight_distribution(a * s_g + b, w_test), "weights_error": float(np.std(boot_tail, ddof=1)),
          "platt": {"a": a, "b": b},
          "n_truth_test": int(len(s_t)), "n_generated_test": int(len(s_g)),
          "fit": {k: report[k] for k in ("n_truth_train", "n_generated_train", "best_epoch", "temperature",
                                         "val_auc", "fit_seconds")}}
