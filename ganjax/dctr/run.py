"""DCTR on the multimodal Gaussian toys (DCTR paper Sec. III A, Figs. 1, 2, 8): run(config, workdir).

  python -m ganjax.main --config=configs/dctr_toys.py:circle --workdir=runs/dctr_circle

One run: sample a truth set from the analytic toy; train the small GAN (ganjax.engine.driver: segments of
gan.train.eval_every steps, checkpoints in workdir, resume, SIGTERM, NaN stop, TensorBoard in workdir/tb);
draw GAN events; fit the DCTR classifier on truth vs GAN (checkpoints and TensorBoard in workdir/reweight);
apply it to an independent GAN evaluation sample and compare with an independent truth evaluation sample:
<S^2> (Eq. 15) and r (Sec. II B) per observable before and after weighting, N_eff. Writes densities.png
(Fig. 1), weights.png (Fig. 2), observables.png (Figs. 3-6 style), summary.png (Fig. 8) and, last,
metrics.json. Random numbers: fold_in(PRNGKey(seed), i) for i = truth, GAN init, GAN training, GAN events,
reweighter, evaluation truth, evaluation GAN (0..6), so a resumed run ends with the same numbers.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import io
from ganjax.data.dctr_toys import get_toy, observables
from ganjax.dctr import gan, reweight
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError, TrainingDivergedError
from ganjax.metrics.dilution import observable_report

TOYS = ("bimodal", "circle", "grid")
_STREAMS = ("truth", "gan_init", "gan_train", "gen", "reweight", "eval_truth", "eval_gen")


def check_config(config) -> None:
  """Impossible settings, one line each, before any compute (BadInputError)."""
  d = config.data
  problems = []
  if d.toy not in TOYS:
    problems.append(f"data.toy={d.toy!r}; use one of {', '.join(TOYS)}")
  if min(d.n_truth, d.n_generated, d.n_eval) < 1:
    problems.append("data.n_truth, data.n_generated and data.n_eval must be >= 1")
  problems += gan.check_config(config.gan)
  problems += reweight.check_config(config.reweight)
  if d.toy in TOYS and list(config.reweight.columns) != [f"x{i}" for i in range(get_toy(d.toy).dim)]:
    problems.append(f"reweight.columns must be {[f'x{i}' for i in range(get_toy(d.toy).dim)]} for the "
                    f"{d.toy} toy, got {list(config.reweight.columns)}")
  if problems:
    raise BadInputError("invalid configuration: " + "; ".join(problems))


def _columns(x_NxD: np.ndarray) -> dict[str, np.ndarray]:
  return {f"x{i}": np.asarray(x_NxD[:, i]) for i in range(x_NxD.shape[1])}


def _tail_mean(history: list, name: str, total: int) -> float:
  """Mean of a per-segment mean loss over the segments that cover the last 10% of the steps."""
  tail = max(1, total // 10)
  steps = [0] + [r["step"] for r in history]
  rows = [(r[name][0], s1 - s0) for r, s0, s1 in zip(history, steps, steps[1:]) if s1 > total - tail]
  if len(rows) == 1:
    return float(rows[0][0])
  return float(np.average([v for v, _ in rows], weights=[n for _, n in rows]))


def train_gan(config, x_truth, keys: dict, workdir: str | None,
              on_segment_end: Callable[[int], None] | None = None):
  """(generator state, driver Result) of the GAN trained on x_truth (resumed from workdir if there)."""
  g, dim = config.gan, x_truth.shape[1]
  shift, scale = gan.standardization(x_truth, bool(g.model.standardize))
  members = gan.make_members(g, dim, shift, scale)
  loop = driver.Loop(members, x_truth, total_steps=int(g.train.steps), segment_steps=int(g.train.eval_every),
                     mean_metrics=("d_loss", "g_loss"), keep=gan.generator_state, name="dctr-gan")
  state0 = members.init(gan.init_keys(keys["gan_init"], keys["gan_train"])[None])
  result = driver.run(loop, state0, workdir, on_segment_end=on_segment_end)
  return jax.tree.map(lambda a: a[0], gan.generator_state(result.state)), result


def run(config, workdir: str, log=print,
        on_segment_end: Callable[[str, int], None] | None = None) -> dict:
  """Train (or resume) GAN + DCTR on config.data.toy, evaluate, write outputs into workdir; returns metrics.
  on_segment_end(stage, step) is called after every saved segment of stage 'gan' and 'reweight'."""
  check_config(config)
  io.claim_workdir(workdir, config)
  t_start = time.time()
  toy = get_toy(config.data.toy)
  key = jax.random.PRNGKey(config.seed)
  k = {name: jax.random.fold_in(key, i) for i, name in enumerate(_STREAMS)}
  hook = (lambda stage: None) if on_segment_end is None else (lambda stage: lambda s: on_segment_end(stage, s))

  x_truth = toy.sample(k["truth"], config.data.n_truth)
  t0 = time.time()
  gs, gan_result = train_gan(config, x_truth, k, workdir, hook("gan"))
  generate = gan.make_generate(config.gan, toy.dim)
  x_gen = np.asarray(generate(gs, k["gen"], config.data.n_generated))
  gan_seconds = time.time() - t0
  x_eval_t = np.asarray(toy.sample(k["eval_truth"], config.data.n_eval))
  x_eval_g = np.asarray(generate(gs, k["eval_gen"], config.data.n_eval))
  if not np.all(np.isfinite(x_eval_g)):
    raise TrainingDivergedError(f"the GAN produced {int(np.sum(~np.isfinite(x_eval_g)))} non-finite values")

  t0 = time.time()
  rw, log_weight_fn, rw_report = reweight.fit(_columns(np.asarray(x_truth)), _columns(x_gen), config.reweight,
                                              key=k["reweight"], workdir=os.path.join(workdir, "reweight"),
                                              on_segment_end=hook("reweight"))
  log_w = np.asarray(log_weight_fn(rw, jnp.asarray(x_eval_g)))
  w_eval, clip_info = reweight.finalize_weights(log_w, config.reweight.clip, config.reweight.normalize)
  rw_report["weights"] = {**clip_info, **reweight.weight_summary(w_eval)}
  reweight_seconds = time.time() - t0

  obs_t = observables(x_eval_t, toy.center)
  obs_g = observables(x_eval_g, toy.center)
  report = observable_report(obs_t, obs_g, w_eval, n_bins=config.eval.n_bins)
  clip_scan = {}  # the S^2-vs-dilution trade-off of the clipping threshold, same classifier
  for clip in config.eval.clip_scan:
    w_c, info_c = reweight.finalize_weights(log_w, clip, config.reweight.normalize)
    s = observable_report(obs_t, obs_g, w_c, n_bins=config.eval.n_bins)["summary"]
    clip_scan[str(clip) if clip > 0 else "none"] = {
      "fraction_clipped": info_c["fraction_clipped"], **{key_: s[key_] for key_ in (
        "median_s2_ratio", "median_r_weighted", "max_r_weighted", "n_eff_fraction")}}
  steps = int(config.gan.train.steps)
  metrics = {
    "toy": config.data.toy, "preset": config.preset,
    "config": json.loads(config.to_json()),
    "gan": {"d_loss_last10pct": _tail_mean(gan_result.history, "d_loss_mean", steps),
            "g_loss_last10pct": _tail_mean(gan_result.history, "g_loss_mean", steps),
            "resumed_from_step": gan_result.resumed_from, "seconds": gan_seconds},
    "reweight": rw_report,
    **report,
    "clip_scan": clip_scan,
    "seconds": {"gan": gan_seconds, "reweight": reweight_seconds, "total": time.time() - t_start},
    "device": str(jax.devices()[0].device_kind),
  }

  if config.eval.summary_events:  # statistics with truth-vs-truth nulls, before and after the DCTR weights
    from ganjax import evaluation
    n = int(config.eval.summary_events)
    metrics["evaluation"] = {name: evaluation.summary(x_eval_g, x_eval_t, truth_null=np.asarray(x_truth),
                                                      generated_weights=w, max_events=n, seed=config.seed)
                             for name, w in (("before_weights", None), ("after_weights", w_eval))}
    evaluation.write_report(metrics["evaluation"], os.path.join(workdir, "evaluation.md"), f"DCTR {config.data.toy}")
  from ganjax.plots import dctr as dctr_plots
  title = config.data.toy
  dctr_plots.plot_toy_densities(os.path.join(workdir, "densities.png"), x_eval_t, x_eval_g, w_eval,
                                density_fn=toy.density, bins=config.eval.scatter_bins, title=title)
  dctr_plots.plot_weights(os.path.join(workdir, "weights.png"), {title: w_eval})
  dctr_plots.plot_observables(os.path.join(workdir, "observables.png"), obs_t, obs_g, w_eval, report,
                              n_bins=config.eval.n_bins)
  dctr_plots.plot_summary(os.path.join(workdir, "summary.png"), [report], [title])
  io.write_json(os.path.join(workdir, "metrics.json"), metrics)  # last: its presence marks a finished run
  log(json.dumps({"toy": metrics["toy"], **metrics["summary"], "seconds": metrics["seconds"]}, indent=1))
  return metrics
