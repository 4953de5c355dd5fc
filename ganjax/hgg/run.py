"""The main job on the engine: run(config, workdir) and the vmapped study members, train_members.

  python -m ganjax.main --config=configs/hgg.py:quick --workdir=runs/hgg-quick

run(config, workdir):
  data (simulate or read; SR split train/val/test; preprocessing fitted on SR train only)
  -> the TrainSpec of ganjax.hgg.train through ganjax.engine.driver: jitted segments of train.eval_every
     epochs; at each segment end -2 ln Lambda (Eq. 2) on training and validation events with S generations
     per event (one jitted call each), TensorBoard scalars, progress, checkpoints (latest; best generator by
     validation -2lnL, with the fitted transforms; with metric.select_within_sigma = n, a later generator
     must be lower by more than n paired event-bootstrap sigma), SIGTERM save, NaN stop
  -> the best generator: test -2lnL for each S of metric.test_samples; the fake photon of every CR event
     replaced (ganjax.hgg.apply); physics validation (Sec. 3.2)
  -> workdir: config.json, ganed_cr.parquet, mc_sr_test.parquet, validation/, plots/, tb/, metrics.json (last).
Rerunning with the same workdir resumes from the latest checkpoint and ends with the same metrics.
A single run is an ensemble of one: train_members runs M members that differ in seed, label noise, peak
learning rate or b1 as one program through the same driver (each member's best kept by its own val -2lnL).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganjax import engine, io
from ganjax.engine import driver
from ganjax.engine.checkpoints import Checkpoints
from ganjax.engine.errors import BadInputError
from ganjax.hgg import apply, metric
from ganjax.hgg.checks import (MIN_CR_EVENTS, check_config, check_members, check_table, numeric_table,
                               required_columns)
from ganjax.hgg.ideal import ideal_reference
from ganjax.hgg.prepare import Prepared, load_regions, region_params
from ganjax.hgg.train import (is_flow, latent_dim, log_prob_fn, make_models, make_train, run_keys,
                              set_member_hyperparams)
from ganjax.metrics.likelihood import neg2_log_likelihood
from ganjax.models import flow as flow_model
from ganjax.models.dcgan import generator_flops_per_object
from ganjax.parallel import data_mesh, replicate, replicated


def log(msg: str) -> None:
  print(f"[hgg] {msg}", flush=True)


class Setup(NamedTuple):
  """Everything a training needs, built and checked before any compute (shared by run and train_members)."""
  source: str
  prep: Prepared
  mesh: Any
  train: engine.Train      # one member's pure init / train_segment
  generator: Any           # the Flax generator module
  data: dict               # {"gen", "cond"} of the SR training set, replicated over the mesh
  hist_fn: Callable        # S-sample generated histogram (unjitted): (params_g, key, events, sample_ids)
  train_set: tuple         # (EvalEvents, real counts) for the metric on training events
  val_set: tuple
  test_set: tuple


def setup(config, workdir: str, regions=None) -> Setup:
  """Check the config and the input, claim the workdir (config.json), preprocess, build the functions."""
  check_config(config)
  t0 = time.time()
  sr, cr, source = regions if regions is not None else load_regions(config)
  if regions is not None:  # library tables: checked like files (1D, one length, numbers)
    sr, cr = numeric_table(sr, f"{source} (SR)"), numeric_table(cr, f"{source} (CR)")
  needed = required_columns(config)
  for name, table in (("SR", sr), ("CR", cr)):
    n = len(next(iter(table.values()))) if table else 0
    if n == 0:
      raise BadInputError(f"{source}: the {name} is empty after selection")
    check_table(table, needed, f"{source} ({name})")
  n_cr = len(cr[needed[0]])
  if config.output.validation and min(n_cr, config.data.n_cr or n_cr) < MIN_CR_EVENTS:
    raise BadInputError(f"{source}: the CR has {min(n_cr, config.data.n_cr or n_cr)} events; the validation "
                        f"needs at least {MIN_CR_EVENTS} (or turn it off: --config.output.validation=False)")
  log(f"data: {source}: SR {len(sr[needed[0]])} events, CR {len(cr[needed[0]])} events ({time.time() - t0:.1f} s)")
  t0 = time.time()
  prep = Prepared(config, sr, cr)
  io.claim_workdir(workdir, config)
  gen_names, cond_names = prep.gen_names, prep.cond_names
  mesh = data_mesh(config.train.devices)
  train = make_train(config, n_cond=len(cond_names), n_out=len(gen_names), n_train=config.data.n_train,
                     mesh=mesh)
  generator, _ = make_models(config, len(gen_names))
  data = replicate({"gen": prep.gen(prep.train).astype(np.float32),
                    "cond": prep.cond(prep.train, 0).astype(np.float32)}, mesh)
  n_bins, chunk = config.metric.n_bins, config.metric.chunk
  aux_names = metric.aux_columns(prep.metric_dims, gen_names, prep.relative)
  hist_fn = metric.make_histogram_fn(generator, latent_dim(config, len(gen_names)), gen_names, prep.metric_dims,
                                     prep.gen_qt, prep.metric_qt, n_bins, chunk, prep.relative, mesh)

  def eval_set(table, salt, n_max=0):
    if n_max and n_max < len(table[gen_names[0]]):
      table = {k: v[:n_max] for k, v in table.items()}
    ev = replicate(metric.pad_events(prep.cond(table, salt), {a: table[a] for a in aux_names}, chunk,
                                     multiple=8 * mesh.size), mesh)
    return ev, metric.real_histogram(table, gen_names, prep.metric_dims, prep.gen_qt, prep.metric_qt, n_bins)

  out = Setup(source, prep, mesh, train, generator, data, hist_fn,
              train_set=eval_set(prep.train, 0, config.metric.n_train_events),
              val_set=eval_set(prep.val, 1), test_set=eval_set(prep.test, 2))
  log(f"preprocessing: SR train/val/test {config.data.n_train}/{config.data.n_val}/{config.data.n_test}, "
      f"CR {len(prep.cr[gen_names[0]])}; {len(cond_names)} conditional features ({config.strategy}); quantile "
      f"transforms fitted on SR train; {mesh.size} device(s) ({time.time() - t0:.1f} s)")
  return out


class Fit(NamedTuple):
  result: driver.Result
  spe: int
  test_nll: dict           # str(S) -> [M] test -2lnL of the best generators
  gen_u_MxNxO: np.ndarray  # each member's best generator applied to the CR (model coordinates)
  draws_MxN: np.ndarray    # the draw whose GANed event passed the SR selection (0: none of apply.max_draws)
  test_flow_nll: np.ndarray | None  # [M] a flow's exact -mean log p(object | cond) on the test set, or None


def _fit(config, workdir: str, s: Setup, seeds: np.ndarray, hyper: dict | None, member_axis: str,
         extras: bool, on_segment_end: Callable[[int], None] | None) -> Fit:
  """Train M members (stacked over a leading axis) through the driver; test metric and CR generation of
  each member's best generator. `hyper`: per-member {learning_rate, b1, label_noise} arrays, or None."""
  mesh, on_mesh = s.mesh, lambda x: replicate(np.asarray(x), s.mesh)
  spe = s.train.spec.sampler.steps_per_epoch
  S, n_members = int(config.metric.n_samples), len(seeds)
  members = engine.make_members(s.train, data_axis=None, how=member_axis, sharding=replicated(mesh))
  keys_M = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
  t1 = time.time()
  state = members.init(keys_M)
  if hyper is not None:
    state = replicate(jax.jit(jax.vmap(set_member_hyperparams))(state, **hyper), mesh)
  keys_5xM = jax.vmap(lambda k: jnp.stack(run_keys(k)), out_axes=1)(keys_M)  # (init, train, eval, test, apply)
  k_eval, k_test, k_apply = (on_mesh(k) for k in keys_5xM[2:])

  hist_M = jax.jit(engine.over_members(s.hist_fn, (0, 0, None, None), member_axis),
                   out_shardings=replicated(mesh))
  nll_M = lambda real, counts_MxB: np.array([neg2_log_likelihood(real, c) for c in np.asarray(counts_MxB)])
  (train_ev, train_m), (val_ev, val_m), (test_ev, test_m) = s.train_set, s.val_set, s.test_set
  sample_ids = on_mesh(np.arange(S))

  tie = None
  if config.metric.select_within_sigma > 0:  # ties within n sigma keep the earlier model (ganjax/evaluation.py)
    from ganjax.evaluation import WithinSigmaSelection
    pr = s.prep
    index_M = jax.jit(engine.over_members(metric.make_index_fn(
        s.generator, latent_dim(config, len(pr.gen_names)), pr.gen_names, pr.metric_dims, pr.gen_qt,
        pr.metric_qt, config.metric.n_bins, config.metric.chunk, pr.relative, mesh), (0, 0, None, None),
        member_axis), out_shardings=replicated(mesh))

    def val_bins(params_g_M, step_M) -> np.ndarray:
      """[M, N, S] metric bins of each member's generated objects on the validation events, with the key
      evaluate() uses at each member's step (its epoch folded into the member's eval key)."""
      k_M = jax.vmap(jax.random.fold_in)(k_eval, jnp.asarray(np.asarray(step_M) // spe, jnp.uint32))
      idx = np.asarray(index_M(params_g_M, on_mesh(k_M), val_ev, sample_ids))[:, :, :val_ev.n_events]
      return idx.transpose(0, 2, 1)

    tie = WithinSigmaSelection(metric.real_bin_index(pr.val, pr.metric_dims, pr.metric_qt, config.metric.n_bins),
                               config.metric.n_bins ** len(pr.metric_dims), val_bins,
                               config.metric.select_within_sigma, seed=int(config.seed))

  def evaluate(state, step: int) -> dict:
    """-2lnL of the current generators on training and validation events (the same latent key for both)."""
    epoch = step // spe
    k_e = jax.vmap(jax.random.fold_in, in_axes=(0, None))(k_eval, epoch)
    out = {"train_nll": nll_M(train_m, hist_M(state.params["g"], k_e, train_ev, sample_ids))}
    out["val_nll"] = nll_M(val_m, hist_M(state.params["g"], k_e, val_ev, sample_ids))
    for s_extra in config.metric.history_samples if extras else ():
      # Fig. 2: the same model at other S (same key); NaN before metric.history_from.
      if epoch < config.metric.history_from:
        out[f"val_nll_S{s_extra}"] = np.full(n_members, np.nan)
      else:
        out[f"val_nll_S{s_extra}"] = out["val_nll"] if s_extra == S else nll_M(
            val_m, hist_M(state.params["g"], k_e, val_ev, on_mesh(np.arange(s_extra))))
    return out

  loop = driver.Loop(members, s.data, total_steps=int(config.train.epochs) * spe,
                     segment_steps=int(config.train.eval_every) * spe, evaluate=evaluate,
                     select="val_nll", select_margin=tie, also_select=() if tie is None else ("val_nll",),
                     keep=lambda st: st.params["g"], aux=s.prep.transforms(), name="hgg")
  first = min(loop.segment_steps, loop.total_steps)
  members.segment_jit.lower(state, s.data, first).compile()
  for ev in (train_ev, val_ev):
    hist_M.lower(state.params["g"], k_eval, ev, sample_ids).compile()
  log(f"compile: init, the {first // spe}-epoch training segment of {n_members} member(s) and the S={S} metric "
      f"({time.time() - t1:.1f} s); training {config.train.epochs} epochs of {spe} steps")
  result = driver.run(loop, state, workdir,
                      on_segment_end=None if on_segment_end is None else lambda step: on_segment_end(step // spe))
  t1, best = time.time(), result.best
  test_nll = {str(k): nll_M(test_m, hist_M(best, k_test, test_ev, on_mesh(np.arange(k))))
              for k in config.metric.test_samples}
  n_out = len(s.prep.gen_names)
  gen_one = metric.make_generate_fn(s.generator, latent_dim(config, n_out), config.metric.chunk, mesh)
  sr_one = apply.make_sr_generate_fn(gen_one, s.prep, region_params(config), config.data.preselection,
                                     int(config.apply.max_draws))
  generate_M = jax.jit(engine.over_members(sr_one, (0, 0, None, None), member_axis),
                       out_shardings=replicated(mesh))
  aux = {k: on_mesh(v) for k, v in apply.sr_check_aux(s.prep).items()}
  gen_u, draws = (np.asarray(a) for a in generate_M(best, k_apply, on_mesh(s.prep.cond(s.prep.cr, 3)), aux))
  flow_nll = None
  if is_flow(config):  # the exact likelihood of the SR test events, in the model's (preprocessed) coordinates
    lp = log_prob_fn(config, n_out)
    nll_M = jax.jit(engine.over_members(lambda p, x, c: -jnp.mean(lp(p, x, c)), (0, None, None), member_axis))
    flow_nll = np.asarray(nll_M(best, on_mesh(s.prep.gen(s.prep.test)), on_mesh(s.prep.cond(s.prep.test, 2))))
  log(f"best generator(s) (epoch {' '.join(str(b // spe) for b in result.best_step[:8])}): test -2lnL for "
      f"S = {', '.join(map(str, config.metric.test_samples))}; {gen_u.shape[1]} CR events generated "
      f"({time.time() - t1:.1f} s)")
  return Fit(result, spe, test_nll, gen_u, draws, flow_nll)


def _history(fit: Fit, j: int, names: Sequence[str]) -> dict:
  """Member j's history {"epoch": [...], name: [...]} from the driver's records (metrics.json names)."""
  rename = {"loss_d": "d_loss", "loss_g": "g_loss", "loss_nll": "nll_loss"}
  recs = fit.result.history
  return {"epoch": [r["epoch"] for r in recs], **{k: [r[rename.get(k, k)][j] for r in recs] for k in names}}


def _loss_names(config) -> tuple[str, ...]:
  """The training losses in metrics.json: the GAN's two, or the flow's negative log-likelihood."""
  return ("loss_nll",) if is_flow(config) else ("loss_d", "loss_g")


def _margin_names(config) -> list[str]:
  """The selection margin's history key when ties within n sigma keep the earlier model."""
  return ["val_nll_margin"] if config.metric.select_within_sigma > 0 else []


def _selection(config, fit: Fit, j: int) -> dict:
  """With ties within n sigma: the rule and, to compare, member j's best of the plain lowest -2lnL."""
  if config.metric.select_within_sigma <= 0:
    return {}
  _, score, step = fit.result.also["val_nll"]
  return {"selection": {"rule": f"val_nll lower by more than {config.metric.select_within_sigma:g} paired "
                                "event-bootstrap sigma", "n_sigma": float(config.metric.select_within_sigma),
                        "plain_best_epoch": int(step[j]) // fit.spe, "plain_best_val_nll": float(score[j])}}


def _none_if_nan(values: list) -> list:
  return [x if np.isfinite(x) else None for x in values]


def run(config: ml_collections.ConfigDict, workdir: str, regions: tuple[dict, dict, str] | None = None,
        on_segment_end: Callable[[int], None] | None = None) -> dict:
  """Run the main job into `workdir` (resuming if it holds a checkpoint); returns metrics.json's content.

  regions: optional (SR table, CR table, description) to use instead of `config.data.source`.
  on_segment_end: optional callback(epoch) after each segment's checkpoint (progress hooks, tests).
  """
  from ganjax.plots import hgg as plots

  t_start = time.time()
  s = setup(config, workdir, regions)
  prep, gen_names, cond_names = s.prep, s.prep.gen_names, s.prep.cond_names
  fit = _fit(config, workdir, s, np.array([config.seed]), None, "auto", True, on_segment_end)
  r = fit.result
  params_g = jax.tree.map(lambda a: a[0], r.best)
  test_nll = {k: float(v[0]) for k, v in fit.test_nll.items()}
  ganed = apply.ganed_cr(config, prep, fit.gen_u_MxNxO[0], fit.draws_MxN[0])
  if config.dctr.enabled:
    generate = jax.jit(metric.make_generate_fn(s.generator, latent_dim(config, len(gen_names)), config.metric.chunk,
                                               s.mesh),
                       out_shardings=replicated(s.mesh))
    k_apply = replicate(run_keys(jax.random.PRNGKey(config.seed))[4], s.mesh)
    metrics_dctr = apply.apply_dctr(config, prep, params_g, generate, ganed, k_apply,
                                    lambda x: replicate(np.asarray(x), s.mesh))
  s2 = apply.s2_table(config, prep, ganed)
  t_train = time.time() - t_start

  names = (["train_nll", "val_nll", *_loss_names(config)] + [f"val_nll_S{k}" for k in config.metric.history_samples]
           + _margin_names(config))
  history = _history(fit, 0, names)
  best_epoch = int(r.best_step[0]) // fit.spe
  n_params = lambda p: int(sum(x[0].size for x in jax.tree.leaves(p)))
  metrics = {
      "source": s.source, "strategy": config.strategy, "cond_features": list(cond_names),
      "gen_features": list(gen_names), "generated_relative_to": prep.relative,
      "n_sr_train": config.data.n_train, "n_sr_val": config.data.n_val, "n_sr_test": config.data.n_test,
      "n_cr": int(len(prep.cr[gen_names[0]])),
      "history": {k: (v if k == "epoch" else _none_if_nan(v)) for k, v in history.items()},
      "best_epoch": best_epoch, "best_val_nll": float(r.best_score[0]), **_selection(config, fit, 0),
      "test_nll": test_nll, "metric_dims": list(prep.metric_dims),
      "metric_n_bins_total": config.metric.n_bins ** len(prep.metric_dims),
      "s2": s2, "s2_fake_pt_ratio": s2["fake_pt"]["ganed_cr_vs_mc_sr"] / s2["fake_pt"]["mc_cr_vs_mc_sr"],
      "ganed_cr_pass_sr_fraction": float(ganed["gan_pass_sr"].mean()),
      # the generator's leak across the SR selection: how often its first draw passes, and the mean draws
      "ganed_cr_first_draw_pass_fraction": float(np.mean(fit.draws_MxN[0] == 1)),
      "ganed_cr_mean_draws": float(np.mean(fit.draws_MxN[0][fit.draws_MxN[0] > 0])) if (fit.draws_MxN[0] > 0).any()
                             else None,
      "model_kind": config.model.kind,
      "generator": {"params": n_params(r.best), **(
          flow_model.flops_per_object(s.generator, len(cond_names)) if is_flow(config) else
          generator_flops_per_object(config.model.latent_dim + len(cond_names), s.generator))},
      "seconds": {"train_and_eval": t_train},
      "devices": [str(d) for d in jax.devices()],
  }
  if is_flow(config):
    metrics["test_flow_nll"] = float(fit.test_flow_nll[0])  # -mean ln p(object | cond), preprocessed coords
  else:
    metrics["discriminator"] = {"params": n_params(r.state.params["d"])}
  if config.dctr.enabled:
    metrics["dctr"] = metrics_dctr
  if config.output.validation:
    t0 = time.time()
    metrics["validation"] = _validate(config, prep, ganed, os.path.join(workdir, "validation"))
    v = metrics["validation"]["summary"]
    log(f"validation: chi {v['chi']:.3f} (MC CR vs MC SR {v['chi_cr_vs_sr']:.3f}), "
        f"{v['n_pairs_above_threshold']} pairs above 3 ({time.time() - t0:.1f} s)")
  if config.output.evaluation:  # event-bootstrap error of the test -2lnL; statistics with nulls (ganjax/evaluation.py)
    from ganjax import evaluation
    metrics["evaluation"] = evaluation.hgg(config, s, params_g, ganed)
    metrics["test_nll_error"] = {str(config.metric.n_samples): metrics["evaluation"]["test_nll_bootstrap"]["error"]}
    evaluation.write_report(metrics["evaluation"], os.path.join(workdir, "validation", "evaluation.md"),
                            "GANed CR vs MC SR test")
  t0 = time.time()
  meta = {"ganjax_config": config.to_json(), "ganjax_version": __import__("ganjax").__version__}
  write = io.write_root if config.output.format == "root" else io.write_parquet
  ext = "root" if config.output.format == "root" else "parquet"
  write(os.path.join(workdir, f"ganed_cr.{ext}"), ganed, meta)
  write(os.path.join(workdir, f"mc_sr_test.{ext}"), prep.test, meta)
  if config.output.plots:
    plots.metric_history(np.asarray(history["epoch"]), np.asarray(history["train_nll"]),
                         np.asarray(history["val_nll"]), best_epoch,
                         os.path.join(workdir, "plots", "metric_history.png"))
  metrics["seconds"]["total"] = time.time() - t_start
  io.write_json(os.path.join(workdir, "metrics.json"), metrics)  # last: its presence marks a finished run
  log(f"outputs: ganed_cr.{ext}, mc_sr_test.{ext}, metrics.json{', plots/' if config.output.plots else ''} in "
      f"{workdir} ({time.time() - t0:.1f} s)")
  log(f"done in {metrics['seconds']['total']:.0f} s: best epoch {best_epoch}, test -2lnL {test_nll}, "
      f"S^2(fake pT) GANed CR vs MC SR {s2['fake_pt']['ganed_cr_vs_mc_sr']:.4f} vs MC CR vs MC SR "
      f"{s2['fake_pt']['mc_cr_vs_mc_sr']:.4f}")
  return metrics


def _validate(config, prep: Prepared, ganed: dict, vdir: str) -> dict:
  """Physics validation (paper Sec. 3.2): the 15 observables of the slides, GANed CR vs MC SR (distance
  correlations, chi, S^2, KS), and on the simulator the same for an ideal generator."""
  from ganjax import validation
  ganed_view = {c: ganed.get("gan_" + c, ganed[c]) for c in validation.HGG_OBSERVABLES}
  n_small = min(len(prep.test["fake_pt"]), len(prep.cr["fake_pt"]))
  report = validation.validate(prep.test, prep.cr, ganed_view, validation.HGG_OBSERVABLES,
                               n_batches=max(2, min(20, n_small // 20)), seed=config.seed)
  out = {"summary": report["summary"], "onedim": report["onedim"], "s2_check": report["s2_check"],
         "eta_regions": report["eta_regions"],
         "pairs_above_3": report["chi"]["ganed_vs_sr"]["pairs_above_threshold"]}
  if config.output.ideal_reference and config.data.source == "simulate":
    out["ideal_reference"] = ideal_reference(config, prep, ganed_view)
  if config.output.plots:
    validation.write_report(report, vdir, experiment="" if config.data.source == "simulate"
                            else config.output.experiment_label)
  else:
    io.write_json(os.path.join(vdir, "validation.json"), report)
  return out


def train_members(config: ml_collections.ConfigDict, workdir: str, members: Sequence[dict],
                  regions: tuple[dict, dict, str] | None = None, member_axis: str = "auto",
                  report: bool = False) -> dict:
  """Trainings that differ only in seed, label noise, peak learning rate or b1 (checks.MEMBER_KEYS), run as
  ONE program through the driver: the members' states stacked, jit(vmap) or jit(lax.map) of the training
  segment (member_axis: vmap | map | auto = map on CPU, vmap elsewhere; ganjax/engine/members.py), the
  S-sample metric over the members' generators, each member's best generator kept by its own validation
  -2lnL. Resumable like a single run. Returns (and writes to workdir/members.json) each member's history,
  best epoch/-2lnL, test -2lnL and S^2(fake pT) ratio.
  members: e.g. [{"train.label_noise": 0.0}, {"seed": 1}]; unset keys take the config's value.
  report: also each member's S^2 ratio (GANed CR vs MC SR over MC CR vs MC SR) of every generated and diphoton
  column and its physics validation summary (chi against the MC SR and, on the simulator, the ideal CR).
  """
  t_start = time.time()
  check_members(config, members)
  if member_axis not in ("auto", "vmap", "map"):
    raise BadInputError(f"member_axis must be auto, vmap or map, got {member_axis!r}")
  s = setup(config, workdir, regions)

  def get(key: str) -> np.ndarray:
    """Each member's value of a dotted config key (its override, else the config's)."""
    default = config
    for part in key.split("."):
      default = default[part]
    return np.array([m.get(key, default) for m in members])

  seeds = get("seed").astype(np.uint32)
  hyper = {"learning_rate": get("train.optimizer.learning_rate"), "label_noise": get("train.label_noise")}
  if config.train.optimizer.name in ("lamb", "adam", "adamw"):
    hyper["b1"] = get("train.optimizer.b1")
  fit = _fit(config, workdir, s, seeds, {k: jnp.asarray(v, jnp.float32) for k, v in hyper.items()},
             member_axis, False, None)
  r = fit.result
  out = {"members": [], "n_members": len(members)}
  for j, m in enumerate(members):
    h = _history(fit, j, ["train_nll", "val_nll", *_loss_names(config), *_margin_names(config)])
    val = np.asarray(h["val_nll"], np.float64)
    bad_epochs = [e for e, v in zip(h["epoch"], val) if not np.isfinite(v)]
    diverged = [int(r.diverged_at[j]) // fit.spe] if r.diverged_at[j] >= 0 else []
    diverged_at = min(diverged + bad_epochs) if diverged or bad_epochs else None
    if diverged_at is not None:  # a diverged member is recorded and ignored from then on
      h["val_nll"] = [np.nan if e >= diverged_at else v for e, v in zip(h["epoch"], h["val_nll"])]
    ganed = apply.ganed_cr(config, s.prep, fit.gen_u_MxNxO[j], fit.draws_MxN[j])
    s2_all = apply.s2_table(config, s.prep, ganed)
    s2 = s2_all["fake_pt"]
    out["members"].append({
        "overrides": dict(m), "seed": int(seeds[j]), "label_noise": float(hyper["label_noise"][j]),
        "learning_rate": float(hyper["learning_rate"][j]), "history": h,
        "best_epoch": int(r.best_step[j]) // fit.spe, "best_val_nll": float(r.best_score[j]),
        **_selection(config, fit, j), "diverged_at_epoch": diverged_at,
        "test_nll": {k: float(v[j]) for k, v in fit.test_nll.items()},
        "s2_fake_pt_ratio": s2["ganed_cr_vs_mc_sr"] / s2["mc_cr_vs_mc_sr"],
        **({"test_flow_nll": float(fit.test_flow_nll[j])} if fit.test_flow_nll is not None else {})})
    if report:
      out["members"][-1]["s2_ratio"] = {c: v["ganed_cr_vs_mc_sr"] / v["mc_cr_vs_mc_sr"] for c, v in s2_all.items()}
      out["members"][-1]["validation"] = _validate(config, s.prep, ganed, os.path.join(workdir, f"validation_{j}"))
  n_params = {m: int(sum(np.size(a) // len(members) for a in jax.tree.leaves(p))) for m, p in r.state.params.items()}
  out.update(seconds=time.time() - t_start, devices=[str(d) for d in jax.devices()], model_kind=config.model.kind,
             train_seconds=float(sum(rec["seconds"] for rec in r.history)), params=n_params)
  io.write_json(os.path.join(workdir, "members.json"), out)
  return out


def restore_best(s: Setup, workdir: str) -> Any:
  """The best generator of member 0 saved in workdir/checkpoints/best (what run() applied to the CR)."""
  like = jax.tree.map(lambda a: a[None], s.train.init(jax.random.PRNGKey(0)).params["g"])
  ckpt = Checkpoints(workdir)
  try:
    restored = ckpt.restore_best({"best": like, "aux": s.prep.transforms()})
    damage = ckpt.best_damage
  finally:
    ckpt.close()
  if restored is None and damage:  # rerunning the main job in workdir rebuilds best from latest
    raise BadInputError(f"{workdir}/checkpoints/best is damaged ({damage}): rerun the main job in {workdir} "
                        "to rebuild it from the kept models")
  if restored is None:
    raise BadInputError(f"{workdir}/checkpoints/best holds no generator: train first")
  return jax.tree.map(lambda a: a[0], restored[0]["best"])
