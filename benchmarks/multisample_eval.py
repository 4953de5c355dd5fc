"""Throughput of the S-sample validation metric (hgg paper Eq. 2 with S generations per event).

Generated objects per second for N events x S samples, generator + metric binning + histogram, comparing
  one-call : all S x N generations and the histogram in one jitted XLA program (ganjax.hgg.metric)
  loop     : the naive version, a Python loop over the S samples calling a jitted one-sample function
in fp32 and bf16 (generator compute dtype). Compile time is reported separately.

Memory-traffic floor: every generated object writes and reads its activations once
(activations x bytes x 2 per object, from generator_flops_per_object), so
  floor_seconds = objects x activation_bytes x 2 / HBM bandwidth.
We print that floor for an H100 SXM (3.35 TB/s) next to the measurement; on a CPU it is only indicative.

  python benchmarks/multisample_eval.py                          # paper setup: 100k events x S=100
  python benchmarks/multisample_eval.py --n_events=20000 --n_samples=5   # CPU-sized
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data.preprocess import fit_quantile_transform
from ganjax.hgg import metric
from ganjax.metrics.likelihood import neg2_log_likelihood
from ganjax.models.dcgan import Generator, generator_flops_per_object

H100_HBM_BYTES_PER_S = 3.35e12
GEN = ("fake_pt", "fake_eta", "fake_phi", "fake_id")
DIMS = ("fake_pt", "fake_eta", "fake_id", "ptgg_over_mgg")


def _inputs(n_events: int, n_cond: int, chunk: int):
  rng = np.random.default_rng(0)
  phys = np.stack([rng.exponential(20, 50_000) + 30, rng.normal(0, 1.2, 50_000),
                   rng.uniform(-np.pi, np.pi, 50_000), rng.uniform(-1, 1, 50_000)], -1)
  gen_qt = fit_quantile_transform(phys, 1000)
  ratio = fit_quantile_transform(rng.exponential(0.15, (50_000, 1)), 1000)
  metric_qt = type(gen_qt)(knots_DxQ=np.stack([gen_qt.knots_DxQ[0], gen_qt.knots_DxQ[1], gen_qt.knots_DxQ[3],
                                               ratio.knots_DxQ[0]]), probs_Q=gen_qt.probs_Q)
  aux = {"pho_pt": rng.exponential(20, n_events) + 40, "pho_eta": rng.normal(0, 1.2, n_events),
         "pho_phi": rng.uniform(-np.pi, np.pi, n_events)}
  events = metric.pad_events(rng.uniform(-1, 1, (n_events, n_cond)), aux, chunk)
  real = rng.integers(0, 20, 10 ** len(DIMS))
  return gen_qt, metric_qt, events, real


def best_time(fn, repeats: int) -> float:
  """Best wall time of `repeats` calls of fn (blocking on its result)."""
  best = np.inf
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t)
  return best


def run(n_events: int, n_samples: int, chunk: int, repeats: int, dtypes, skip_loop: bool) -> dict:
  n_latent, n_cond = 32, 9
  gen_qt, metric_qt, events, real = _inputs(n_events, n_cond, chunk)
  params = Generator(n_out=4).init(jax.random.PRNGKey(0), jnp.zeros((1, n_latent)), jnp.zeros((1, n_cond)))
  info = generator_flops_per_object(n_latent + n_cond, Generator(n_out=4))
  objects = n_events * n_samples
  key = jax.random.PRNGKey(1)
  out = {"device": str(jax.devices()[0]), "backend": jax.default_backend(), "n_events": n_events,
         "n_samples": n_samples, "objects": objects, "chunk": chunk, "generator": info, "results": {}}
  for name in dtypes:
    dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[name]
    gen = Generator(n_out=4, dtype=dtype)
    hist = jax.jit(metric.make_histogram_fn(gen, n_latent, GEN, DIMS, gen_qt, metric_qt, 10, chunk))
    ids = jnp.arange(n_samples)
    t0 = time.perf_counter()
    counts = jax.block_until_ready(hist(params, key, events, ids))
    compile_s = time.perf_counter() - t0
    one_call = best_time(lambda: hist(params, key, events, ids), repeats)
    res = {"compile_plus_first_run_s": compile_s, "one_call_s": one_call, "one_call_objects_per_s": objects / one_call,
           "nll": neg2_log_likelihood(real, np.asarray(counts))}
    if not skip_loop:
      one = jax.jit(lambda p, k, e, s: hist(p, k, e, s[None]))
      jax.block_until_ready(one(params, key, events, jnp.int32(0)))

      def loop():
        total = 0
        for s in range(n_samples):
          total = total + one(params, key, events, jnp.int32(s))
        return total
      loop_s = best_time(loop, repeats)
      res.update(loop_s=loop_s, loop_objects_per_s=objects / loop_s, speedup_one_call_vs_loop=loop_s / one_call)
    bytes_per_object = info["activations"] * (4 if name == "fp32" else 2) * 2
    floor = objects * bytes_per_object / H100_HBM_BYTES_PER_S
    res.update(activation_bytes_written_and_read_per_object=bytes_per_object, h100_hbm_floor_s=floor)
    out["results"][name] = res
    print(f"{name}: {objects:.3g} objects, one call {one_call:.3f} s = {objects / one_call:.3g} obj/s"
          + (f"; S-loop {res['loop_s']:.3f} s = {objects / res['loop_s']:.3g} obj/s "
             f"(one call {res['speedup_one_call_vs_loop']:.2f}x faster)" if not skip_loop else "")
          + f"; compile+first {compile_s:.1f} s; H100 HBM floor {floor:.3f} s", flush=True)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n_events", type=int, default=100_000)
  p.add_argument("--n_samples", type=int, default=100)
  p.add_argument("--chunk", type=int, default=32768)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--dtypes", default="fp32,bf16")
  p.add_argument("--skip_loop", action="store_true")
  p.add_argument("--json", default="")
  a = p.parse_args()
  out = run(a.n_events, a.n_samples, a.chunk, a.repeats, a.dtypes.split(","), a.skip_loop)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)


if __name__ == "__main__":
  main()
