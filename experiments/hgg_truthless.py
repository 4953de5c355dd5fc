"""How many SR events is the GANed CR worth, per region? Averaging amplification without truth (Bahl et al.
2509.08048; ganjax/metrics/truthless_amplification.py) on an ensemble of main-job generators.

  python experiments/hgg_truthless.py --preset=quick --members=4 --workdir=runs/hgg-truthless [--coarse=2]

Trains `members` generators that differ only in seed as ONE program (ganjax.hgg.train_members; resumable),
then applies each member's best generator to the CR with S generations per event (metric.n_samples) and
histograms the generated objects in the main job's 4D metric space, coarsened to `coarse` bins per
dimension (the regions). Per region: the members' spread gives sigma (statistical + model), N_eq =
p(1-p)/sigma^2 equivalent SR events and G = N_eq / n_train. The members share the SR training sample, so the
spread is the training stochasticity only: G over-states the amplification (docs/validation.md). Writes
<workdir>/truthless.json and prints a markdown table. Runtime: the quick preset trains ~3-5 min per member
on a 2-core CPU.
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

from ganjax import io
from ganjax.engine.checkpoints import Checkpoints
from ganjax.hgg import metric
from ganjax.hgg.run import setup, train_members
from ganjax.metrics import truthless_amplification as ta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configs import hgg as hgg_config  # noqa: E402


def load_config(preset: str):
  """configs/hgg.py:<preset>, locked."""
  config = hgg_config.get_config(preset)
  config.output.validation = False  # members only: no per-member physics validation
  config.lock()
  return config


def coarsen(counts_B: np.ndarray, n_bins: int, n_dims: int, coarse: int) -> np.ndarray:
  """Counts over n_bins^K flat bins (bin b_k of dim k at stride n_bins^k) -> coarse^K regions."""
  if n_bins % coarse:
    raise ValueError(f"--coarse={coarse} must divide metric.n_bins={n_bins}")
  c = np.asarray(counts_B).reshape((n_bins,) * n_dims)  # axes (b_{K-1}, ..., b_0)
  c = c.reshape(sum(((coarse, n_bins // coarse) for _ in range(n_dims)), ()))
  return c.sum(axis=tuple(range(1, 2 * n_dims, 2))).reshape(-1)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="quick")
  p.add_argument("--members", type=int, default=4)
  p.add_argument("--coarse", type=int, default=2)
  p.add_argument("--workdir", required=True)
  args = p.parse_args()
  config = load_config(args.preset)
  t0 = time.time()
  out = train_members(config, args.workdir, [{"seed": config.seed + j} for j in range(args.members)])
  train_s = time.time() - t0
  s = setup(config, args.workdir)
  like = jax.tree.map(lambda a: jnp.stack([a] * args.members), s.train.init(jax.random.PRNGKey(0)).params["g"])
  ckpt = Checkpoints(args.workdir)
  try:
    best = ckpt.restore_best({"best": like, "aux": s.prep.transforms()})[0]["best"]
  finally:
    ckpt.close()
  prep, n_bins, k_dims = s.prep, int(config.metric.n_bins), len(s.prep.metric_dims)
  aux = metric.aux_columns(prep.metric_dims, prep.gen_names, prep.relative)
  cr_ev = metric.pad_events(prep.cond(prep.cr, 3), {a: prep.cr[a] for a in aux}, config.metric.chunk)
  hist = jax.jit(s.hist_fn)
  n_samples = int(config.metric.n_samples)
  counts = np.stack([coarsen(np.asarray(hist(jax.tree.map(lambda a: a[j], best), jax.random.PRNGKey(100 + j),
                                             cr_ev, jnp.arange(n_samples))), n_bins, k_dims, args.coarse)
                     for j in range(args.members)])
  n_gen = cr_ev.n_events * n_samples
  r = ta.averaging(counts, n_gen, int(config.data.n_train))
  sr_test = coarsen(metric.real_histogram(prep.test, prep.gen_names, prep.metric_dims, prep.gen_qt, prep.metric_qt,
                                          n_bins), n_bins, k_dims, args.coarse)
  result = {"preset": args.preset, "members": args.members, "regions": args.coarse ** k_dims,
            "metric_dims": list(prep.metric_dims), "n_cr_events": cr_ev.n_events, "n_samples": n_samples,
            "n_train": int(config.data.n_train), "train_seconds": train_s,
            "member_test_nll": [m["test_nll"] for m in out["members"]],
            "sr_test_fraction": (sr_test / sr_test.sum()).tolist(),
            "summary": ta.summary(r), "per_region": ta.to_json(r)}
  io.write_json(os.path.join(args.workdir, "truthless.json"), result)
  lines = ["| region | GANed CR fraction p | MC SR test fraction | sigma_stat | sigma_model | N_eq (one member) | "
           "G member | G ensemble mean |", "|---|---|---|---|---|---|---|---|"]
  frac = sr_test / sr_test.sum()
  for k in range(len(r["p"])):
    lines.append(f"| {k} | {r['p'][k]:.4f} | {frac[k]:.4f} | {r['sigma_stat'][k]:.2g} | {r['sigma_model'][k]:.2g} "
                 f"| {r['n_eq_member'][k]:.3g} | {r['amplification_member'][k]:.3g} | "
                 f"{r['amplification_ensemble'][k]:.3g} |")
  print("\n".join(lines))
  print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
  main()
