"""The hgg paper's studies (Sec. 2.5, 3.1; Figs. 2-4) as runs of the main job.

  python experiments/hgg_studies.py --study=samples    --preset=quick --workdir=runs/studies  # Fig. 2
  python experiments/hgg_studies.py --study=strategies --preset=quick --workdir=runs/studies  # Fig. 3
  python experiments/hgg_studies.py --study=latent     --preset=quick --workdir=runs/studies  # Fig. 4
  python experiments/hgg_studies.py --study=optimizer  --preset=quick --workdir=runs/studies
  python experiments/hgg_studies.py --study=label_noise --preset=quick --workdir=runs/studies  # vmapped
  python experiments/hgg_studies.py --study=learning_rate --preset=quick --workdir=runs/studies  # vmapped
  python experiments/hgg_studies.py --study=seeds      --preset=quick --workdir=runs/studies  # vmapped
  python experiments/hgg_studies.py --study=batch_size --preset=quick --workdir=runs/studies

`--preset` is a configs/hgg.py preset ("" = the paper's recipe, for a GPU). Variants that change shapes
(strategy, latent dimension, optimizer, batch size) are runs of `ganjax.hgg.run` in
<workdir>/<study>/<variant>, one after the other (each resumable). Variants that share shapes (label noise,
learning rate, seeds) are the members of ONE program, `ganjax.hgg.train_members`, in
<workdir>/<study>/members (add --sequential to run them one by one instead). The study writes
<workdir>/<study>/summary.json and a figure of the validation -2lnL histories. Device and runtime: the
quick preset takes ~3-5 min per variant on a 2-core CPU (a vmapped study about the same per member there:
the CPU is compute bound; on a GPU the members run side by side).

samples: one training; the validation metric is recorded with S = 1, 10 and 100 generations per event at
every evaluation, each curve shifted by its mean over the late window (the paper shifts by the geometric
mean of Lambda over the last 1000 epochs), and the std of each curve over that window is reported: the
fluctuation should fall with S (by >= 5x from S=1 to S=100). The late window is the paper's when the
training goes on after the lr decay has reached 0 (train.optimizer.decay_length < train.epochs: Fig. 2 runs
6000 epochs with the decay reaching 0 at 5000, Sec. 3.1, window 5000-6000): the epochs after decay_length.
Otherwise it is the last third of the recorded evaluations, and the std mixes the generator still moving
between epochs with the metric's own sampling noise. The paper's window at quick scale (2-core CPU, 10 min:
120 epochs, decay over 100, the paper's 25,000 validation events, S = 1/100 recorded from epoch 101 on):

  python experiments/hgg_studies.py --study=samples --preset=quick --workdir=runs/studies_window \
      --set train.epochs=120 --set train.optimizer.decay_length=100 --set train.eval_every=1 \
      --set data.n_events=600000 --set data.n_val=25000 --set metric.history_from=101 --sampling_keys=0

The sampling noise is also measured alone (`sampling_spread`): the best generator, the validation metric
re-evaluated with --sampling_keys independent latent keys for each S.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganjax import hgg, io  # noqa: E402
from ganjax.hgg import metric  # noqa: E402
from ganjax.plots.style import hep_style, save_figure  # noqa: E402
from ganjax.progress import Progress  # noqa: E402

_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "hgg.py")
_spec = importlib.util.spec_from_file_location("hgg_config", _CONFIG)
hgg_config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hgg_config)

STUDIES = {
    "strategies": [("vanilla", {"strategy": "vanilla"}), ("partial", {"strategy": "partial"}),
                   ("full", {"strategy": "full"})],
    "latent": [(f"latent{n}", {"model.latent_dim": n}) for n in (4, 8, 16, 32, 64)],
    "optimizer": [(name, {"train.optimizer.name": name}) for name in ("sgd", "adam", "lamb")],
    "label_noise": [(f"eps{e:g}", {"train.label_noise": e}) for e in (0.0, 0.05, 0.15, 0.3)],
    "batch_size": [(f"batch{b}", {"train.batch_size": b}) for b in (64, 128, 256, 512)],
    "learning_rate": [(f"lr{lr:g}", {"train.optimizer.learning_rate": lr}) for lr in (3e-4, 1e-3, 3e-3)],
    "seeds": [(f"seed{s}", {"seed": s}) for s in range(4)],
    "samples": [("S1-10-100", {"metric.history_samples": (1, 10, 100), "metric.n_samples": 10})],
}
VMAPPED = ("label_noise", "learning_rate", "seeds")  # members share every shape: one program


def _override(config, key: str, value):
  node = config
  *path, leaf = key.split(".")
  for p in path:
    node = node[p]
  node[leaf] = value


def late_window_start(config) -> int | None:
  """The epoch after which the late window starts: the end of the lr decay when training goes on past it
  (the paper's Fig. 2: decay reaches 0 at epoch 5000 of 6000, window 5000-6000), else None (last third)."""
  decay = int(config.train.optimizer.decay_length)
  return decay if 0 < decay < config.train.epochs else None


def _floats(values) -> np.ndarray:
  """A recorded history (None where an evaluation was not recorded) as floats with NaN there."""
  return np.asarray([np.nan if v is None else v for v in values], float)


def fluctuation(values, epochs, window_start: int | None = None, tail_fraction: float = 1 / 3) -> dict:
  """Mean and std of a metric history over the late window: the evaluations after `window_start` if given,
  else the last `tail_fraction` of the recorded ones. Unrecorded values (None/NaN) are skipped."""
  values = _floats(values)
  epochs = np.asarray(epochs)
  recorded = np.flatnonzero(np.isfinite(values))
  if window_start is not None:
    idx = recorded[epochs[recorded] > window_start]
  else:
    idx = recorded[-max(2, int(round(len(recorded) * tail_fraction))):]
  if len(idx) < 2:
    raise ValueError(f"the late window holds {len(idx)} recorded evaluation(s); need >= 2 "
                     "(evaluate more often: train.eval_every, metric.history_from)")
  tail = values[idx]
  return {"mean": float(np.mean(tail)), "std": float(np.std(tail, ddof=1)), "n": int(len(idx)),
          "epochs": [int(epochs[idx[0]]), int(epochs[idx[-1]])]}


def sampling_spread(config, workdir: str, s_values, n_keys: int = 20, n_events: int = 0) -> dict:
  """Std of the validation -2lnL of ONE generator (the run's best) over `n_keys` latent keys, per S: the
  metric's pure sampling noise. It falls like 1/sqrt(S) only once the generated histogram is well filled
  (N S >> number of bins); for sparse histograms the empty-bin floor caps it (docs/results.md).

  n_events > 0 (simulator only): instead of the run's validation set, an independent SR sample of that
  size simulated with sim_seed + 1 (e.g. the paper's 25,000 validation events for a quick-preset generator).
  """
  import jax
  from ganjax.data import gjets
  run = hgg.setup(config, workdir)
  params_g = hgg.restore_best(run, workdir)
  val_ev, val_m = run.val_set
  if n_events:
    if config.data.source != "simulate":
      raise ValueError("sampling_spread(n_events > 0) simulates its own events: data.source must be 'simulate'")
    prep, gen_names, chunk = run.prep, run.prep.gen_names, config.metric.chunk
    sr = {}
    n_sim = 4 * n_events
    while len(sr.get(gen_names[0], ())) < n_events:
      sr, _ = gjets.split_regions(gjets.simulate(n_sim, seed=config.data.sim_seed + 1,
                                                 params=hgg.region_params(config)))
      n_sim *= 2
    table = {k: v[:n_events] for k, v in sr.items()}
    aux = metric.aux_columns(prep.metric_dims, gen_names, prep.relative)
    val_ev = metric.pad_events(prep.cond(table, 4), {a: table[a] for a in aux}, chunk)
    val_m = metric.real_histogram(table, gen_names, prep.metric_dims, prep.gen_qt, prep.metric_qt,
                                    config.metric.n_bins)
  spread = metric.metric_spread(jax.jit(run.hist_fn), params_g, val_ev, val_m, s_values, n_keys)
  return {k: {**v, "events": int(val_ev.n_events)} for k, v in spread.items()}


def run_vmapped(study: str, preset: str, workdir: str, overrides: dict | None = None, report: bool = False) -> dict:
  """A study whose variants differ only in seed / label noise / learning rate: one hgg.train_members run.
  report: also each member's physics validation (chi, S^2 checks with their floors, eta regions)."""
  out_dir = os.path.join(workdir, study)
  config = hgg_config.get_config(preset)
  for k, v in (overrides or {}).items():
    _override(config, k, v)
  t0 = time.time()
  out = hgg.train_members(config, os.path.join(out_dir, "members"), [changes for _, changes in STUDIES[study]],
                          report=report)
  summary = {"study": study, "preset": preset, "vmapped": True, "seconds": time.time() - t0, "variants": {}}
  for (name, _), m in zip(STUDIES[study], out["members"]):
    hist = m["history"]
    summary["variants"][name] = {
        "epochs": hist["epoch"], "val_nll": hist["val_nll"], "train_nll": hist["train_nll"],
        "best_epoch": m["best_epoch"], "best_val_nll": m["best_val_nll"], "final_val_nll": hist["val_nll"][-1],
        "test_nll": m["test_nll"], "s2_fake_pt_ratio": m["s2_fake_pt_ratio"],
        "diverged_at_epoch": m["diverged_at_epoch"], "seconds": out["seconds"] / len(out["members"])}
    if report:
      v = m["validation"]
      summary["variants"][name].update(chi=v["summary"]["chi"], s2_check=v["s2_check"],
                                       eta_regions=v["eta_regions"])
  best = [e["best_val_nll"] for e in summary["variants"].values()]
  summary["best_val_nll_mean"], summary["best_val_nll_std"] = float(np.mean(best)), float(np.std(best, ddof=1))
  io.write_json(os.path.join(out_dir, "summary.json"), summary)
  plot(summary, os.path.join(out_dir, f"{study}.png"))
  return summary


def run_study(study: str, preset: str, workdir: str, overrides: dict | None = None,
              sequential: bool = False, sampling_keys: int = 20, spread_events: int = 0,
              report: bool = False) -> dict:
  """Run every variant of a study; returns (and writes) the summary."""
  if study in VMAPPED and not sequential:
    return run_vmapped(study, preset, workdir, overrides, report)
  out_dir = os.path.join(workdir, study)
  summary = {"study": study, "preset": preset, "variants": {}}
  bar = Progress(len(STUDIES[study]), f"study {study}", unit="variant")
  for name, changes in STUDIES[study]:
    config = hgg_config.get_config(preset)
    for k, v in {**changes, **(overrides or {})}.items():
      _override(config, k, v)
    t0 = time.time()
    m = hgg.run(config, os.path.join(out_dir, name))
    hist = m["history"]
    entry = {"epochs": hist["epoch"], "val_nll": hist["val_nll"], "train_nll": hist["train_nll"],
             "best_epoch": m["best_epoch"], "best_val_nll": m["best_val_nll"],
             "final_val_nll": hist["val_nll"][-1], "test_nll": m["test_nll"],
             "s2_fake_pt_ratio": m["s2_fake_pt_ratio"], "seconds": time.time() - t0}
    if "validation" in m:
      entry["chi"] = m["validation"]["summary"]["chi"]
    window = late_window_start(config)
    for s in config.metric.history_samples:
      entry[f"val_nll_S{s}"] = hist[f"val_nll_S{s}"]
      entry[f"fluctuation_S{s}"] = fluctuation(hist[f"val_nll_S{s}"], hist["epoch"], window)
    if config.metric.history_samples:
      entry["late_window"] = (f"epochs {window + 1}-{config.train.epochs} (after the lr reached 0)"
                              if window is not None else "last third of the recorded evaluations")
    summary["variants"][name] = entry
    bar.update(1, variant=name, best_val_nll=float(m["best_val_nll"]))
  if study == "samples":
    e = next(iter(summary["variants"].values()))
    s_values = sorted(int(k.split("S")[-1]) for k in e if k.startswith("fluctuation_S"))
    if 1 in s_values and max(s_values) > 1:
      den = e[f"fluctuation_S{max(s_values)}"]["std"]
      summary["std_ratio_S1_over_Smax"] = e["fluctuation_S1"]["std"] / den if den > 0 else None
    if sampling_keys > 1:
      config = hgg_config.get_config(preset)
      for k, v in {**STUDIES[study][0][1], **(overrides or {})}.items():
        _override(config, k, v)
      spread = sampling_spread(config, os.path.join(out_dir, STUDIES[study][0][0]), s_values, sampling_keys,
                               spread_events)
      summary["sampling_spread"] = spread
      den = spread[f"S{max(s_values)}"]["std"]
      summary["sampling_std_ratio_S1_over_Smax"] = spread["S1"]["std"] / den if den > 0 else None
  io.write_json(os.path.join(out_dir, "summary.json"), summary)
  plot(summary, os.path.join(out_dir, f"{study}.png"))
  return summary


def plot(summary: dict, path: str) -> None:
  """Validation -2lnL versus epoch per variant (Figs. 3-4); for `samples`, the shifted S curves (Fig. 2),
  with a second panel zoomed on the late window where the fluctuation is measured."""
  samples = summary["study"] == "samples"
  with hep_style():
    fig, axes = plt.subplots(1, 2 if samples else 1, figsize=(11 if samples else 6, 4), squeeze=False)
    for name, e in summary["variants"].items():
      keys = [k for k in e if k.startswith("val_nll_S")] or ["val_nll"]
      epochs = np.asarray(e["epochs"])
      for k in keys:
        y = _floats(e[k])
        if samples:
          f = e["fluctuation_S" + k.split("S")[-1]]
          y = y - f["mean"]
        label = name if k == "val_nll" else k.replace("val_nll_", "")
        axes[0, 0].plot(epochs, y, label=label, lw=1.2)
        if samples:
          late = (epochs >= f["epochs"][0]) & np.isfinite(y)
          axes[0, 1].plot(epochs[late], y[late], lw=1.2, label=f"{label}: std {f['std']:.0f}")
      if samples and any(v is None for k in keys for v in e[k]):
        # The extra S were recorded only in the late window: show the selection metric's whole history too,
        # shifted by its mean over the same window.
        val = np.asarray(e["val_nll"])
        axes[0, 0].plot(epochs, val - val[epochs >= f["epochs"][0]].mean(), color="0.5", lw=0.8, zorder=0,
                        label="selection metric, every epoch")
    for ax in axes[0]:
      ax.set_xlabel("epoch")
      ax.set_ylabel(r"$-2\ln\Lambda$" + (" - late mean" if samples else " (validation)"))
      ax.legend(fontsize=8)
    if samples:
      axes[0, 0].set_yscale("symlog", linthresh=1000)  # early epochs are 1e5 above the late window
      axes[0, 1].set_title("late window: " + e.get("late_window", "last third"), fontsize=10)
    save_figure(fig, path)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--study", choices=sorted(STUDIES), required=True)
  p.add_argument("--preset", default="quick")
  p.add_argument("--workdir", required=True)
  p.add_argument("--sequential", action="store_true", help="run a vmappable study's variants one by one")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override for every variant, e.g. --set train.eval_every=2 (repeatable)")
  p.add_argument("--sampling_keys", type=int, default=20,
                 help="samples study: latent keys for the fixed-model sampling spread (0 = skip)")
  p.add_argument("--spread_events", type=int, default=0,
                 help="samples study: measure the sampling spread on this many independent simulated SR "
                      "events instead of the validation set (0 = the validation set)")
  p.add_argument("--report", action="store_true",
                 help="vmapped studies: each member's physics validation (chi, S^2 checks, eta regions)")
  a = p.parse_args()
  overrides = {}
  for kv in a.set:
    k, v = kv.split("=", 1)
    try:
      overrides[k] = ast.literal_eval(v)
    except (ValueError, SyntaxError):
      overrides[k] = v
  s = run_study(a.study, a.preset, a.workdir, overrides=overrides, sequential=a.sequential,
                sampling_keys=a.sampling_keys, spread_events=a.spread_events, report=a.report)
  for name, e in s["variants"].items():
    print(f"{name}: best val -2lnL {e['best_val_nll']:.1f} @ {e['best_epoch']}, final {e['final_val_nll']:.1f}, "
          f"S2 ratio {e['s2_fake_pt_ratio']:.3f}, {e['seconds']:.0f} s")
    if "s2_check" in e:
      print(f"  chi {e['chi']:.2f}; S^2 / floor: " + ", ".join(
          f"{k} {c['ganed'] / c['floor']:.2f}{'' if c['ok'] else ' (fails)'}" for k, c in e["s2_check"].items()))
  if "best_val_nll_std" in s:
    print(f"best val -2lnL over the members: {s['best_val_nll_mean']:.1f} +- {s['best_val_nll_std']:.1f} (std)")
  if s.get("std_ratio_S1_over_Smax") is not None:
    print(f"std of the late validation metric, S=1 over S=max: {s['std_ratio_S1_over_Smax']:.2f}")
  if "sampling_spread" in s:
    print("fixed-model sampling std: " + ", ".join(f"{k} {v['std']:.1f}" for k, v in s["sampling_spread"].items())
          + f" (S=1 over S=max: {s['sampling_std_ratio_S1_over_Smax']})")


if __name__ == "__main__":
  main()
