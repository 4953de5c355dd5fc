"""Every accelerator figure the project quotes, in one command and one JSON file.

  python benchmarks/suite.py --out=runs/suite.json                 # sizes chosen by the backend
  python benchmarks/suite.py --size=tiny --out=/tmp/suite.json     # CI-sized, any machine

Sections (paper sizes on a GPU/TPU; tiny sizes on a CPU, in about two minutes):
  ensemble   GANplifying ensembles of 1, 10, 100, 1000 members at paper width (G/D 256 x 7, 1000 noise
             inputs) as one program each: compile time and member-steps/s (benchmarks/ensemble.py)
  metric     the S-sample validation metric at 100k events x S = 100, one jitted call, fp32 and bf16:
             objects/s (benchmarks/multisample_eval.py)
  hgg_epoch  one paper-scale epoch of the main job (100k SR training events, batch 1024, LAMB, full-width
             networks) and its validation metric (25k events, S = 100), extrapolated to the paper's 5000
             epochs with a metric evaluation after each
  flow_vs_gan  the main job's GAN next to the conditional spline flow (configs/hgg.py:<preset>[,flow]):
             training member-steps/s of M members in one program, generation and metric objects/s
             (benchmarks/flow_vs_gan.py; paper size: the full preset, 10 members)
On one H200/H100 the paper-sized suite is meant to finish in under 10 minutes (the 1000-member ensemble
dominates); `--skip` drops sections.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = {
    "paper": {"ensemble": {"members": (1, 10, 100, 1000), "width": 256, "depth": 7, "noise": 1000, "epochs": 2},
              "metric": {"n_events": 100_000, "n_samples": 100, "chunk": 32768, "dtypes": ("fp32", "bf16")},
              "hgg": {"preset": "full", "n_events": 2_700_000},
              "flow_vs_gan": {"preset": "full", "members": 10, "epochs": 1}},
    "tiny": {"ensemble": {"members": (1, 10), "width": 32, "depth": 2, "noise": 16, "epochs": 1},
             "metric": {"n_events": 4000, "n_samples": 5, "chunk": 4096, "dtypes": ("fp32",)},
             "hgg": {"preset": "test", "n_events": 6000},
             "flow_vs_gan": {"preset": "test", "members": 2, "epochs": 1}},
}


def bench_ensemble(s: dict) -> list:
  import ensemble
  c = ensemble.bench_config(s["width"], s["depth"], s["noise"])
  rows = []
  for m in s["members"]:
    r = ensemble.bench_vmapped(c, m, s["epochs"], reps=1)
    print(f"ensemble {m:>5} members: compile {r['compile_s']:.1f} s, {r['member_steps_per_s']:,.0f} member-steps/s",
          flush=True)
    rows.append(r)
  return rows


def bench_metric(s: dict) -> dict:
  import multisample_eval
  return multisample_eval.run(s["n_events"], s["n_samples"], s["chunk"], repeats=2, dtypes=list(s["dtypes"]),
                              skip_loop=True)


def bench_hgg_epoch(s: dict) -> dict:
  """One training epoch and one validation metric of the main job, compiled ahead of time, then timed."""
  from configs import hgg as hgg_config
  from ganjax import hgg
  from ganjax.data import gjets
  from ganjax.metrics.likelihood import neg2_log_likelihood

  config = hgg_config.get_config(s["preset"])
  t0 = time.perf_counter()
  events = gjets.simulate(s["n_events"], seed=0, params=hgg.region_params(config))
  sr, cr = gjets.split_regions(events)
  simulate_s = time.perf_counter() - t0
  st = hgg.setup(config, tempfile.mkdtemp(), regions=(sr, cr, "simulator"))
  spe = st.train.spec.sampler.steps_per_epoch
  state = jax.jit(st.train.init)(jax.random.PRNGKey(0))
  segment = jax.jit(st.train.train_segment, static_argnums=2)
  t0 = time.perf_counter()
  seg_c = segment.lower(state, st.data, spe).compile()
  compile_train_s = time.perf_counter() - t0
  val_ev, val_real = st.val_set
  ids = jnp.arange(config.metric.n_samples)
  hist = jax.jit(st.hist_fn)
  t0 = time.perf_counter()
  hist_c = hist.lower(state.params["g"], jax.random.PRNGKey(1), val_ev, ids).compile()
  compile_metric_s = time.perf_counter() - t0
  state, _ = seg_c(state, st.data)          # warm-up
  jax.block_until_ready(hist_c(state.params["g"], jax.random.PRNGKey(1), val_ev, ids))
  t0 = time.perf_counter()
  state, losses = seg_c(state, st.data)
  jax.block_until_ready(state)
  epoch_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  counts = jax.block_until_ready(hist_c(state.params["g"], jax.random.PRNGKey(1), val_ev, ids))
  metric_s = time.perf_counter() - t0
  epochs = int(config.train.epochs)
  out = {"preset": s["preset"], "n_train": config.data.n_train, "n_val": config.data.n_val,
         "batch_size": config.train.batch_size, "steps_per_epoch": spe, "n_samples": config.metric.n_samples,
         "simulate_s": simulate_s, "compile_train_s": compile_train_s, "compile_metric_s": compile_metric_s,
         "epoch_s": epoch_s, "metric_s": metric_s, "epochs": epochs,
         "extrapolated_training_h": epochs * (epoch_s + metric_s) / 3600,
         "val_nll": neg2_log_likelihood(val_real, counts)}
  print(f"hgg {s['preset']}: epoch {epoch_s:.3f} s ({spe} steps), metric {metric_s:.3f} s (S={config.metric.n_samples}, "
        f"{config.data.n_val} events) -> {epochs} epochs ~ {out['extrapolated_training_h']:.2f} h", flush=True)
  return out


def bench_flow_vs_gan(s: dict) -> dict:
  """GAN vs flow on the main job (benchmarks/flow_vs_gan.py)."""
  import flow_vs_gan
  return flow_vs_gan.run(s["preset"], s["members"], s["epochs"], repeats=2)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--size", default="auto", choices=("auto", "paper", "tiny"))
  p.add_argument("--skip", default="", help="comma-separated sections to skip: ensemble, metric, hgg_epoch, "
                 "flow_vs_gan")
  p.add_argument("--out", default="suite.json")
  a = p.parse_args()
  size = a.size if a.size != "auto" else ("tiny" if jax.default_backend() == "cpu" else "paper")
  dev = jax.devices()[0]
  out = {"size": size, "device": dev.device_kind, "platform": dev.platform, "n_devices": jax.device_count(),
         "jax": jax.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu_count": os.cpu_count()}
  skip = set(filter(None, a.skip.split(",")))
  t_start = time.perf_counter()
  for name, fn in (("ensemble", bench_ensemble), ("metric", bench_metric), ("hgg_epoch", bench_hgg_epoch),
                   ("flow_vs_gan", bench_flow_vs_gan)):
    if name in skip:
      continue
    t0 = time.perf_counter()
    out[name] = fn(SIZES[size]["hgg" if name == "hgg_epoch" else name])
    out.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
    with open(a.out, "w") as f:  # after every section: a timed-out run keeps what it measured
      json.dump(out, f, indent=1, default=float)
  out["total_seconds"] = time.perf_counter() - t_start
  with open(a.out, "w") as f:
    json.dump(out, f, indent=1, default=float)
  print(f"suite ({size}) done in {out['total_seconds']:.0f} s on {dev.device_kind}: {a.out}")


if __name__ == "__main__":
  main()
