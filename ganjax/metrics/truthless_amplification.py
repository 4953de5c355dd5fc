"""Amplification without truth: the "averaging" amplification of Bahl et al. 2509.08048, from an ensemble.

For a phase-space region V (a quantile bin of a toy, a bin of the main job's metric space) with true
probability I = int_V p_true, a generator estimates I from n_gen generated events as p = k / n_gen. Its
squared error splits into a statistical part (the finite generated sample, binomial: I (1 - I) / n_gen)
and a model part (how far the trained network's own probability is from I). The ensemble of M generators
estimates both without truth, per region:
  p_bar           = mean_m p_m                               (the ensemble estimate)
  sigma_stat^2    = p_bar (1 - p_bar) / n_gen                (one member's sampling variance)
  s^2             = var_m p_m (ddof 1)                       (= sigma_model^2 + sigma_stat^2 in expectation)
  sigma_model^2   = max(s^2 - sigma_stat^2, 0)
  sigma_1^2       = s^2                                      (one member's total error)
  sigma_ens^2     = s^2 / M                                  (the ensemble mean's error; members independent)
A true sample of N events estimates I with variance I (1 - I) / N (binomial), so an estimate of variance
sigma^2 is worth N_eq = p (1 - p) / sigma^2 true events, and the amplification is G = N_eq / N_train
(Bahl et al. Sec. 2; GANplifying's definition of amplification, per region). G_model = p(1-p) /
sigma_model^2 / N_train is the limit n_gen -> infinity.

This assumes that the members' spread covers the error of one member: it does when every member is trained
on its own training sample (the GANplifying toys); members that share the training sample (seeds of the
main job) see only the training stochasticity and over-state G. The truth-based check (`truth_check`):
the GANplifying-style per-region amplification from the mean squared error against the true I, the pulls
(p_bar - I) / sigma_ens and (p_m - I) / sigma_1, and the fraction of regions (members) whose +-1 sigma band
covers I (68% if calibrated).

Implemented from the paper's abstract and its summary of the averaging method (the statistical / model
split of the integral's precision and the binomial equivalence), not from its full text.
"""

from __future__ import annotations

import numpy as np


def averaging(counts_MxK, n_gen, n_train: int) -> dict:
  """Per-region averaging amplification from member counts (counts_MxK: generated events of member m in
  region k, n_gen: each member's generated events, scalar or [M]). Arrays over regions, JSON-ready lists."""
  c = np.asarray(counts_MxK, np.float64)
  n_gen_M = np.broadcast_to(np.asarray(n_gen, np.float64), (c.shape[0],))
  m = c.shape[0]
  if m < 2:
    raise ValueError(f"averaging amplification needs >= 2 members, got {m}")
  p_MxK = c / n_gen_M[:, None]
  p = p_MxK.mean(0)
  var_stat = p * (1 - p) / n_gen_M.mean()
  s2 = p_MxK.var(0, ddof=1)
  var_model = np.maximum(s2 - var_stat, 0.0)
  with np.errstate(divide="ignore", invalid="ignore"):
    n_eq_1 = np.where(s2 > 0, p * (1 - p) / s2, np.inf)
    n_eq_ens = n_eq_1 * m
    n_eq_model = np.where(var_model > 0, p * (1 - p) / var_model, np.inf)
  return {"p": p, "sigma_stat": np.sqrt(var_stat), "sigma_model": np.sqrt(var_model), "sigma_1": np.sqrt(s2),
          "sigma_ensemble": np.sqrt(s2 / m), "n_eq_member": n_eq_1, "n_eq_ensemble": n_eq_ens,
          "amplification_member": n_eq_1 / n_train, "amplification_ensemble": n_eq_ens / n_train,
          "amplification_model_limit": n_eq_model / n_train, "n_members": m,
          "n_gen": float(n_gen_M.mean()), "n_train": int(n_train)}


def truth_check(counts_MxK, n_gen, p_true_K, n_train: int) -> dict:
  """Truth-based per-region amplification (GANplifying Sec. 2 per region: N_eq = I (1 - I) / MSE with
  MSE = mean_m (p_m - I)^2) next to the truthless one, and the calibration of the truthless errors."""
  a = averaging(counts_MxK, n_gen, n_train)
  c = np.asarray(counts_MxK, np.float64)
  n_gen_M = np.broadcast_to(np.asarray(n_gen, np.float64), (c.shape[0],))
  p_MxK = c / n_gen_M[:, None]
  i = np.asarray(p_true_K, np.float64)
  mse = np.mean((p_MxK - i) ** 2, 0)
  with np.errstate(divide="ignore", invalid="ignore"):
    amp_truth = np.where(mse > 0, i * (1 - i) / mse, np.inf) / n_train
    pull_ens = (a["p"] - i) / a["sigma_ensemble"]
    pull_mem = (p_MxK - i) / a["sigma_1"]
  return {**a, "p_true": i, "amplification_truth_member": amp_truth, "pull_ensemble": pull_ens,
          "coverage_ensemble": float(np.mean(np.abs(pull_ens) <= 1)),
          "coverage_member": float(np.mean(np.abs(pull_mem) <= 1)),
          "pull_ensemble_mean": float(np.mean(pull_ens)), "pull_ensemble_std": float(np.std(pull_ens, ddof=1))
          if pull_ens.size > 1 else 0.0,
          "pull_member_std": float(np.std(pull_mem))}


def summary(result: dict) -> dict:
  """Median and 16/84% over regions of the per-region amplifications (and the calibration numbers)."""
  out = {}
  for k, v in result.items():
    if k.startswith("amplification"):
      q = np.percentile(np.asarray(v, np.float64), [16, 50, 84])
      out[k] = {"p16": float(q[0]), "median": float(q[1]), "p84": float(q[2])}
  for k in ("coverage_ensemble", "coverage_member", "pull_ensemble_mean", "pull_ensemble_std", "pull_member_std",
            "n_members", "n_gen", "n_train"):
    if k in result:
      out[k] = result[k]
  return out


def to_json(result: dict) -> dict:
  """Arrays -> lists, inf -> None."""
  def conv(v):
    if isinstance(v, np.ndarray):
      return [None if not np.isfinite(x) else float(x) for x in v.ravel()]
    return v
  return {k: conv(v) for k, v in result.items()}
