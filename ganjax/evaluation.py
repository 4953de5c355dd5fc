"""One evaluation table for every method: a generated sample against the truth, each statistic with its null.

  from ganjax import evaluation
  table = evaluation.summary(generated, truth, columns, truth_null=more_truth, seed=0)
  print(evaluation.format_table(table))

Statistics (definitions and citations in docs/validation.md; implementations in ganjax/metrics/):
  classifier AUC, calibrated JSD and the weight tails (CaloChallenge 2410.21611; Das et al. 2305.16774),
  FPD (extrapolated to N -> inf) and KPD (Kansal et al. 2211.10295), the mean per-feature 1-Wasserstein
  distance (features standardised by the truth's mean and std). Every statistic is computed on
  (generated, truth) and on null pairs (truth, truth) of the same sizes, drawn without overlap from the truth
  (and `truth_null`, an independent truth sample, when given); when the pool is too small for the two
  sizes, both are scaled down by the same factor (reported as null_sizes; the size-dependent statistics,
  W1 and the classifier's, then have a slightly wider null: conservative).
Row: statistic, value, error, null mean, null std, compatible = |value - null mean| <= level * sigma with
sigma = sqrt(null std^2 + error^2) (level 2 by default). FPD, KPD, W1: the null mean is the mean over
n_null null pairs and the null std the larger of their spread and their RMS bootstrap error (the pairs are
drawn from one pool, so their spread alone under-states the null's width); the classifier (one null
training): the Mann-Whitney std for the AUC, the test-set bootstrap std otherwise.
Generated weights (DCTR) weigh the classifier's training and scores, FPD's moments, KPD's pairs and W1.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from ganjax.metrics import distances, two_sample

ArrayOrTable = np.ndarray | Mapping[str, np.ndarray]


def _matrix(x: ArrayOrTable, columns: Sequence[str] | None, name: str) -> np.ndarray:
  """x_NxD from an array or a dict of 1D columns (ValueError naming the sample and column)."""
  if isinstance(x, Mapping):
    if columns is None:
      raise ValueError(f"{name}: a table needs `columns`")
    missing = [c for c in columns if c not in x]
    if missing:
      raise ValueError(f"{name}: missing columns {missing}")
    x = np.stack([np.asarray(x[c], np.float64) for c in columns], 1)
  x = np.asarray(x, np.float64)
  if x.ndim == 1:
    x = x[:, None]
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name}: {int(np.sum(~np.isfinite(x).all(1)))} rows hold NaN or inf")
  return x


def _null_pairs(pool: np.ndarray, n_t: int, n_g: int, n_pairs: int, rng) -> tuple[list, tuple[int, int]]:
  """n_pairs disjoint (A, B) index pairs of sizes (n_t, n_g) from the pool, scaled down if it is too small."""
  f = min(1.0, len(pool) / float(n_t + n_g))
  a, b = max(2, int(n_t * f)), max(2, int(n_g * f))
  pairs = []
  for _ in range(n_pairs):
    perm = rng.permutation(len(pool))
    pairs.append((perm[:a], perm[a:a + b]))
  return pairs, (a, b)


def _row(name: str, value: float, error: float, null_vals: Sequence[float], null_std: float,
         level: float, note: str = "") -> dict:
  null_vals = np.asarray(null_vals, np.float64)
  mean = float(null_vals.mean())
  sigma = float(np.hypot(null_std, error))
  return {"statistic": name, "value": float(value), "error": float(error), "null_mean": mean,
          "null_std": float(null_std), "n_null": int(null_vals.size), "sigma": sigma,
          "compatible": bool(abs(value - mean) <= level * sigma), "note": note}


def summary(generated: ArrayOrTable, truth: ArrayOrTable, columns: Sequence[str] | None = None, *,
            truth_null: ArrayOrTable | None = None, generated_weights: np.ndarray | None = None,
            n_null: int = 3, level: float = 2.0, classifier: bool = True, classifier_config=None,
            kpd_batch_size: int = 2000, max_events: int = 0, baseline: ArrayOrTable | None = None,
            seed: int = 0) -> dict:
  """The evaluation table (JSON-ready): {"rows": [...], "level", sizes, "per_feature_w1", "weights", ...}.

  columns: the features (dict inputs); for the main job all 15 observables, conditioning included.
  max_events: > 0 caps each sample (random subset) to bound the cost.
  baseline: optional reference sample that the generator should beat (the main job: MC CR vs MC SR); FPD,
  KPD and W1 of baseline vs truth are added to those rows as `baseline` (no classifier, no separate null).
  """
  t0 = time.time()
  rng = np.random.default_rng(seed)
  xg = _matrix(generated, columns, "generated")
  xt = _matrix(truth, columns, "truth")
  wg = None if generated_weights is None else np.asarray(generated_weights, np.float64)
  if wg is not None and (wg.shape != (len(xg),) or not np.all(np.isfinite(wg)) or np.any(wg < 0)):
    raise ValueError(f"generated_weights: need {len(xg)} finite non-negative values")
  if xg.shape[1] != xt.shape[1]:
    raise ValueError(f"generated has {xg.shape[1]} features, truth {xt.shape[1]}")
  pool = xt if truth_null is None else np.concatenate([xt, _matrix(truth_null, columns, "truth_null")])
  if max_events:
    keep_g = rng.permutation(len(xg))[:max_events]
    xg, wg = xg[keep_g], (None if wg is None else wg[keep_g])
    xt = xt[rng.permutation(len(xt))[:max_events]]
    pool = pool[rng.permutation(len(pool))[:2 * max_events]]
  xb = None if baseline is None else _matrix(baseline, columns, "baseline")
  if xb is not None and max_events:
    xb = xb[rng.permutation(len(xb))[:max_events]]
  mean, std = distances.standardizer(xt)
  z = lambda x: (x - mean) / std
  xg, xt, pool = z(xg), z(xt), z(pool)
  pairs, null_sizes = _null_pairs(pool, len(xt), len(xg), n_null, rng)

  def stats(a, b, wb, s):
    return {"fpd": distances.fpd(a, b, None, wb, seed=s, n_boot=30),
            "kpd": distances.kpd(a, b, None, wb, batch_size=kpd_batch_size, seed=s),
            "w1": distances.wasserstein_features(a, b, None, wb, n_boot=10, seed=s)}

  main = stats(xt, xg, wg, seed)
  base = None if xb is None else stats(xt, z(xb), None, seed)
  nulls = [stats(pool[ia], pool[ib], None, seed + 1 + i) for i, (ia, ib) in enumerate(pairs)]
  rows = []
  timing = {"distances": time.time() - t0}
  if classifier:
    t1 = time.time()
    cfg = classifier_config or two_sample.default_config(xt.shape[1], seed)
    c = two_sample.classifier_test(xt, xg, wg, config=cfg, seed=seed)
    ia, ib = pairs[0]
    c0 = two_sample.classifier_test(pool[ia], pool[ib], config=cfg, seed=seed + 1)
    rows.append(_row("classifier AUC", c["auc"], c["auc_error"], [c0["auc"]], c["auc_null_std"], level,
                     "null std: Mann-Whitney"))
    rows.append(_row("classifier JSD (ln2 - BCE, nats)", c["jsd"], c["jsd_error"], [c0["jsd"]],
                     c0["jsd_error"], level, "Platt-calibrated, cross-fitted"))
    rows.append(_row("fraction of w=D/(1-D) outside [1/2, 2]", c["weights"]["fraction_outside_half_to_2"],
                     c["weights_error"], [c0["weights"]["fraction_outside_half_to_2"]], c0["weights_error"], level))
    timing["classifier"] = time.time() - t1
  labels = {"fpd": "FPD (N -> inf)", "kpd": "KPD (MMD^2, cubic kernel)", "w1": "mean W1 per feature"}
  for k, label in labels.items():
    vals = np.array([n[k]["value"] for n in nulls])
    rms_err = float(np.sqrt(np.mean([n[k]["error"] ** 2 for n in nulls])))
    spread = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    rows.append(_row(label, main[k]["value"], main[k]["error"], vals, max(spread, rms_err), level))
    if base is not None:
      rows[-1]["baseline"], rows[-1]["baseline_error"] = base[k]["value"], base[k]["error"]
  w1_null = np.array([n["w1"]["per_feature"] for n in nulls])
  out = {"rows": rows, "level": level,
         "compatible_rule": f"|value - null mean| <= {level:g} sqrt(null std^2 + error^2)",
         "n_generated": int(len(xg)), "n_truth": int(len(xt)), "null_sizes": list(null_sizes),
         "weighted": wg is not None, "features": list(columns) if columns is not None else xt.shape[1],
         "per_feature_w1": {"value": main["w1"]["per_feature"], "error": main["w1"]["per_feature_error"],
                            "null_mean": w1_null.mean(0).tolist(),
                            "null_std": (w1_null.std(0, ddof=1) if n_null > 1 else np.zeros(w1_null.shape[1])).tolist()},
         "fpd_at_sizes": {"sizes": main["fpd"]["sizes"], "fd": main["fpd"]["fd_at_sizes"]}}
  if base is not None:
    out["per_feature_w1"]["baseline"] = base["w1"]["per_feature"]
    out["n_baseline"] = int(len(xb))
  if classifier:
    out["classifier"] = {"weights": c["weights"], "null_weights": c0["weights"], "fit": c["fit"],
                         "null_fit": c0["fit"], "platt": c["platt"]}
  timing["total"] = time.time() - t0
  out["seconds"] = timing
  return out


def format_table(result: dict, title: str = "Generated vs truth") -> str:
  """Markdown table of a summary: statistic | value +- error | null mean +- std | compatible?"""
  lines = [f"### {title}", "",
           f"{result['n_generated']} generated vs {result['n_truth']} true events; nulls: truth vs truth of "
           f"sizes {result['null_sizes'][0]} and {result['null_sizes'][1]}"
           f"{'; generated events weighted' if result['weighted'] else ''}; compatible: "
           f"{result['compatible_rule']}.", "",
           "| statistic | value | null (truth vs truth) | compatible? |", "|---|---|---|---|"]
  has_base = any("baseline" in r for r in result["rows"])
  if has_base:
    lines[-2:] = ["| statistic | value | null (truth vs truth) | compatible? | baseline |", "|---|---|---|---|---|"]
  for r in result["rows"]:
    base = (f" {r['baseline']:.4g} +- {r['baseline_error']:.2g} |" if "baseline" in r else " |") if has_base else ""
    lines.append(f"| {r['statistic']} | {r['value']:.4g} +- {r['error']:.2g} | {r['null_mean']:.4g} +- "
                 f"{r['null_std']:.2g} | {'yes' if r['compatible'] else 'NO'} |{base}")
  return "\n".join(lines) + "\n"


def format_report(result: dict, title: str = "Generated vs truth") -> str:
  """Markdown of a summary table, or of a dict of them (named sections) and truthless amplification."""
  if "rows" in result:
    return format_table(result, title)
  parts = []
  for key, sub in result.items():
    if isinstance(sub, dict) and "rows" in sub:
      parts.append(format_table(sub, f"{title}: {key}"))
    elif key == "truthless_amplification" and sub:
      parts.append(format_truthless(sub))
  return "\n".join(parts)


def write_report(result: dict, path: str, title: str = "Generated vs truth") -> None:
  """format_report(result) as markdown at `path` (atomic)."""
  import os
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(format_report(result, title))
  os.replace(tmp, path)


# ----------------------------------------------------------------------------- per-method glue


def ganplify(config, toy, binnings, counts_B_MxK, generate, g_params_M, n_gen: int, n_events: int = 5000,
             seed: int = 0) -> dict:
  """The GANplifying toys: the summary table of member 0's events against the toy (n_events each, an
  independent truth sample for the nulls), and per binning the averaging amplification without truth of the
  ensemble (counts_B_MxK: each member's n_gen events per quantile bin) with its truth-based check (every
  exact quantile bin holds 1/n_bins of the truth). n_events = 0: no summary table."""
  import jax
  from ganjax.metrics import truthless_amplification as ta
  out = {"truthless_amplification": {}}
  if n_events:
    key = jax.random.PRNGKey(seed + 20_000)
    p0 = jax.tree.map(lambda a: a[0], g_params_M)
    x_gen = np.asarray(jax.jit(generate, static_argnums=2)(p0, jax.random.fold_in(key, 0), n_events))
    x_truth = np.asarray(toy.sample(jax.random.fold_in(key, 1), n_events))
    x_more = np.asarray(toy.sample(jax.random.fold_in(key, 2), 2 * n_events))
    out["summary"] = summary(x_gen, x_truth, truth_null=x_more, seed=seed)
  for b, counts in zip(binnings, counts_B_MxK):
    counts = np.asarray(counts)
    if counts.shape[0] < 2:
      continue
    r = ta.truth_check(counts, n_gen, np.full(b.n_bins, 1.0 / b.n_bins), int(config.data.n_train))
    out["truthless_amplification"][b.name] = {"summary": ta.summary(r), "per_region": ta.to_json(r)}
  return out


def format_truthless(result: dict, title: str = "Amplification without truth (averaging)") -> str:
  """Markdown: per binning the median [16%, 84%] over regions of the truthless and truth-based
  amplification and the calibration (coverage of +-1 sigma, pull std)."""
  lines = [f"### {title}", "",
           "| binning | G member (truthless) | G member (truth) | G ensemble mean (truthless) | G model limit | "
           "coverage ens. / member | pull std ens. |", "|---|---|---|---|---|---|---|"]
  fmt = lambda d: f"{d['median']:.3g} [{d['p16']:.3g}, {d['p84']:.3g}]"
  for name, r in result.items():
    s = r["summary"]
    lines.append(f"| {name} | {fmt(s['amplification_member'])} | {fmt(s['amplification_truth_member'])} | "
                 f"{fmt(s['amplification_ensemble'])} | {fmt(s['amplification_model_limit'])} | "
                 f"{s['coverage_ensemble']:.2f} / {s['coverage_member']:.2f} | {s['pull_ensemble_std']:.2f} |")
  return "\n".join(lines) + "\n"


def hgg(config, setup, params_g, ganed: Mapping[str, np.ndarray], n_boot: int = 200) -> dict:
  """The main job: the event-bootstrap error of the test -2lnL at S = metric.n_samples (the S generations of
  an event resampled with it; ganjax/metrics/event_bootstrap.py) and the summary table of the GANed CR
  against the MC SR test set on the 15 observables of the validation (conditioning included; the SR
  training events join the null pool; the MC CR as the baseline the GAN must beat), and with DCTR weights
  when the GANed CR carries them."""
  import jax
  import jax.numpy as jnp
  from ganjax.hgg import metric
  from ganjax.hgg.train import run_keys
  from ganjax.metrics import event_bootstrap
  from ganjax.validation import HGG_OBSERVABLES

  t0 = time.time()
  prep, n_bins, s_gen = setup.prep, int(config.metric.n_bins), int(config.metric.n_samples)
  index_fn = jax.jit(metric.make_index_fn(setup.generator, config.model.latent_dim, prep.gen_names,
                                          prep.metric_dims, prep.gen_qt, prep.metric_qt, n_bins,
                                          config.metric.chunk, prep.relative, setup.mesh))
  test_ev = setup.test_set[0]
  k_test = run_keys(jax.random.PRNGKey(config.seed))[3]  # member 0's test key: the test -2lnL's latents
  gen_idx = np.asarray(index_fn(params_g, k_test, test_ev, jnp.arange(s_gen)))[:, :test_ev.n_events].T
  real_idx = metric.real_bin_index(prep.test, prep.metric_dims, prep.metric_qt, n_bins)
  boot = event_bootstrap.neg2lnl(real_idx, gen_idx, n_bins ** len(prep.metric_dims), n_boot=n_boot,
                                 seed=int(config.seed))
  t1 = time.time()
  view = {c: np.asarray(ganed.get("gan_" + c, ganed[c])) for c in HGG_OBSERVABLES}
  out = {"test_nll_bootstrap": {"S": s_gen, **boot, "seconds": t1 - t0},
         "summary": summary(view, prep.test, HGG_OBSERVABLES, truth_null=prep.train, baseline=prep.cr,
                            seed=int(config.seed))}
  if "dctr_weight" in ganed:
    out["summary_dctr_weighted"] = summary(view, prep.test, HGG_OBSERVABLES, truth_null=prep.train,
                                           generated_weights=np.asarray(ganed["dctr_weight"]),
                                           seed=int(config.seed))
  out["seconds"] = time.time() - t0
  return out


class WithinSigmaSelection:
  """Best-model selection that treats differences within n_sigma event-bootstrap errors as ties, keeping
  the earlier model: the driver's `select_margin` (ganjax/engine/driver.py), with which a new evaluation
  replaces a member's kept one only when
      -2lnL(new) < -2lnL(kept) - n_sigma * sigma(new - kept),
  sigma from the paired event bootstrap of both generators on the same validation events
  (event_bootstrap.difference). bins_fn(models_M, step_M) -> [M, N, S] gives the metric bins of each member's
  generated objects on the N validation events, with the latents its evaluation at step_M used; the kept
  models' bins are recomputed from the kept models and their steps (both in the checkpoints), so a resumed
  run computes the same margins as an uninterrupted one. The bins of the last call's models are reused when
  the kept models are those, kept at that step (an optimisation only: the same bins)."""

  def __init__(self, real_idx_N, n_bins_total: int, bins_fn, n_sigma: float = 1.0, n_boot: int = 100,
               seed: int = 0):
    self.real, self.n_bins, self.n_sigma, self.n_boot, self.seed = (np.asarray(real_idx_N), int(n_bins_total),
                                                                    float(n_sigma), int(n_boot), int(seed))
    self.bins_fn, self._last = bins_fn, None  # (step, models, bins [M, N, S]) of the last call

  def __call__(self, kept_models, kept_step_M, models_now, step: int) -> np.ndarray:
    """n_sigma * sigma(-2lnL(now) - -2lnL(kept)) per member [M]; 0 where kept_step_M < 0 (nothing kept), NaN
    where a generator's bins fall outside the metric's (no replacement then)."""
    import jax
    from ganjax.metrics import event_bootstrap
    kept_step_M = np.asarray(kept_step_M, np.int64)
    now = np.asarray(self.bins_fn(models_now, np.full(len(kept_step_M), step, np.int64)))
    need = kept_step_M >= 0
    if not need.any():
      kept = None
    elif (self._last is not None and np.all(kept_step_M[need] == self._last[0])
          and all(np.array_equal(np.asarray(a)[need], b[need])
                  for a, b in zip(jax.tree.leaves(kept_models), self._last[1]))):
      kept = self._last[2]  # the kept models are those evaluated at the last call, with its latents
    else:
      kept = np.asarray(self.bins_fn(kept_models, np.where(need, kept_step_M, 0)))
    self._last = (int(step), [np.asarray(a) for a in jax.tree.leaves(models_now)], now)
    margin = np.zeros(len(kept_step_M))
    inside = lambda b: b.size > 0 and b.min() >= 0 and b.max() < self.n_bins
    for j in np.flatnonzero(need):  # members: a handful
      if not (inside(now[j]) and inside(kept[j])):
        margin[j] = np.nan
        continue
      margin[j] = self.n_sigma * event_bootstrap.difference(self.real, now[j], kept[j], self.n_bins,
                                                            n_boot=self.n_boot, seed=self.seed)["error"]
    return margin
