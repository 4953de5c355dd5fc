"""Members of the main job's studies as one program: vmap vs lax.map vs a Python loop of single runs.

  python benchmarks/hgg_members.py --members=4 --epochs=2            # quick preset networks and data

Times one jitted training segment (`--epochs` epochs of the quick preset: 8k events, batch 128) for M members
(compile separate, best of `--repeats`), and one S-sample metric evaluation, with the engine's member axis
(ganjax.engine.members: make_members / over_members, how = vmap or map). Prints a table for
docs/benchmarks.md. On CPU, vmapping members with different convolution weights turns the convolutions into
grouped convolutions; this script measures what that costs against lax.map and the plain loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax
import jax.numpy as jnp

from configs import hgg as hgg_config
from ganjax import engine, hgg
from ganjax.data import gjets
from ganjax.hgg.train import set_member_hyperparams
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
  s = hgg.setup(config, tempfile.mkdtemp(), regions=(sr, cr, "sim"))
  train, data, M = s.train, s.data, a.members
  spe = train.spec.sampler.steps_per_epoch
  n_steps = a.epochs * spe
  keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(M, dtype=jnp.uint32))
  eps = jnp.linspace(0.0, 0.3, M)
  states = jax.jit(jax.vmap(lambda k, e: set_member_hyperparams(train.init(k), label_noise=e)))(keys, eps)
  val_ev = s.val_set[0]
  ids = jnp.arange(config.metric.n_samples)
  rows = []
  for mode in ("vmap", "map"):
    members = engine.make_members(train, data_axis=None, how=mode)
    hist = jax.jit(engine.over_members(lambda pg, k: s.hist_fn(pg, k, val_ev, ids), (0, 0), mode))
    t = time.perf_counter()
    jax.block_until_ready(members.segment(states, data, n_steps))
    compile_s = time.perf_counter() - t
    train_s = best_time(lambda: members.segment(states, data, n_steps), a.repeats)
    jax.block_until_ready(hist(states.params["g"], keys))
    eval_s = best_time(lambda: hist(states.params["g"], keys), a.repeats)
    rows.append((f"one program, {mode}", compile_s, train_s, eval_s))
  single = jax.jit(train.train_segment, static_argnums=2)
  hist1 = jax.jit(lambda pg, k: s.hist_fn(pg, k, val_ev, ids))
  one = lambda i: jax.tree.map(lambda x: x[i], states)
  t = time.perf_counter()
  jax.block_until_ready(single(one(0), data, n_steps))
  compile_s = time.perf_counter() - t
  train_s = best_time(lambda: [single(one(i), data, n_steps) for i in range(M)], a.repeats)
  jax.block_until_ready(hist1(one(0).params["g"], keys[0]))
  eval_s = best_time(lambda: [hist1(one(i).params["g"], keys[i]) for i in range(M)], a.repeats)
  rows.append(("Python loop of single runs", compile_s, train_s, eval_s))
  print(f"{M} members, {a.epochs} epochs of {spe} steps (preset {a.preset}), "
        f"metric S={config.metric.n_samples} on {val_ev.n_events} events; device {jax.devices()[0]}")
  print("| how | compile s | train s/epoch (all members) | metric s (all members) |")
  print("| --- | --- | --- | --- |")
  for name, c, tr, ev in rows:
    print(f"| {name} | {c:.1f} | {tr / a.epochs:.2f} | {ev:.2f} |")


if __name__ == "__main__":
  main()
