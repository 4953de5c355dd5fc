"""DCTR on the multimodal Gaussian toys (DCTR paper Sec. III A, Figs. 1, 2, 8).

  python experiments/dctr_toys.py --config=configs/dctr_toys.py:circle --workdir=runs/dctr_circle
  python experiments/dctr_toys.py --combine=runs/dctr_bimodal,runs/dctr_circle,runs/dctr_grid \
      --workdir=runs/dctr_toys_all

One run: sample a truth set from the analytic toy; train the small GAN (lax.scan, one jit); draw GAN events;
fit the DCTR classifier on truth vs GAN; apply it to an independent GAN evaluation sample and compare with an
independent truth evaluation sample: <S^2> (Eq. 15) and r (Sec. II B) per observable before and after
weighting, N_eff. Writes metrics.json, densities.png (Fig. 1), weights.png (Fig. 2), observables.png
(Figs. 3-6 style), summary.png (Fig. 8). --combine pools finished runs into one summary (JSON + Fig. 8).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganjax import reweight
from ganjax.data.dctr_toys import get_toy, observables
from ganjax.io import write_json
from ganjax.metrics.dilution import observable_report
from ganjax.plots import dctr as dctr_plots
from ganjax.train.small_gan import make_train

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/dctr_toys.py:<preset>", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory", required=True)
_COMBINE = flags.DEFINE_list("combine", None, "workdirs of finished runs to pool into one summary")


def _columns(x_NxD: np.ndarray) -> dict[str, np.ndarray]:
  return {f"x{i}": np.asarray(x_NxD[:, i]) for i in range(x_NxD.shape[1])}


def run(config, workdir: str) -> dict:
  """Train GAN + DCTR on config.toy, evaluate, write outputs into workdir; returns the metrics dict."""
  os.makedirs(workdir, exist_ok=True)
  t_start = time.time()
  toy = get_toy(config.toy)
  key = jax.random.key(config.seed)
  k = {name: jax.random.fold_in(key, i) for i, name in enumerate(
    ["truth", "gan_init", "gan_train", "gen", "reweight", "eval_truth", "eval_gen"])}

  x_truth = toy.sample(k["truth"], config.n_truth)
  init, train_segment, generate = make_train(config.gan)
  t0 = time.time()
  state, hist = train_segment(init(k["gan_init"], x_truth), k["gan_train"], x_truth, int(config.gan.n_steps))
  jax.block_until_ready(state)
  gan_seconds = time.time() - t0
  x_gen = np.asarray(generate(state, k["gen"], config.n_generated))
  x_eval_t = np.asarray(toy.sample(k["eval_truth"], config.n_eval))
  x_eval_g = np.asarray(generate(state, k["eval_gen"], config.n_eval))
  if not np.all(np.isfinite(x_eval_g)):
    raise FloatingPointError(f"GAN produced {int(np.sum(~np.isfinite(x_eval_g)))} non-finite values")

  t0 = time.time()
  rw, log_weight_fn, rw_report = reweight.fit(_columns(np.asarray(x_truth)), _columns(x_gen), config.reweight,
                                              key=k["reweight"])
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
  d_loss, g_loss = np.asarray(hist["d_loss"]), np.asarray(hist["g_loss"])
  tail = max(1, len(d_loss) // 10)
  metrics = {
    "toy": config.toy, "preset": config.preset,
    "config": json.loads(config.to_json()),
    "gan": {"d_loss_last10pct": float(d_loss[-tail:].mean()), "g_loss_last10pct": float(g_loss[-tail:].mean()),
            "seconds": gan_seconds},
    "reweight": rw_report,
    **report,
    "clip_scan": clip_scan,
    "seconds": {"gan": gan_seconds, "reweight": reweight_seconds, "total": time.time() - t_start},
    "device": str(jax.devices()[0].device_kind),
  }
  write_json(os.path.join(workdir, "metrics.json"), metrics)

  title = config.toy
  dctr_plots.plot_toy_densities(os.path.join(workdir, "densities.png"), x_eval_t, x_eval_g, w_eval,
                                density_fn=toy.density, bins=config.eval.scatter_bins, title=title)
  dctr_plots.plot_weights(os.path.join(workdir, "weights.png"), {title: w_eval})
  dctr_plots.plot_observables(os.path.join(workdir, "observables.png"), obs_t, obs_g, w_eval, report,
                              n_bins=config.eval.n_bins)
  dctr_plots.plot_summary(os.path.join(workdir, "summary.png"), [report], [title])
  return metrics


def combine(workdirs: list[str], out: str) -> dict:
  """Pool the per-observable results of finished runs: one summary JSON and one Fig. 8."""
  reports, labels, rows = [], [], {}
  for d in workdirs:
    path = os.path.join(d, "metrics.json")
    if not os.path.exists(path):
      raise ValueError(f"--combine: {path} does not exist (run the toy first)")
    with open(path) as f:
      m = json.load(f)
    seed = m["config"].get("seed", 0)
    label = m["toy"] if seed == 0 else f"{m['toy']}_seed{seed}"  # several seeds of one toy stay apart
    if label in labels:
      raise ValueError(f"--combine: {path} repeats toy/seed {label!r}")
    reports.append(m)
    labels.append(label)
    for name, v in m["observables"].items():
      rows[f"{label}/{name}"] = v
  ratios = np.array([v["s2_ratio"] for v in rows.values()])
  r_w = np.array([v["r_weighted"] for v in rows.values()])
  summary = {"runs": workdirs, "n_observables": len(rows), "median_s2_ratio": float(np.nanmedian(ratios)),
             "median_r_weighted": float(np.median(r_w)), "max_r_weighted": float(np.max(r_w)),
             "per_toy": {label: m["summary"] for label, m in zip(labels, reports)}, "observables": rows}
  os.makedirs(out, exist_ok=True)
  write_json(os.path.join(out, "summary.json"), summary)
  dctr_plots.plot_summary(os.path.join(out, "summary.png"), reports, labels)
  return summary


def main(argv):
  del argv
  if _COMBINE.value:
    s = combine(_COMBINE.value, _WORKDIR.value)
    print(json.dumps({k: s[k] for k in ("n_observables", "median_s2_ratio", "median_r_weighted")}))
    return
  if _CONFIG.value is None:
    raise app.UsageError("--config=configs/dctr_toys.py:<preset> is required (or --combine)")
  m = run(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({"toy": m["toy"], **m["summary"], "seconds": m["seconds"]}, indent=1))


if __name__ == "__main__":
  app.run(main)
