"""Ensemble throughput of the GANplifying training: member-steps/s for M members as one vmapped program.

  python benchmarks/ensemble.py                                   # paper 1D setup, M = 1,10,100,1000
  python benchmarks/ensemble.py --width 64 --depth 3 --noise 64   # narrower nets
  python benchmarks/ensemble.py --members 1,10 --naive 1,10       # + naive per-member Python loop

One member-step = one D step + one G step on a batch of 10 (Sec. 2). Compile time (AOT lower+compile) is
reported separately from the steady-state run. Next to each measurement the script prints its own floor
estimate: max(compute floor, memory-traffic floor), with
  FLOPs/member-step  ~ 15 F_D + 4 F_G  (F_D: one D forward on the batch incl. the n^2 DeepSets pairs;
                        D step = G fwd + 2 x (fwd + input-grad vjp + double backward) ~ 13 F_D; G step ~ 3 F_G + 2 F_D)
  bytes/member-step  ~ 4 B x (19 P_D + 11 P_G)  (weights re-read by every pass that needs them: D 10x, G 3x;
                        gradients written/read 2x D, 1x G; Adam reads p, g, m, v and writes p, m, v: 7x each),
and the device's bandwidth and matmul rate measured here (a big fp32 add and matmul in JAX). At the paper
width (P_G ~ 0.65M, P_D ~ 0.48M) this is ~0.39 GFLOP and ~65 MB per member-step: traffic-bound on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from configs import ganplify as gconfig  # noqa: E402
from ganjax import engine  # noqa: E402
from ganjax.data import toys  # noqa: E402
from ganjax.ganplify.train import make_members  # noqa: E402


def bench_config(width: int = 256, depth: int = 7, noise: int = 1000):
  """configs/ganplify.py:1d (the paper's 1D setup) with G and D of the given width / depth / noise inputs."""
  c = gconfig.get_config("1d")
  c.model.g_width = c.model.d_width = width
  c.model.g_depth = c.model.d_depth = depth
  c.model.n_noise = noise
  if width != 256:
    c.model.embed = (width, width, 32)
  return c


def model_cost(c) -> dict:
  """Analytic parameter counts, FLOPs and fp32 bytes per member-step (see module docstring)."""
  m, d, n = c.model, 1, c.train.batch_size
  w_g, w_d, e = m.g_width, m.d_width, tuple(m.embed)
  p_g = (m.n_noise + 1) * w_g + (m.g_depth - 1) * (w_g + 1) * w_g + (w_g + 1) * d
  emb = [d, *e]
  p_emb = sum((a + 1) * b for a, b in zip(emb[:-1], emb[1:]))
  p_d = p_emb + (d + e[-1] + 1) * w_d + (m.d_depth - 1) * (w_d + 1) * w_d + (w_d + 1)
  f_g = 2 * n * (p_g)
  f_d = 2 * n * n * p_emb + 2 * n * (p_d - p_emb)
  return {"P_G": p_g, "P_D": p_d, "flops": 15 * f_d + 4 * f_g, "bytes": 4 * (19 * p_d + 11 * p_g)}


def device_rates() -> dict:
  """Measured fp32 streaming bandwidth (bytes/s) and matmul rate (FLOP/s) of the default device."""
  on_gpu = jax.devices()[0].platform != "cpu"
  n = (1 << 28) if on_gpu else (1 << 25)  # 1 GiB on GPU, 128 MiB on CPU
  add = jax.jit(lambda a: a + 1.0, donate_argnums=0)  # in place: read + write n floats, no allocation
  x = add(jnp.ones((n,), jnp.float32)).block_until_ready()
  t = np.inf
  for _ in range(5):
    t0 = time.perf_counter()
    x = add(x).block_until_ready()
    t = min(t, time.perf_counter() - t0)
  k = 8192 if on_gpu else 2048
  a = jnp.ones((k, k), jnp.float32)
  mm = jax.jit(lambda u: u @ u)
  mm(a).block_until_ready()
  tm = min(_timeit(lambda: mm(a).block_until_ready()) for _ in range(3))
  return {"bandwidth": 2 * 4 * n / t, "matmul_flops": 2 * k ** 3 / tm}


def _timeit(f) -> float:
  t0 = time.perf_counter()
  f()
  return time.perf_counter() - t0


def bench_vmapped(c, n_members: int, n_epochs: int, reps: int, devices=None) -> dict:
  """AOT-compile the ensemble segment, then time `reps` segments of n_epochs epochs.

  devices: where to shard the member axis (default: all local devices if they divide n_members, else one).
  """
  c.n_members = n_members
  if devices is None:
    devices = None if n_members % jax.local_device_count() == 0 else jax.local_devices()[:1]
  ens = make_members(c, n_members, 1, devices=devices)
  spe = ens.train.spec.sampler.steps_per_epoch
  x = jax.device_put(toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), n_members,
                                           c.data.n_train), ens.sharding)
  state = ens.init(engine.member_keys(0, n_members))
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  compiled = ens.segment_jit.lower(state, x, n_epochs * spe).compile()
  t_compile = time.perf_counter() - t0
  state, _ = compiled(state, x)  # warm-up
  jax.block_until_ready(state)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(reps):
    state, m = compiled(state, x)
  jax.block_until_ready((state, m))
  dt, cpu = time.perf_counter() - t0, time.process_time() - c0
  steps = reps * n_epochs * spe
  return {"members": n_members, "compile_s": t_compile, "run_s": dt, "member_steps": n_members * steps,
          "member_steps_per_s": n_members * steps / dt, "devices": int(ens.sharding.mesh.devices.size),
          "host_cpu_s": cpu}  # CPU time of this process while timed: ~ run_s x cores it got (on a CPU backend)


def bench_naive(c, n_members: int, n_epochs: int) -> dict:
  """A PyTorch-style loop: Python over members and steps, one jitted D+G step dispatched per member-step."""
  train = make_members(c, 1, 1).train
  x = np.asarray(toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), n_members, c.data.n_train))
  states = [jax.jit(train.init)(k) for k in engine.member_keys(0, n_members)]
  step = jax.jit(lambda s, b, i: train.train_step(s, b, jax.random.fold_in(s.key, i), b))
  t0 = time.perf_counter()
  jax.block_until_ready(step(states[0], x[0, :c.train.batch_size], 0))
  t_compile = time.perf_counter() - t0
  rng = np.random.default_rng(0)
  spe, bs = train.spec.sampler.steps_per_epoch, c.train.batch_size
  t0 = time.perf_counter()
  for m in range(n_members):
    for e in range(n_epochs):
      batches = x[m][rng.permutation(c.data.n_train)].reshape(spe, bs, -1)
      for i in range(spe):
        states[m], _ = step(states[m], batches[i], e * spe + i)
  jax.block_until_ready(states)
  dt = time.perf_counter() - t0
  ms = n_members * n_epochs * spe
  return {"members": n_members, "compile_s": t_compile, "run_s": dt, "member_steps": ms,
          "member_steps_per_s": ms / dt, "naive": True}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--members", default="1,10,100,1000")
  ap.add_argument("--epochs", type=int, default=2, help="epochs (x10 steps) per timed segment")
  ap.add_argument("--reps", type=int, default=1, help="timed segments per point")
  ap.add_argument("--width", type=int, default=256)
  ap.add_argument("--depth", type=int, default=7)
  ap.add_argument("--noise", type=int, default=1000)
  ap.add_argument("--naive", default="", help="member counts for the naive per-member Python loop")
  ap.add_argument("--json", default="", help="append results as JSON lines to this file")
  args = ap.parse_args()

  c = bench_config(args.width, args.depth, args.noise)
  cost = model_cost(c)
  rates = device_rates()
  floor_s = max(cost["flops"] / rates["matmul_flops"], cost["bytes"] / rates["bandwidth"])
  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} x{jax.local_device_count()} ({dev.platform}); width {args.width} depth "
        f"{args.depth} noise {args.noise}: P_G={cost['P_G']:,} P_D={cost['P_D']:,}")
  print(f"per member-step: {cost['flops'] / 1e9:.3f} GFLOP, {cost['bytes'] / 1e6:.1f} MB; measured "
        f"{rates['matmul_flops'] / 1e9:.1f} GFLOP/s matmul, {rates['bandwidth'] / 1e9:.1f} GB/s stream -> "
        f"floor {1 / floor_s:,.0f} member-steps/s (compute {rates['matmul_flops'] / cost['flops']:,.0f}, "
        f"traffic {rates['bandwidth'] / cost['bytes']:,.0f})")
  print(f"{'members':>8} {'mode':>7} {'compile_s':>9} {'run_s':>7} {'member-steps/s':>15} {'floor':>9} "
        f"{'100x100k steps':>15}")
  runs = [("vmap", int(m)) for m in args.members.split(",") if m]
  runs += [("naive", int(m)) for m in args.naive.split(",") if m]
  for mode, m in runs:
    r = bench_vmapped(c, m, args.epochs, args.reps) if mode == "vmap" else bench_naive(c, m, args.epochs)
    r.update(mode=mode, width=args.width, depth=args.depth, noise=args.noise, device=dev.device_kind,
             floor_member_steps_per_s=1 / floor_s, **cost)
    print(f"{m:>8} {mode:>7} {r['compile_s']:>9.1f} {r['run_s']:>7.2f} {r['member_steps_per_s']:>15,.0f} "
          f"{1 / floor_s:>9,.0f} {1e7 / r['member_steps_per_s']:>14,.0f}s", flush=True)
    if args.json:
      with open(args.json, "a") as f:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  main()
