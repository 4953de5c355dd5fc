"""Throughput scaling of the sharded GANplifying ensemble over 1, 2, 4, 8 devices.

  python benchmarks/ensemble_scaling.py                                  # 32 members, width 64, N = 1,2,4,8
  python benchmarks/ensemble_scaling.py --members 128 --width 256 --depth 7 --noise 1000 --epochs 20

Every device count N runs in its own subprocess (a JAX process cannot change its device count). On a
CPU-only host the child gets XLA_FLAGS=--xla_force_host_platform_device_count=N: N virtual devices that
share the machine's physical cores, so this measures the sharding machinery, not more hardware. On a
GPU/TPU host nothing is forced: the child shards over jax.local_devices()[:N] and counts above the local
device count are skipped. The total number of members is the same for every N (M/N per device, the member
axis sharded with a Mesh/NamedSharding as in ganjax.ganplify.train.make_members); each point AOT-compiles
one segment of --epochs epochs (compile time reported separately), runs it once to warm up, then times
--reps segments. One member-step = one D step (with the gradient penalty) + one G step on a batch of 10.
"host cores busy" = the child's CPU time / wall time while timed: how many cores it really got (on a CPU
backend; on an accelerator it is the host's dispatch work only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(args) -> dict:
  """One device count, in this process: the ensemble sharded over the first args.child local devices."""
  import jax

  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import ensemble  # benchmarks/ensemble.py

  n = args.child
  if jax.local_device_count() < n:
    raise SystemExit(f"asked for {n} devices, this process has {jax.local_device_count()}")
  c = ensemble.bench_config(args.width, args.depth, args.noise)
  r = ensemble.bench_vmapped(c, args.members, args.epochs, args.reps, devices=jax.local_devices()[:n])
  dev = jax.local_devices()[0]
  r.update(device=dev.device_kind, platform=dev.platform, width=args.width, depth=args.depth,
           noise=args.noise, epochs=args.epochs, reps=args.reps, cpu_count=os.cpu_count())
  return r


def probe() -> tuple[str, int]:
  """(platform, local device count) of a plain JAX process, asked in a subprocess so this one holds no
  accelerator memory while the children run."""
  out = subprocess.run([sys.executable, "-c", "import jax; d = jax.local_devices(); print(d[0].platform, len(d))"],
                       check=True, capture_output=True, text=True).stdout.split()
  return out[0], int(out[1])


def run_point(args, n: int, platform: str) -> dict:
  env = dict(os.environ)
  if platform == "cpu":
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    env["JAX_PLATFORMS"] = "cpu"
  cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), "--members", str(args.members),
         "--epochs", str(args.epochs), "--reps", str(args.reps), "--width", str(args.width), "--depth",
         str(args.depth), "--noise", str(args.noise)]
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f"{n} devices: child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  r["process_s"] = time.perf_counter() - t0
  return r


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--devices", default="1,2,4,8", help="device counts, each in its own process")
  ap.add_argument("--members", type=int, default=32, help="total members (a multiple of every device count)")
  ap.add_argument("--epochs", type=int, default=5, help="epochs (x10 member-steps per member) per segment")
  ap.add_argument("--reps", type=int, default=2, help="timed segments per point")
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--depth", type=int, default=3)
  ap.add_argument("--noise", type=int, default=64)
  ap.add_argument("--json", default="", help="append results as JSON lines to this file")
  ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.child:
    print(json.dumps(child(args)))
    return

  counts = sorted(int(n) for n in args.devices.split(",") if n)
  bad = [n for n in counts if args.members % n]
  if bad:
    raise SystemExit(f"--members={args.members} must be a multiple of every device count, not of {bad}")
  platform, n_local = probe()
  if platform != "cpu":
    skipped = [n for n in counts if n > n_local]
    if skipped:
      print(f"skipping {skipped}: only {n_local} {platform} devices", flush=True)
    counts = [n for n in counts if n <= n_local]
  print(f"{platform}: {'forced host devices on ' + str(os.cpu_count()) + ' cores' if platform == 'cpu' else n_local}"
        f"; {args.members} members, width {args.width} depth {args.depth} noise {args.noise}, "
        f"{args.reps} x {args.epochs} epochs timed", flush=True)
  print(f"{'devices':>7} {'members/dev':>11} {'compile_s':>9} {'run_s':>7} {'member-steps/s':>15} {'speed-up':>8} "
        f"{'efficiency':>10} {'host cores busy':>15}", flush=True)
  base = None
  for n in counts:
    r = run_point(args, n, platform)
    base = base or (n, r["member_steps_per_s"])  # speed-up relative to the first (smallest) count
    r["speedup"] = r["member_steps_per_s"] / base[1]
    r["efficiency"] = r["speedup"] / (n / base[0])
    print(f"{r['devices']:>7} {args.members // n:>11} {r['compile_s']:>9.1f} {r['run_s']:>7.2f} "
          f"{r['member_steps_per_s']:>15,.0f} {r['speedup']:>8.2f} {r['efficiency']:>10.2f} "
          f"{r['host_cpu_s'] / r['run_s']:>15.2f}", flush=True)
    if args.json:
      with open(args.json, "a") as f:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  main()
