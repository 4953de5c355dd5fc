"""Cost of padding in the S-sample metric: event sets padded to whole chunks vs chunks fitted to the set.

The metric generates S objects for every padded event, so a 4,000-event validation set padded to one
16,384-event chunk (the quick preset before `metric.chunk_layout`) costs 4x what it needs. This times the
jitted histogram of `ganjax.hgg.metric` for both layouts in the same run (the old one is
`pad_events(..., multiple=chunk)`), for the quick preset's sets (generator at 1/4 width, chunk 16,384) or the
paper's (full width, chunk 32,768).

  python benchmarks/metric_padding.py                 # quick preset: train 8k, val 4k, test 8k events, S=10
  python benchmarks/metric_padding.py --preset=paper  # train 100k, val 25k, test 50k, S=100 (GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multisample_eval import DIMS, GEN, _inputs, best_time  # noqa: E402

from ganjax.hgg import metric  # noqa: E402
from ganjax.models.dcgan import Generator  # noqa: E402

PRESETS = {"quick": {"sets": {"train": 8_000, "val": 4_000, "test": 8_000}, "chunk": 16_384, "width": 0.25,
                     "n_samples": 10},
           "paper": {"sets": {"train": 100_000, "val": 25_000, "test": 50_000}, "chunk": 32_768, "width": 1.0,
                     "n_samples": 100}}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
  p.add_argument("--n_samples", type=int, default=0, help="S (0 = the preset's)")
  p.add_argument("--repeats", type=int, default=3)
  a = p.parse_args()
  cfg = PRESETS[a.preset]
  s = a.n_samples or cfg["n_samples"]
  n_latent, n_cond, chunk = 32, 9, cfg["chunk"]
  gen = Generator(n_out=4, width=cfg["width"])
  params = gen.init(jax.random.PRNGKey(0), jnp.zeros((1, n_latent)), jnp.zeros((1, n_cond)))
  rows = []
  for name, n in cfg["sets"].items():
    gen_qt, metric_qt, events, _ = _inputs(n, n_cond, chunk)
    hist = jax.jit(metric.make_histogram_fn(gen, n_latent, GEN, DIMS, gen_qt, metric_qt, 10, chunk))
    row = {"set": name, "events": n, "S": s}
    for layout, multiple in (("whole_chunks", chunk), ("fitted", 8)):
      ev = metric.pad_events(events.cond[:n], {k: v[:n] for k, v in events.aux.items()}, chunk, multiple)
      ids = jnp.arange(s)
      jax.block_until_ready(hist(params, jax.random.PRNGKey(1), ev, ids))  # compile
      t = best_time(lambda: hist(params, jax.random.PRNGKey(2), ev, ids), a.repeats)
      row[layout] = {"padded_events": int(ev.cond.shape[0]), "seconds": t}
    row["speedup"] = row["whole_chunks"]["seconds"] / row["fitted"]["seconds"]
    rows.append(row)
    print(f"{name}: {n} events, S={s}: whole chunks {row['whole_chunks']['padded_events']} padded, "
          f"{row['whole_chunks']['seconds']:.3f} s; fitted {row['fitted']['padded_events']} padded, "
          f"{row['fitted']['seconds']:.3f} s; speed-up {row['speedup']:.2f}x", flush=True)
  print(json.dumps({"preset": a.preset, "device": str(jax.devices()[0]), "rows": rows}))


if __name__ == "__main__":
  main()
