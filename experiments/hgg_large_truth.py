"""S^2 of a main-job run's GANed CR against a large, independent MC SR sample of the built-in simulator.

The run's own S^2 check compares the GANed CR with its MC SR test events (8,000 at the quick preset), whose
statistical noise is part of every S^2 there. With the simulator the truth is free: this draws `--n_events`
fresh preselected events with the run's simulator settings (another seed), keeps the SR, and reports for
every generated observable S^2 of the GANed CR, of the ideal CR (the same CR events with fakes drawn from the
simulator's exact SR conditional, `gjets.sample_sr_fakes`: what a perfect generator gives), of the MC CR and
of the run's MC SR test events against it,
each with its floor (the 95 % quantile of S^2 between two samples of that size and the truth's size drawn
from one distribution; ganjax.metrics.separation). Binning as in the run's validation (50 bins between the
truth's 0.1 % and 99.9 % quantiles).

  python experiments/hgg_large_truth.py --run=runs/hgg-quick [--n_events=1500000]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import ml_collections
import numpy as np
import pyarrow.parquet as pq

from ganjax.data import gjets
from ganjax.hgg.prepare import region_params
from ganjax.metrics.onedim import observable_edges
from ganjax.metrics.separation import separation_power, separation_power_floor
from ganjax.validation import GENERATED_OBSERVABLES


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--run", required=True, help="workdir of a finished main-job run on the simulator")
  ap.add_argument("--n_events", type=int, default=1_500_000, help="preselected events to simulate")
  ap.add_argument("--seed", type=int, default=12345, help="simulation seed (not the run's)")
  args = ap.parse_args()
  run = pathlib.Path(args.run)
  config = ml_collections.ConfigDict(json.loads((run / "config.json").read_text()))
  if config.data.source != "simulate":
    raise SystemExit(f"{run}: data.source is {config.data.source!r}; this needs the built-in simulator")
  params = region_params(config)
  sr, _ = gjets.split_regions(gjets.simulate(args.n_events, args.seed, params))
  ganed = {k: np.asarray(v) for k, v in pq.read_table(run / "ganed_cr.parquet").to_pydict().items()}
  test = pq.read_table(run / "mc_sr_test.parquet").to_pydict()
  ideal, accepted = gjets.sample_sr_fakes(ganed, args.seed + 1, params)
  samples = {"GANed CR": {k: ganed.get(f"gan_{k}", ganed.get(k)) for k in GENERATED_OBSERVABLES},
             "ideal CR": {k: ideal[k][accepted] for k in GENERATED_OBSERVABLES},
             "MC CR": {k: ganed[k] for k in GENERATED_OBSERVABLES}, "MC SR test": test}
  print(f"truth: {len(sr['fake_pt'])} MC SR events (seed {args.seed}); run: {run}")
  print("| observable | " + " | ".join(f"{n}: S^2 / floor" for n in samples) + " |")
  print("|---|" + "---|" * len(samples))
  for obs in GENERATED_OBSERVABLES:
    x_ref = np.asarray(sr[obs], np.float64)
    edges = observable_edges(x_ref, 50, (0.001, 0.999))
    counts = np.histogram(np.clip(x_ref, edges[0], edges[-1]), edges)[0]
    cells = []
    for cols in samples.values():
      x = np.asarray(cols[obs], np.float64)
      s2 = separation_power(x, x_ref, edges)
      floor = separation_power_floor(counts, len(x), len(x_ref))["q"]
      cells.append(f"{s2:.5f} / {floor:.5f} ({s2 / floor:.2f})")
    print(f"| {obs} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
