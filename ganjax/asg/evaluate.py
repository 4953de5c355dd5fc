"""Test-set evaluation of the selected analysis-specific GANs (paper Secs. 5.1-5.2, Figs. 5-10).

The test split is used for nothing else. Per selected model:
  - M_ll mean and width (all generated events, and inside the window that defines the data);
  - KS sum against the test set at matched sample size, next to the floor: the KS sum between the two halves
    of the test set (what finite real data allow);
  - KS of every feature and derived quantity, correlation matrices (Fig. 9), zero fractions of spike features;
and over the members, the spread with the regression terms on and off.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ganjax.asg.data import derived_values
from ganjax.asg.metrics import ks_scores, ks_statistic, mass_peak_comparison


def summary(values) -> dict:
  """mean, std (ddof 1), min, max of a list of numbers."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "min": float(v.min()), "max": float(v.max())}


def compared_quantities(module, config) -> tuple[str, ...]:
  """Every feature, then every derived quantity that is not a feature."""
  feats = tuple(config.model.features)
  return feats + tuple(n for n in module.DERIVED if n not in feats)


def test_halves(test: Mapping[str, np.ndarray], seed: int) -> tuple[dict, dict]:
  """The test set split at random into two halves (the floor compares them)."""
  n_test = len(next(iter(test.values())))
  perm = np.random.default_rng(seed).permutation(n_test)
  return ({k: v[perm[: n_test // 2]] for k, v in test.items()},
          {k: v[perm[n_test // 2:]] for k, v in test.items()})


def floor(module, config, train: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]
          ) -> tuple[dict, tuple[dict, dict]]:
  """The KS sums that real data reach: test half vs test half, and train vs test; returns (floor,
  selection quantities of the two halves)."""
  sel = tuple(config.selection.quantities)
  half_a, half_b = test_halves(test, config.seed + 2)
  qa, qb = derived_values(module.DERIVED, half_a, sel), derived_values(module.DERIVED, half_b, sel)
  out = {"ks_halves": {n: ks_statistic(qa[n], qb[n]) for n in sel}}
  out["ks_sum_halves"] = float(sum(out["ks_halves"].values()))
  out["n_half"] = int(len(next(iter(test.values()))) // 2)
  out["ks_sum_train_vs_test"] = float(ks_scores(derived_values(module.DERIVED, train, sel),
                                                derived_values(module.DERIVED, test, sel), sel).sum())
  return out, (qa, qb)


def correlations(g: Mapping[str, np.ndarray], t: Mapping[str, np.ndarray], feats) -> tuple[dict, tuple]:
  """Fig. 9: Pearson (as the paper) and Spearman rank correlations of the features, generated vs test;
  returns the off-diagonal max / mean |differences| and the Spearman matrices (test, generated). The rank
  version is the one plotted: a few generated events far in the iso / dxy tails dominate Pearson."""
  from scipy.stats import spearmanr

  feats = list(feats)
  off_diag = ~np.eye(len(feats), dtype=bool)
  out, mats = {}, {}
  for kind, fn in (("pearson", lambda x: np.corrcoef(x)), ("spearman", lambda x: spearmanr(x, axis=1)[0])):
    c_g, c_t = fn(np.stack([g[n] for n in feats])), fn(np.stack([t[n] for n in feats]))
    out[f"corr_{kind}_max_abs_diff"] = float(np.nanmax(np.abs(c_g - c_t)[off_diag]))
    out[f"corr_{kind}_mean_abs_diff"] = float(np.nanmean(np.abs(c_g - c_t)[off_diag]))
    mats[kind] = (c_t, c_g)
  return out, mats["spearman"]


def peak_window(config) -> tuple[float, float]:
  """The mass window of the data (config.data.mll_min, mll_max), applied to both sides of the comparison."""
  return float(config.data.mll_min), float(config.data.mll_max)


def peak_figures(config, m_gen: np.ndarray, m_test: np.ndarray) -> dict:
  """The mass peak (ganjax.asg.metrics.mass_peak_comparison) of the generated events inside the data's window
  against the test set: mean, RMS, Gaussian core, fraction near the peak, KS and its p-value with all generated
  events; and the KS at the test set's size (mean KS statistic and p-value over chunks of generated events of
  that size)."""
  from scipy import stats

  kw = {"window": peak_window(config), "core": tuple(config.eval.peak_core), "peak": float(config.eval.peak_center)}
  out = mass_peak_comparison(m_gen, m_test, **kw)
  lo, hi = kw["window"]
  g = np.asarray(m_gen)[(np.asarray(m_gen) > lo) & (np.asarray(m_gen) < hi)]
  t = np.asarray(m_test)[(np.asarray(m_test) > lo) & (np.asarray(m_test) < hi)]
  n_chunks = min(10, len(g) // len(t))
  res = [stats.ks_2samp(g[i * len(t):(i + 1) * len(t)], t) for i in range(n_chunks)]
  out["ks_size_matched"] = float(np.mean([r.statistic for r in res])) if res else float("nan")
  out["ks_pvalue_size_matched"] = float(np.median([r.pvalue for r in res])) if res else float("nan")
  return out


def evaluate(module, config, gen: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray],
             floor_halves: tuple[dict, dict]) -> tuple[dict, tuple]:
  """Compare one generated sample with the held-out test set; returns (metrics, Spearman matrices)."""
  sel = tuple(config.selection.quantities)
  compare = compared_quantities(module, config)
  g = derived_values(module.DERIVED, gen, compare)
  t = derived_values(module.DERIVED, test, compare)
  m_g, m_t = g["mll"], t["mll"]
  lo, hi = peak_window(config)
  win = (m_g > lo) & (m_g < hi)
  out = {
      "mll_mean": float(m_g.mean()), "mll_width": float(m_g.std()),
      "mll_mean_in_window": float(m_g[win].mean()), "mll_width_in_window": float(m_g[win].std()),
      "fraction_in_window": float(win.mean()),
      "mll_mean_rel_dev": float(m_g.mean() / m_t.mean() - 1),
      "mll_width_rel_dev": float(m_g.std() / m_t.std() - 1),
      "mll_mean_rel_dev_in_window": float(m_g[win].mean() / m_t.mean() - 1),
      "mll_width_rel_dev_in_window": float(m_g[win].std() / m_t.std() - 1),
      "ks_test": {n: ks_statistic(g[n], t[n]) for n in compare},
  }
  out["ks_sum_test_large_sample"] = float(sum(out["ks_test"][n] for n in sel))
  # size-matched: generated chunks of |half A| events vs half B, as the floor compares half A with B
  a, b = floor_halves
  n_a = len(next(iter(a.values())))
  n_chunks = min(10, len(m_g) // n_a)
  sums = [ks_scores({k: v[i * n_a:(i + 1) * n_a] for k, v in g.items()}, b, sel).sum() for i in range(n_chunks)]
  out["ks_sum_test_size_matched"] = float(np.mean(sums))
  out["ks_sum_test_size_matched_std"] = float(np.std(sums))
  if config.eval.peak:
    out["peak"] = peak_figures(config, g[config.eval.peak], t[config.eval.peak])
  for n in config.eval.spike_features:
    if n in gen:  # the sharp edge (Sec. 5.2): exact zeros, unphysical negatives, KS after clipping at 0
      out[f"{n}_zero_fraction"] = float(np.mean(gen[n] == 0))
      out[f"{n}_negative_fraction"] = float(np.mean(gen[n] < 0))
      out[f"{n}_ks_clipped_at_0"] = ks_statistic(np.maximum(gen[n], 0.0), test[n])
      out[f"{n}_zero_fraction_test"] = float(np.mean(test[n] == 0))
  corr, mats = correlations(g, t, config.model.features)
  out.update(corr)
  out["corr_spearman_test"] = mats[0]
  out["corr_spearman_gen"] = mats[1]
  return out, mats


SPREAD_KEYS = ("mll_mean_rel_dev", "mll_width_rel_dev", "mll_mean_rel_dev_in_window", "mll_width_rel_dev_in_window",
               "fraction_in_window", "ks_sum_test_size_matched", "ks_sum_test_large_sample",
               "corr_pearson_max_abs_diff", "corr_spearman_max_abs_diff", "corr_spearman_mean_abs_diff")


def spread(members: list[dict], reg_on: np.ndarray) -> dict:
  """Mean, std, min, max over the members of SPREAD_KEYS, separately for Eq. 2 on and off."""
  on = [i for i in range(len(members)) if reg_on[i]] or list(range(len(members)))
  off = [i for i in range(len(members)) if not reg_on[i]]
  return {grp: {k: summary([members[i][k] for i in idx]) for k in SPREAD_KEYS}
          for grp, idx in (("regression_on", on), ("regression_off", off)) if idx}
