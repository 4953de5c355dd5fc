"""The main job's conditional GAN next to the conditional spline flow: training member-steps/s and generation
objects/s, in one run on the same data.

  python benchmarks/flow_vs_gan.py --preset=quick --members=3 --epochs=2      # CPU (docs/benchmarks.md)
  python benchmarks/flow_vs_gan.py --preset=full --members=10 --epochs=1      # GPU (benchmarks/suite.py)

For each kind (configs/hgg.py:<preset> and <preset>,flow): M members as one jitted program
(ganjax.engine.make_members, the member axis of the main job's studies: lax.map on CPU, vmap elsewhere)
train `--epochs` epochs (compile timed apart, best of `--repeats`) -> member-steps/s; one member's
generator applied to the CR in fixed chunks (ganjax.hgg.metric.make_generate_fn) -> objects/s; the S-sample
validation metric (one jitted call over S x N objects) -> objects/s; parameter counts (the GAN's G and D).
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
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import hgg as hgg_config  # noqa: E402
from ganjax import engine, hgg  # noqa: E402
from ganjax.data import gjets  # noqa: E402
from ganjax.hgg import metric  # noqa: E402
from ganjax.hgg.train import latent_dim  # noqa: E402


def best_time(fn, repeats: int) -> float:
  """Best wall time of `repeats` calls of fn (blocked until ready)."""
  out = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    out.append(time.perf_counter() - t)
  return min(out)


def run(preset: str = "quick", members: int = 3, epochs: int = 2, repeats: int = 2, regions=None,
        log=print) -> dict:
  """{kind: figures} for kind in (gan, flow) at configs/hgg.py:<preset>[,flow]."""
  if regions is None:
    cfg = hgg_config.get_config(preset)
    sr, cr = gjets.split_regions(gjets.simulate(cfg.data.n_events, seed=0, params=hgg.region_params(cfg)))
    regions = (sr, cr, "simulation")
  out = {}
  for kind in ("gan", "flow"):
    config = hgg_config.get_config(preset + (",flow" if kind == "flow" else ""))
    config.train.devices = 1
    s = hgg.setup(config, tempfile.mkdtemp(), regions=regions)
    train, spe = s.train, s.train.spec.sampler.steps_per_epoch
    n_steps = epochs * spe
    mem = engine.make_members(train, data_axis=None)
    state = mem.init(jax.vmap(jax.random.PRNGKey)(jnp.arange(members, dtype=jnp.uint32)))
    t = time.perf_counter()
    compiled = mem.segment_jit.lower(state, s.data, n_steps).compile()
    compile_s = time.perf_counter() - t
    train_s = best_time(lambda: compiled(state, s.data), repeats)
    params_g = jax.tree.map(lambda a: a[0], state.params["g"])
    cond_cr = jnp.asarray(s.prep.cond(s.prep.cr, 3))
    gen = jax.jit(metric.make_generate_fn(s.generator, latent_dim(config, len(s.prep.gen_names)),
                                          config.metric.chunk))
    jax.block_until_ready(gen(params_g, jax.random.PRNGKey(1), cond_cr))
    gen_s = best_time(lambda: gen(params_g, jax.random.PRNGKey(1), cond_cr), repeats)
    val_ev = s.val_set[0]
    ids = jnp.arange(config.metric.n_samples)
    hist = jax.jit(s.hist_fn)
    jax.block_until_ready(hist(params_g, jax.random.PRNGKey(2), val_ev, ids))
    hist_s = best_time(lambda: hist(params_g, jax.random.PRNGKey(2), val_ev, ids), repeats)
    n_par = {m: int(sum(np.size(a) // members for a in jax.tree.leaves(p))) for m, p in state.params.items()}
    r = {"members": members, "epochs": epochs, "steps_per_epoch": spe, "batch_size": int(config.train.batch_size),
         "compile_s": compile_s, "train_s": train_s, "member_steps_per_s": members * n_steps / train_s,
         "generate_objects_per_s": cond_cr.shape[0] / gen_s, "n_generated": int(cond_cr.shape[0]),
         "metric_objects_per_s": config.metric.n_samples * val_ev.n_events / hist_s,
         "metric_S": int(config.metric.n_samples), "metric_events": int(val_ev.n_events), "params": n_par}
    log(f"{kind}: compile {compile_s:.1f} s, {r['member_steps_per_s']:,.0f} member-steps/s ({members} members), "
        f"generation {r['generate_objects_per_s']:,.0f} objects/s, metric {r['metric_objects_per_s']:,.0f} "
        f"objects/s, parameters {n_par}")
    out[kind] = r
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="quick")
  p.add_argument("--members", type=int, default=3)
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--out", default="")
  a = p.parse_args()
  res = run(a.preset, a.members, a.epochs, a.repeats)
  dev = jax.devices()[0]
  print(f"preset {a.preset}, {a.members} members, {a.epochs} epochs; device {dev.device_kind} ({dev.platform}), "
        f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}")
  print("| model | parameters | compile s | training member-steps/s | generation objects/s | metric objects/s |")
  print("| --- | --- | --- | --- | --- | --- |")
  for kind, r in res.items():
    par = " + ".join(f"{v:,} ({m.upper()})" for m, v in sorted(r["params"].items(), key=lambda mv: mv[0] != "g"))
    print(f"| {kind} | {par} | {r['compile_s']:.1f} | {r['member_steps_per_s']:,.0f} | "
          f"{r['generate_objects_per_s']:,.0f} | {r['metric_objects_per_s']:,.0f} |")
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"device": dev.device_kind, "preset": a.preset, **res}, f, indent=1, default=float)


if __name__ == "__main__":
  main()
