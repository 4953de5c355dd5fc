"""Analysis-specific GAN on real CMS Z -> mu mu data: train, select by KS (Sec. 5), evaluate on held-out data.

  python experiments/zmumu.py --config=configs/zmumu.py:reduced --workdir=/tmp/zmumu_reduced

One vmapped program trains config.n_members generators (the last config.regression_off_members with
c1 = c2 = 0, i.e. Fig. 6 vs Fig. 5). Every snapshot_every steps the generator is snapshotted; at segment
ends every snapshot generates as many events as the validation set and is scored by the sum of KS
statistics of config.selection (M_ll, dphi [, iso1]) against it; each member keeps its best snapshot.
The selected models are then evaluated on the test set, which was used for nothing else:
  - M_ll mean and width (all generated events, and inside the 60-120 GeV window that defines the data);
  - KS sum against the test set at matched sample size next to the KS sum between the two halves of the
    test set (the floor that finite real data allow);
  - KS of every feature and derived quantity, correlation matrices (Fig. 9), iso zero fractions;
  - the spread over members, separately for regression terms on and off.
Writes metrics.json, history.json, generated.parquet (the selected model) and the figures.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import io
from ganjax.progress import Progress
from ganjax.train import asg


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def _quantities(module, features, names):
  return asg.derived_values(module.DERIVED, features, names)


def _summary(values):
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
          "min": float(v.min()), "max": float(v.max())}


def evaluate(module, config, gen, test, floor_halves):
  """Compare one generated sample with the held-out test set."""
  sel = tuple(config.selection)
  derived_names = tuple(module.DERIVED)
  compare = tuple(config.features) + tuple(n for n in derived_names if n not in config.features)
  g = _quantities(module, gen, compare)
  t = _quantities(module, test, compare)
  m_g, m_t = g["mll"], t["mll"]
  win = module.in_window(gen)
  out = {
      "mll_mean": float(m_g.mean()), "mll_width": float(m_g.std()),
      "mll_mean_in_window": float(m_g[win].mean()), "mll_width_in_window": float(m_g[win].std()),
      "fraction_in_window": float(win.mean()),
      "mll_mean_rel_dev": float(m_g.mean() / m_t.mean() - 1),
      "mll_width_rel_dev": float(m_g.std() / m_t.std() - 1),
      "mll_mean_rel_dev_in_window": float(m_g[win].mean() / m_t.mean() - 1),
      "mll_width_rel_dev_in_window": float(m_g[win].std() / m_t.std() - 1),
      "ks_test": {n: asg.ks_statistic(g[n], t[n]) for n in compare},
  }
  out["ks_sum_test_large_sample"] = float(sum(out["ks_test"][n] for n in sel))
  # size-matched: generated chunks of |half A| events vs half B, as the floor compares half A with B
  a, b = floor_halves
  n_a = len(next(iter(a.values())))
  n_chunks = min(10, len(m_g) // n_a)
  sums = []
  for i in range(n_chunks):
    chunk = {k: v[i * n_a:(i + 1) * n_a] for k, v in g.items()}
    sums.append(asg.ks_scores(chunk, b, sel).sum())
  out["ks_sum_test_size_matched"] = float(np.mean(sums))
  out["ks_sum_test_size_matched_std"] = float(np.std(sums))
  for n in ("iso1", "iso2"):
    if n in gen:  # the sharp edge: exact zeros, unphysical negatives, KS after clipping at 0
      out[f"{n}_zero_fraction"] = float(np.mean(gen[n] == 0))
      out[f"{n}_negative_fraction"] = float(np.mean(gen[n] < 0))
      out[f"{n}_ks_clipped_at_0"] = asg.ks_statistic(np.maximum(gen[n], 0.0), test[n])
      out[f"{n}_zero_fraction_test"] = float(np.mean(test[n] == 0))
  # Fig. 9: Pearson (as the paper) and Spearman rank correlations; the rank version is the one plotted,
  # because a few generated events far in the iso / dxy tails dominate Pearson coefficients.
  from scipy.stats import spearmanr

  feats = list(config.features)
  off_diag = ~np.eye(len(feats), dtype=bool)
  mats = {}
  for kind, fn in (("pearson", lambda x: np.corrcoef(x)), ("spearman", lambda x: spearmanr(x, axis=1)[0])):
    c_g, c_t = fn(np.stack([g[n] for n in feats])), fn(np.stack([t[n] for n in feats]))
    out[f"corr_{kind}_max_abs_diff"] = float(np.nanmax(np.abs(c_g - c_t)[off_diag]))
    out[f"corr_{kind}_mean_abs_diff"] = float(np.nanmean(np.abs(c_g - c_t)[off_diag]))
    mats[kind] = (c_t, c_g)
  out["corr_spearman_test"] = mats["spearman"][0]
  out["corr_spearman_gen"] = mats["spearman"][1]
  return out, mats["spearman"]


def run(config, workdir: str, plots: bool = True) -> dict:
  t_start = time.time()
  module = asg.analysis_module(config.analysis)
  table = module.load(config)
  split = asg.split_table(table, config.val_frac, config.test_frac, config.seed)
  data = asg.make_data(config, split.train, module.DERIVED)
  trainer = asg.make_train(config, module.DERIVED)
  sel = tuple(config.selection)
  val_q = _quantities(module, split.val, sel)
  train_q = _quantities(module, split.train, sel)
  n_val = len(next(iter(split.val.values())))

  n_mem, n_off = config.n_members, config.regression_off_members
  reg_on = np.arange(n_mem) < n_mem - n_off
  c1 = np.stack([np.asarray([config.regression[r][0] for r in config.regression], np.float32)] * n_mem)
  c2 = np.stack([np.asarray([config.regression[r][1] for r in config.regression], np.float32)] * n_mem)
  c1[~reg_on] = 0.0
  c2[~reg_on] = 0.0
  keys = jax.random.split(jax.random.PRNGKey(config.seed), n_mem)
  state = jax.jit(jax.vmap(trainer.init))(keys, jnp.asarray(c1), jnp.asarray(c2))
  segment = jax.jit(jax.vmap(trainer.train_segment, in_axes=(0, None)))

  def snapshot_quantities(g_params, key):
    f = trainer.generate(g_params, data, key, n_val)
    return {n: f[n] if n in f else module.DERIVED[n](f) for n in sel}

  gen_snaps = jax.jit(jax.vmap(jax.vmap(snapshot_quantities), in_axes=(0, None)))

  history = {"step": [], "ks_sum_val": [], "neg2lnl_val": []}
  best = {"ks": [np.full(n_mem, np.inf), np.zeros(n_mem, int), None],     # score, step, params
          "neg2lnl": [np.full(n_mem, np.inf), np.zeros(n_mem, int), None]}
  n_seg = config.n_steps // config.segment_steps
  t_train = time.time()
  bar = Progress(n_seg * config.segment_steps, f"zmumu x{n_mem}", unit="step")
  for s in range(n_seg):
    state, snaps, hist = segment(state, data)
    n_snap = config.segment_steps // config.snapshot_every
    snap_keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed + 1), s), n_snap)
    q = _np(gen_snaps(snaps, snap_keys))  # {selection quantity: [M, S, n_val]}
    scores = np.asarray([[asg.ks_scores({k: v[m, j] for k, v in q.items()}, val_q, sel).sum()
                          for j in range(n_snap)] for m in range(n_mem)])
    nll = np.asarray([[asg.neg2lnl({k: v[m, j] for k, v in q.items()}, val_q, sel, train_q)
                       for j in range(n_snap)] for m in range(n_mem)])
    steps = (s * n_snap + np.arange(1, n_snap + 1)) * config.snapshot_every
    history["step"] += steps.tolist()
    history["ks_sum_val"] += scores.T.tolist()
    for k, v in _np(hist).items():
      history.setdefault(k, []).extend(v.T.tolist())
    history["neg2lnl_val"] += nll.T.tolist()
    for metric, sc in (("ks", scores), ("neg2lnl", nll)):
      b = best[metric]
      j_best = sc.argmin(1)
      improved = sc[np.arange(n_mem), j_best] < b[0]
      snap_best = _np(jax.tree.map(lambda a: a[np.arange(n_mem), j_best], snaps))
      b[2] = snap_best if b[2] is None else jax.tree.map(
          lambda old, new: np.where(improved.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), b[2], snap_best)
      b[0] = np.where(improved, sc[np.arange(n_mem), j_best], b[0])
      b[1] = np.where(improved, steps[j_best], b[1])
    best_score, best_step, best_params = best["ks"]
    bar.update(config.segment_steps, best_val_ks_sum=np.round(best_score, 4).tolist(),
               at_step=best_step.tolist())
  bar.close()
  jax.block_until_ready(state)
  train_seconds = time.time() - t_train

  # evaluation on the test set
  test = split.test
  n_test = len(next(iter(test.values())))
  rng = np.random.default_rng(config.seed + 2)
  perm = rng.permutation(n_test)
  half_a = {k: v[perm[: n_test // 2]] for k, v in test.items()}
  half_b = {k: v[perm[n_test // 2:]] for k, v in test.items()}
  qa, qb = _quantities(module, half_a, sel), _quantities(module, half_b, sel)
  floor = {"ks_halves": {n: asg.ks_statistic(qa[n], qb[n]) for n in sel}}
  floor["ks_sum_halves"] = float(sum(floor["ks_halves"].values()))
  floor["n_half"] = int(n_test // 2)
  train_vs_test = _quantities(module, split.train, sel)
  floor["ks_sum_train_vs_test"] = float(asg.ks_scores(train_vs_test, _quantities(module, test, sel), sel).sum())

  gen_final = jax.jit(jax.vmap(lambda p, k: trainer.generate(p, data, k, config.n_generate)))
  gen_all = _np(gen_final(jax.tree.map(jnp.asarray, best_params),
                          jax.random.split(jax.random.PRNGKey(config.seed + 3), n_mem)))
  members, corr = [], []
  for m in range(n_mem):
    gm = {k: v[m] for k, v in gen_all.items()}
    ev, cm = evaluate(module, config, gm, test, (qa, qb))
    ev.update({"regression_terms": bool(reg_on[m]), "selected_step": int(best_step[m]),
               "ks_sum_val": float(best_score[m])})
    members.append(ev)
    corr.append(cm)
  # the main job's -2lnL as the selection metric instead of the KS sum (Part 4 of the issue)
  gen_nll = _np(gen_final(jax.tree.map(jnp.asarray, best["neg2lnl"][2]),
                          jax.random.split(jax.random.PRNGKey(config.seed + 3), n_mem)))
  ks_all = np.asarray(history["ks_sum_val"]).ravel()
  nll_all = np.asarray(history["neg2lnl_val"]).ravel()
  from scipy.stats import spearmanr
  selection_compare = {
      "spearman_ks_sum_vs_neg2lnl_over_snapshots": float(spearmanr(ks_all, nll_all)[0]),
      "members": [{"step_by_ks": int(best_step[m]), "step_by_neg2lnl": int(best["neg2lnl"][1][m]),
                   "test_ks_sum_size_matched_by_ks": members[m]["ks_sum_test_size_matched"],
                   "test_ks_sum_size_matched_by_neg2lnl": evaluate(
                       module, config, {k: v[m] for k, v in gen_nll.items()}, test, (qa, qb))[0][
                           "ks_sum_test_size_matched"]} for m in range(n_mem)]}
  on = [i for i in range(n_mem) if reg_on[i]] or list(range(n_mem))
  off = [i for i in range(n_mem) if not reg_on[i]]
  i_sel = min(on, key=lambda i: best_score[i])
  keys_summary = ("mll_mean_rel_dev", "mll_width_rel_dev", "mll_mean_rel_dev_in_window",
                  "mll_width_rel_dev_in_window", "fraction_in_window", "ks_sum_test_size_matched",
                  "ks_sum_test_large_sample", "corr_pearson_max_abs_diff", "corr_spearman_max_abs_diff",
                  "corr_spearman_mean_abs_diff")
  spread = {grp: {k: _summary([members[i][k] for i in idx]) for k in keys_summary}
            for grp, idx in (("regression_on", on), ("regression_off", off)) if idx}
  test_q = _quantities(module, test, ("mll",))["mll"]
  result = {
      "config": config.to_dict(),
      "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPU cores",
      "n_events": {"train": len(next(iter(split.train.values()))), "val": n_val, "test": n_test},
      "test_mll_mean": float(test_q.mean()), "test_mll_width": float(test_q.std()),
      "selected_member": int(i_sel), "selected": members[i_sel], "floor": floor, "members": members,
      "spread": spread, "selection_ks_vs_neg2lnl": selection_compare, "train_seconds": train_seconds, "total_seconds": time.time() - t_start,
  }
  if off:
    j_off = min(off, key=lambda i: best_score[i])
    result["best_regression_off_member"] = int(j_off)
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, "history.json"), history)
  gsel = {k: v[i_sel] for k, v in gen_all.items()}
  io.write_parquet(os.path.join(workdir, "generated.parquet"), gsel,
                   metadata={"model": config.model, "member": str(i_sel), "step": str(best_step[i_sel])})
  if plots:
    from ganjax.plots import zmumu as zplots

    derived = tuple(module.DERIVED)
    compare = tuple(config.features) + tuple(n for n in derived if n not in config.features)
    tq = _quantities(module, test, compare)
    gq = _quantities(module, gsel, compare)
    zplots.features(tq, gq, tuple(config.features) + ("mll",), os.path.join(workdir, "fig5_features.png"),
                    title=f"{config.model} model, regression terms on (member {i_sel})")
    if off:
      goff = _quantities(module, {k: v[j_off] for k, v in gen_all.items()}, compare)
      zplots.features(tq, goff, tuple(config.features) + ("mll",), os.path.join(workdir, "fig6_features_noreg.png"),
                      title=f"{config.model} model, regression terms off (member {j_off})")
    zplots.features(tq, gq, derived, os.path.join(workdir, "fig8_derived.png"), title="derived quantities")
    zplots.correlations(corr[i_sel][0], corr[i_sel][1], tuple(config.features),
                        os.path.join(workdir, "fig9_correlations.png"))
    zplots.zpt_and_spike(tq, gq, os.path.join(workdir, "fig10_zpt_iso.png"))
    zplots.history(history, reg_on, tuple(config.regression.keys()), os.path.join(workdir, "fig4_history.png"))
  result["total_seconds"] = time.time() - t_start
  io.write_json(os.path.join(workdir, "metrics.json"), result)
  return result


def main(argv):
  del argv
  from absl import flags

  config = flags.FLAGS.config
  workdir = flags.FLAGS.workdir
  res = run(config, workdir)
  s, f = res["selected"], res["floor"]
  print(f"selected member {res['selected_member']} (step {s['selected_step']}): "
        f"M_ll mean {s['mll_mean']:.2f} ({100 * s['mll_mean_rel_dev']:+.2f}%), width {s['mll_width']:.2f} "
        f"({100 * s['mll_width_rel_dev']:+.2f}%) vs test {res['test_mll_mean']:.2f}, {res['test_mll_width']:.2f}; "
        f"in window: {100 * s['mll_mean_rel_dev_in_window']:+.2f}%, {100 * s['mll_width_rel_dev_in_window']:+.2f}%; "
        f"KS sum (size-matched) {s['ks_sum_test_size_matched']:.4f} vs floor {f['ks_sum_halves']:.4f}; "
        f"train {res['train_seconds']:.0f} s, total {res['total_seconds']:.0f} s")


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "configs/zmumu.py:<preset>", lock_config=True)
  flags.DEFINE_string("workdir", None, "output directory")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
