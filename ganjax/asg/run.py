"""Analysis-specific GAN: train an ensemble on the engine, select by KS on validation data (Sec. 5), evaluate
the selected models on the test set.

  python -m ganjax.main --config=configs/zmumu.py:reduced --workdir=runs/zmumu_reduced

run(config, workdir): the analysis module (config.analysis) reads the table, which is split into train /
validation / test. One vmapped program trains config.n_members generators (the last
config.regression.off_members with c1 = c2 = 0: Fig. 6 vs Fig. 5) through ganjax.engine.driver (checkpoints,
resume after SIGTERM, NaN stop, progress, TensorBoard in workdir/tb). At the end of every segment of
train.eval_every steps each member's generator makes as many events as the validation set (one key for all
members, fold_in(PRNGKey(seed + 1), step)) and is scored by the sum of the KS statistics of
config.selection.quantities against it (`ks_sum_val`, the selection) and by the main job's binned -2 ln L on
the same quantities (`neg2lnl_val`, kept as a second selection to compare with). Each member keeps the
generator with its lowest KS sum. Then ganjax.asg.evaluate compares the selected models with the test set.
Writes history.json, generated.parquet (the selected model's events), the figures and metrics.json (last).
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from ganjax import engine, io
from ganjax.asg import evaluate as ev
from ganjax.asg.data import analysis_module, derived_values, make_data, split_table
from ganjax.asg.metrics import ks_scores, neg2lnl
from ganjax.asg.train import make_generate, make_members, member_weights, parse_member_terms, set_regression
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError


def check_config(config, module) -> None:
  """Impossible settings, one line each, before any compute."""
  t, m = config.train, config.model
  problems = list(engine.optim.check(t.optimizer))
  if config.n_members < 1 or t.steps < 1 or t.eval_every < 1 or config.eval.n_generate < 1:
    problems.append("n_members, train.steps, train.eval_every and eval.n_generate must be >= 1")
  if t.batch_size < 2 or t.batch_size % 2:
    problems.append(f"train.batch_size={t.batch_size} must be even and >= 2 (D sees B/2 real + B/2 generated)")
  if not 0 <= config.regression.off_members <= config.n_members:
    problems.append(f"regression.off_members={config.regression.off_members} must be in [0, n_members]")
  if config.regression.member_terms and len(config.regression.member_terms) != config.n_members:
    problems.append(f"regression.member_terms has {len(config.regression.member_terms)} entries for "
                    f"n_members={config.n_members}")
  try:
    parse_member_terms(config)
  except ValueError as e:
    problems.append(str(e))
  bad_single = [q for q in config.selection.single if q not in config.selection.quantities]
  if bad_single:
    problems.append(f"selection.single {bad_single} must be among selection.quantities "
                    f"{tuple(config.selection.quantities)}")
  missing = [r for r in (*config.regression.terms, *config.regression.distribution) if r not in module.DERIVED]
  if missing:
    problems.append(f"regression.terms {missing} are not derived quantities of {config.analysis!r}: "
                    f"{list(module.DERIVED)}")
  unknown = [q for q in config.selection.quantities if q not in m.features and q not in module.DERIVED]
  if unknown or not config.selection.quantities:
    problems.append(f"selection.quantities {unknown or '()'} must be features or derived quantities")
  if m.kind not in ("gan", "flow"):
    problems.append(f"model.kind={m.kind!r}; use gan or flow")
  fv, ft = config.data.val_frac, config.data.test_frac
  if not (0 < fv and 0 < ft and fv + ft < 1):
    problems.append(f"data.val_frac={fv} and data.test_frac={ft} must be > 0 with a sum < 1")
  if problems:
    raise BadInputError("invalid configuration: " + "; ".join(problems))


def selection_key(seed: int, step: int) -> jax.Array:
  """The key of the validation events generated at `step` (the same for every member)."""
  return jax.random.fold_in(jax.random.PRNGKey(seed + 1), step)


def make_selection_hook(config, module, pre, split, generate):
  """evaluate(state_M, step) for the driver: each member's KS sum and -2 ln L against the validation set."""
  sel = tuple(config.selection.quantities)
  val_q = derived_values(module.DERIVED, split.val, sel)
  train_q = derived_values(module.DERIVED, split.train, sel)
  n_val = len(next(iter(split.val.values())))

  def quantities(g_params, key):
    f = generate(g_params, pre, key, n_val)
    return {n: f[n] if n in f else module.DERIVED[n](f) for n in sel}

  gen_M = jax.jit(jax.vmap(quantities, in_axes=(0, None)))

  def hook(state, step: int) -> dict:
    q = jax.tree.map(np.asarray, gen_M(state.params["g"], selection_key(config.seed, step)))
    n_mem = len(q[sel[0]])
    per_member = [{k: v[m] for k, v in q.items()} for m in range(n_mem)]
    ks_MxS = np.asarray([ks_scores(g, val_q, sel) for g in per_member])
    return {"ks_sum_val": ks_MxS.sum(1), "neg2lnl_val": np.asarray([neg2lnl(g, val_q, sel, train_q) for g in per_member]),
            **{f"ks_{q}_val": ks_MxS[:, sel.index(q)] for q in config.selection.single}}

  return hook


def output_table(module, gen: dict) -> dict:
  """The generated features followed by the derived physics quantities (module.OUTPUTS, default every DERIVED
  quantity; for Z -> mu mu mll and ptll in GeV, dphi, pt, eta of the muons), so that they can be histogrammed
  directly."""
  names = tuple(getattr(module, "OUTPUTS", module.DERIVED))
  extra = derived_values(module.DERIVED, gen, tuple(n for n in names if n not in gen))
  return {**{k: np.asarray(v) for k, v in gen.items()}, **{k: np.asarray(v, np.float32) for k, v in extra.items()}}


def history_columns(records: list) -> dict:
  """The driver's per-evaluation records as columns: {name: [per evaluation: value or [M] values]}."""
  names = [k for k in records[0] if k != "epoch"] if records else []
  return {k: [r[k] for r in records] for k in names}


def write_figures(module, config, workdir: str, test: dict, gen: dict, i_sel: int, gen_off: dict | None,
                  j_off: int | None, corr: tuple, history: dict, reg_on: np.ndarray) -> None:
  """Figs. 4, 5, 6, 8, 9, 10 of the paper for the selected models, against the test set."""
  from ganjax.plots import zmumu as zplots

  derived = tuple(module.DERIVED)
  feats = tuple(config.model.features)
  compare = ev.compared_quantities(module, config)
  tq = derived_values(module.DERIVED, test, compare)
  gq = derived_values(module.DERIVED, gen, compare)
  name = config.model.name
  label = tuple(config.eval.exp_label)
  zplots.features(tq, gq, feats + ("mll",), os.path.join(workdir, "fig5_features.png"),
                  title=f"{name} model, regression terms on (member {i_sel})", label=label)
  if gen_off is not None:
    goff = derived_values(module.DERIVED, gen_off, compare)
    zplots.features(tq, goff, feats + ("mll",), os.path.join(workdir, "fig6_features_noreg.png"),
                    title=f"{name} model, regression terms off (member {j_off})", label=label)
  zplots.features(tq, gq, derived, os.path.join(workdir, "fig8_derived.png"), title="derived quantities", label=label)
  zplots.correlations(corr[0], corr[1], feats, os.path.join(workdir, "fig9_correlations.png"), label=label)
  zplots.zpt_and_spike(tq, gq, os.path.join(workdir, "fig10_zpt_iso.png"), label=label)
  if "d_loss" in history:  # the GAN's losses (a flow has no discriminator)
    zplots.history(history, reg_on, tuple(config.regression.terms.keys()), os.path.join(workdir, "fig4_history.png"),
                   label=label)


def run(config, workdir: str, log=print, on_segment_end=None) -> dict:
  """Train (or resume) in workdir, select, evaluate on the test set, write the outputs; returns metrics.
  on_segment_end(step) is called after each segment's checkpoint (tests interrupt a run with it)."""
  t_start = time.time()
  try:
    module = analysis_module(config.analysis)
  except ValueError as e:
    raise BadInputError(str(e)) from e
  check_config(config, module)
  try:
    table = module.load(config)
    split = split_table(table, config.data.val_frac, config.data.test_frac, config.seed)
    data = make_data(config, split.train, module.DERIVED)
  except ValueError as e:  # a missing column, NaN values, a feature the table lacks: name it, train nothing
    raise BadInputError(f"{config.analysis}: {e}") from e
  members = make_members(config, module.DERIVED)
  generate = make_generate(config)

  n_mem = int(config.n_members)
  c1, c2, c3 = member_weights(config)
  reg_on = (c1.sum(1) + c2.sum(1) + c3.sum(1)) > 0
  state = set_regression(members.init(jax.random.split(jax.random.PRNGKey(config.seed), n_mem)), c1, c2, c3)
  pre = data.pre
  aux = {"param_D": pre.param_D, "width_D": pre.width_D, "mean_D": pre.mean_D, "std_D": pre.std_D,
         "target_mean_R": data.target_mean_R, "target_std_R": data.target_std_R}
  loop = driver.Loop(members, data, total_steps=int(config.train.steps), segment_steps=int(config.train.eval_every),
                     evaluate=make_selection_hook(config, module, pre, split, generate), select="ks_sum_val",
                     also_select=("neg2lnl_val",) + tuple(f"ks_{q}_val" for q in config.selection.single), keep=lambda s: s.params["g"], aux=aux, name="zmumu")
  io.claim_workdir(workdir, config)
  t_train = time.time()
  result = driver.run(loop, state, workdir, on_segment_end=on_segment_end)
  train_seconds = time.time() - t_train
  best_score, best_step = result.best_score, result.best_step
  nll_params, _, nll_step = result.also["neg2lnl_val"]
  history = history_columns(result.history)

  # evaluation on the test set (used for nothing else)
  test = split.test
  floor, halves = ev.floor(module, config, split.train, test)
  gen_final = jax.jit(jax.vmap(lambda p, k: generate(p, pre, k, config.eval.n_generate)))
  gen_keys = jax.random.split(jax.random.PRNGKey(config.seed + 3), n_mem)
  gen_all = jax.tree.map(np.asarray, gen_final(result.best, gen_keys))
  gen_nll = jax.tree.map(np.asarray, gen_final(nll_params, gen_keys))
  members_out, corr = [], []
  for m in range(n_mem):
    out, cm = ev.evaluate(module, config, {k: v[m] for k, v in gen_all.items()}, test, halves)
    out.update({"regression_terms": bool(reg_on[m]), "selected_step": int(best_step[m]),
                "ks_sum_val": float(best_score[m]), "diverged_at": int(result.diverged_at[m]),
                "weights": {"c1": c1[m].tolist(), "c2": c2[m].tolist(), "c3": c3[m].tolist()}})
    for q in config.selection.single:  # the model each member would keep by the validation KS of q alone
      params_q, score_q, step_q = result.also[f"ks_{q}_val"]
      gen_q = jax.tree.map(np.asarray, gen_final(jax.tree.map(lambda a: a[m:m + 1], params_q), gen_keys[m:m + 1]))
      out_q = ev.evaluate(module, config, {k: v[0] for k, v in gen_q.items()}, test, halves)[0]
      out[f"by_ks_{q}"] = {"selected_step": int(step_q[m]), "ks_val": float(score_q[m]),
                           **{k: out_q[k] for k in ("peak", "ks_sum_test_size_matched") if k in out_q}}
    members_out.append(out)
    corr.append(cm)
  from scipy.stats import spearmanr
  ks_all = np.asarray(history["ks_sum_val"]).ravel()
  nll_all = np.asarray(history["neg2lnl_val"]).ravel()
  selection_compare = {
      "spearman_ks_sum_vs_neg2lnl_over_snapshots": float(spearmanr(ks_all, nll_all)[0]),
      "members": [{"step_by_ks": int(best_step[m]), "step_by_neg2lnl": int(nll_step[m]),
                   "test_ks_sum_size_matched_by_ks": members_out[m]["ks_sum_test_size_matched"],
                   "test_ks_sum_size_matched_by_neg2lnl": ev.evaluate(
                       module, config, {k: v[m] for k, v in gen_nll.items()}, test, halves)[0][
                           "ks_sum_test_size_matched"]} for m in range(n_mem)]}
  on = [i for i in range(n_mem) if reg_on[i]] or list(range(n_mem))
  off = [i for i in range(n_mem) if not reg_on[i]]
  i_sel = min(on, key=lambda i: best_score[i])
  test_mll = derived_values(module.DERIVED, test, ("mll",))["mll"]
  res = {
      "config": config.to_dict(),
      "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {os.cpu_count()} CPU cores",
      "n_events": {"train": len(next(iter(split.train.values()))), "val": len(next(iter(split.val.values()))),
                   "test": len(next(iter(test.values())))},
      "test_mll_mean": float(test_mll.mean()), "test_mll_width": float(test_mll.std()),
      "selected_member": int(i_sel), "selected": members_out[i_sel], "floor": floor, "members": members_out,
      "spread": ev.spread(members_out, reg_on), "selection_ks_vs_neg2lnl": selection_compare,
      "train_seconds": train_seconds, "resumed_from_step": int(result.resumed_from),
  }
  j_off = min(off, key=lambda i: best_score[i]) if off else None
  if off:
    res["best_regression_off_member"] = int(j_off)
  io.write_json(os.path.join(workdir, "history.json"), history)
  gsel = {k: v[i_sel] for k, v in gen_all.items()}
  if config.eval.summary_events:  # statistics with truth-vs-truth nulls (ganjax/evaluation.py)
    from ganjax import evaluation
    n_eval = min(int(config.eval.summary_events), res["n_events"]["test"])  # as many generated as test events
    res["evaluation"] = evaluation.summary(gsel, test, list(config.model.features), truth_null=split.val,
                                           max_events=n_eval, seed=config.seed)
    evaluation.write_report(res["evaluation"], os.path.join(workdir, "evaluation.md"), "Selected model vs test")
  io.write_parquet(os.path.join(workdir, "generated.parquet"), output_table(module, gsel),
                   metadata={"model": config.model.name, "member": str(i_sel), "step": str(best_step[i_sel])})
  if config.eval.plots and io.is_primary():
    write_figures(module, config, workdir, test, gsel, i_sel,
                  {k: v[j_off] for k, v in gen_all.items()} if off else None, j_off, corr[i_sel], history, reg_on)
  res["total_seconds"] = time.time() - t_start
  io.write_json(os.path.join(workdir, "metrics.json"), res)  # last: its presence marks a finished run
  s, f = res["selected"], res["floor"]
  log(f"selected member {i_sel} (step {s['selected_step']}): M_ll mean {s['mll_mean']:.2f} "
      f"({100 * s['mll_mean_rel_dev']:+.2f}%), width {s['mll_width']:.2f} ({100 * s['mll_width_rel_dev']:+.2f}%) "
      f"vs test {res['test_mll_mean']:.2f}, {res['test_mll_width']:.2f}; in window: "
      f"{100 * s['mll_mean_rel_dev_in_window']:+.2f}%, {100 * s['mll_width_rel_dev_in_window']:+.2f}%; KS sum "
      f"(size-matched) {s['ks_sum_test_size_matched']:.4f} vs floor {f['ks_sum_halves']:.4f}; "
      f"train {train_seconds:.0f} s, total {res['total_seconds']:.0f} s")
  return res
