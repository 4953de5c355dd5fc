"""Members of the main job's studies as one program: vmap vs lax.map vs a Python loop of single runs.

  python benchmarks/hgg_members.py --members=4 --epochs=2            # quick preset networks and data

Times one jitted training segment (`--epochs` epochs of the quick preset: 8k events, batch 128) for M members
(compile separate, best of `--repeats`), and one S-sample metric evaluation. Prints a table for
docs/benchmarks.md. On CPU, vmapping members with different convolution weights turns the convolutions into
grouped convolutions; this script measures what that costs against lax.map and the plain loop.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import hgg as hgg_config
from ganjax import hgg
from ganjax.data import gjets
from ganjax.train.gan import set_hyperparams
from multisample_eval import best_time  # benchmarks/multisample_eval.py (this script's directory)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--members", type=int, default=4)
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--preset", default="quick")
  a = p.parse_args()
  config = hgg_config.get_config(a.preset)
  config.train.devices = 1
  events = gjets.simulate(config.data.n_events, seed=0)
  sr, cr = gjets.split_regions(events)
  import tempfile
  run = hgg.setup_run(config, tempfile.mkdtemp(), regions=(sr, cr, "sim"))
  fns, data, M = run.fns, run.data, a.members
  keys = jax.random.split(jax.random.PRNGKey(0), M)
  eps = jnp.linspace(0.0, 0.3, M)
  states = jax.jit(jax.vmap(lambda k, e: set_hyperparams(fns.init(k), label_noise=e)))(keys, eps)
  val_ev = run.val_set[0]
  ids = jnp.arange(config.metric.n_samples)
  rows = []
  for mode in ("vmap", "map"):
    over = hgg.members_map(mode)
    seg = jax.jit(lambda st, k, n: over(lambda sk: fns.train_segment(sk[0], sk[1], data, n), (st, k)),
                  static_argnums=2)
    hist = jax.jit(lambda pg, k: over(lambda pk: run.hist_fn(pk[0], pk[1], val_ev, ids), (pg, k)))
    t = time.perf_counter()
    jax.block_until_ready(seg(states, keys, a.epochs))
    compile_s = time.perf_counter() - t
    train_s = best_time(lambda: seg(states, keys, a.epochs), a.repeats)
    jax.block_until_ready(hist(states.params_g, keys))
    eval_s = best_time(lambda: hist(states.params_g, keys), a.repeats)
    rows.append((f"one program, {mode}", compile_s, train_s, eval_s))
  single = jax.jit(fns.train_segment, static_argnums=3)
  hist1 = jax.jit(lambda pg, k: run.hist_fn(pg, k, val_ev, ids))
  one = lambda i: jax.tree.map(lambda x: x[i], states)
  t = time.perf_counter()
  jax.block_until_ready(single(one(0), keys[0], data, a.epochs))
  compile_s = time.perf_counter() - t
  train_s = best_time(lambda: [single(one(i), keys[i], data, a.epochs) for i in range(M)], a.repeats)
  jax.block_until_ready(hist1(one(0).params_g, keys[0]))
  eval_s = best_time(lambda: [hist1(one(i).params_g, keys[i]) for i in range(M)], a.repeats)
  rows.append(("Python loop of single runs", compile_s, train_s, eval_s))
  print(f"{M} members, {a.epochs} epochs of {fns.steps_per_epoch} steps (preset {a.preset}), "
        f"metric S={config.metric.n_samples} on {val_ev.n_events} events; device {jax.devices()[0]}")
  print("| how | compile s | train s/epoch (all members) | metric s (all members) |")
  print("| --- | --- | --- | --- |")
  for name, c, tr, ev in rows:
    print(f"| {name} | {c:.1f} | {tr / a.epochs:.2f} | {ev:.2f} |")


if __name__ == "__main__":
  main()
