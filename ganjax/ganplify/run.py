"""GANplifying: train an ensemble of GANs (one XLA program per segment) and measure the amplification.

  python -m ganjax.main --config=configs/ganplify.py:1d --workdir=runs/ganplify_1d

run(config, workdir): each member's training sample is drawn from the toy; the engine trains the ensemble
(ganjax.engine.driver: checkpoints, resume, SIGTERM, NaN stop, progress, TensorBoard); with
eval.history_every > 0 every such epoch records each member's quantile MSE (the convergence diagnostic);
then the evaluation writes metrics.json (curves with ensemble bands, amplification per binning, the
history, runtimes) and the paper-like figures (mse_*.png = Figs. 2/4/6/7 left, deviation_7x7.png = Fig. 5,
amplification_vs_quantiles.png = Fig. 7 right, camel.png = Fig. 1).
"""

from __future__ import annotations

import math
import os
import time
from functools import partial

import jax
import numpy as np

from ganjax import engine, io
from ganjax.data import toys
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError
from ganjax.ganplify.evaluate import _finite, evaluate
from ganjax.ganplify.train import make_generate, make_members
from ganjax.metrics import quantiles as qm


def check_config(config) -> None:
  """Impossible settings, one line each, before any compute."""
  t, ev = config.train, config.eval
  problems = list(engine.optim.check(t.optimizer))
  if config.data.toy not in ("camel", "ring", "shell"):
    problems.append(f"data.toy={config.data.toy!r}; use camel, ring or shell")
  if config.n_members < 1 or config.data.n_train < 1 or t.batch_size < 1 or t.epochs < 1 or t.eval_every < 1:
    problems.append("n_members, data.n_train, train.batch_size, train.epochs and train.eval_every must be >= 1")
  elif config.data.n_train % t.batch_size:
    problems.append(f"data.n_train={config.data.n_train} must be a multiple of train.batch_size={t.batch_size}")
  if ev.chunk < 1 or ev.n_gen % ev.chunk or (ev.history_every and ev.history_n_gen % ev.chunk):
    problems.append(f"eval.n_gen={ev.n_gen} and eval.history_n_gen={ev.history_n_gen} must be multiples of "
                    f"eval.chunk={ev.chunk}")
  f = config.model.flow
  if config.model.kind not in ("gan", "flow"):
    problems.append(f"model.kind={config.model.kind!r}; use gan or flow")
  elif config.model.kind == "flow" and (f.layers < 1 or f.bins < 2 or f.bound <= 0 or f.x_scale <= 0):
    problems.append(f"model.flow: layers >= 1, bins >= 2, bound > 0 and x_scale > 0, got layers={f.layers} "
                    f"bins={f.bins} bound={f.bound} x_scale={f.x_scale}")
  if ev.fit and config.data.toy != "camel":
    problems.append(f"eval.fit is for the 1D camel only, data.toy is {config.data.toy!r}")
  if problems:
    raise BadInputError("invalid configuration: " + "; ".join(problems))


def _history_hook(config, generate, n_members: int, spe: int):
  """evaluate(state, step) for the driver: at every eval.history_every epochs (and the last), each member's
  quantile MSE and its sampling noise per binning, from eval.history_n_gen GANned events."""
  ev = config.eval
  toy = toys.get_toy(config.data.toy)
  binnings = toys.make_binnings(toy, ev.binnings)

  @jax.jit
  def member_mse(g_params_M, key):
    keys = jax.random.split(key, n_members)
    return jax.vmap(lambda p, k: jax.tree.map(lambda a: a[-1], qm.mse_curve(
        partial(generate, p), k, toy.to_coords, binnings, ev.history_n_gen // ev.chunk, ev.chunk)))(g_params_M, keys)

  def hook(state, step):
    epoch = step // spe
    if epoch % ev.history_every and epoch != config.train.epochs:
      return {}
    r = jax.tree.map(np.asarray, member_mse(state.params["g"], jax.random.fold_in(
        jax.random.PRNGKey(config.seed + 2), epoch)))
    return {**{f"mse_{b.name}": r["mse"][:, i] for i, b in enumerate(binnings)},
            **{f"noise_{b.name}": r["noise"][:, i] for i, b in enumerate(binnings)}}

  return hook, binnings


def mse_history(config, history: list, binnings) -> list:
  """The MSE history records (one per history epoch): per binning the members' MSE and the amplification."""
  out = []
  for rec in history:
    if f"mse_{binnings[0].name}" not in rec:
      continue
    row = {"epoch": rec["epoch"], "n_gen": int(config.eval.history_n_gen)}
    for b in binnings:
      mse, noise = np.asarray(rec[f"mse_{b.name}"]), np.asarray(rec[f"noise_{b.name}"])
      a = qm.amplification_summary(mse, noise, b.n_bins, config.data.n_train)
      row[b.name] = {"member_mse": mse.tolist(), **{k: _finite(v) for k, v in a.items()}}
    out.append(row)
  return out


def run(config, workdir: str, log=print, devices=None) -> dict:
  """Train (or resume) the ensemble in workdir, evaluate, write metrics.json and figures; returns metrics."""
  check_config(config)
  t_start = time.time()
  toy = toys.get_toy(config.data.toy)
  n_members, n_train = int(config.n_members), int(config.data.n_train)
  x_train = toys.training_samples(toy, jax.random.PRNGKey(config.seed + 10_000), n_members, n_train)
  members = make_members(config, n_members, toy.dim, devices)
  spe = members.train.spec.sampler.steps_per_epoch
  generate = make_generate(config, toy.dim)
  hook, binnings = (None, ())
  segment = int(config.train.eval_every)
  if config.eval.history_every:
    hook, binnings = _history_hook(config, generate, n_members, spe)
    segment = math.gcd(segment, int(config.eval.history_every))
  loop = driver.Loop(members, x_train, total_steps=int(config.train.epochs) * spe, segment_steps=segment * spe,
                     evaluate=hook, keep=lambda s: s.params["g"], name="ganplify")
  io.claim_workdir(workdir, config)
  result = driver.run(loop, members.init(engine.member_keys(config.seed, n_members)), workdir)
  train_s = time.time() - t_start
  t0 = time.time()
  res = evaluate(config, result.best, generate, x_train, log=log)
  eval_s = time.time() - t0
  n_params = {k: int(sum(a[0].size for a in jax.tree.leaves(result.state.params[m])))
              for k, m in (("g_params", "g"), ("d_params", "d")) if m in result.state.params}
  loss_names = ("nll_loss",) if config.model.kind == "flow" else ("d_loss", "g_loss", "d_omega")
  if binnings:
    res["history"] = mse_history(config, result.history, binnings)
  seg_seconds = [r["seconds"] for r in result.history if r["step"] > result.resumed_from]
  res.update(config=config.to_dict(), n_params=n_params,
             model_kind=config.model.kind,
             training={"member_steps_per_s": n_members * spe * segment * len(seg_seconds) / max(sum(seg_seconds), 1e-9),
                       "losses": {k: result.history[-1][k] for k in loss_names}},
             runtime={"train_s": train_s, "eval_s": eval_s, "device": str(jax.devices()[0].device_kind),
                      "n_devices": jax.device_count()})
  from ganjax.plots import ganplify as gplots
  gplots.plot_all(res, workdir)
  from ganjax import evaluation
  evaluation.write_report(res["evaluation"], os.path.join(workdir, "evaluation.md"))
  io.write_json(os.path.join(workdir, "metrics.json"), res)  # last: its presence marks a finished run
  for name, a in res["amplification"].items():
    fit = f" fit {a['fit_amplification']:.2f}" if "fit_amplification" in a else ""
    log(f"{name}: amplification {a['amplification']:.2f} [{a['amplification_lo']:.2f}, "
        f"{a['amplification_hi'] or float('inf'):.2f}] asymptote {a['asymptote_amplification'] or float('inf'):.2f}"
        f" at N={a['n_gen']}{fit}")
  return res
