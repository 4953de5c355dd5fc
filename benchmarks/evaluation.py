"""Runtime of the whole evaluation (ganjax/evaluation.py) on a finished main-job run: the event-bootstrap
error of the test -2lnL and the summary table (classifier test and its null training, FPD, KPD, W1 with
their nulls) of the GANed CR against the MC SR test set on the 15 observables.

  python -m ganjax.main --config=configs/hgg.py:quick --workdir=runs/hgg-quick     # once (~9 min)
  python benchmarks/evaluation.py --workdir=runs/hgg-quick [--preset=quick] [--repeat=2]

The run's best generator is restored from the workdir and its GANed CR read from ganed_cr.parquet; nothing
is trained (the last repetition's table goes to <workdir>/evaluation_benchmark.{json,md}). Prints one JSON line per repetition with the seconds of each part (the first includes the
classifier's compilation) and the process's CPU seconds (all threads: on a busy machine the wall time
overstates what an idle 2-core machine needs). Target: the whole evaluation of the quick preset within 60 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configs import hgg as hgg_config  # noqa: E402


def load_config(preset: str):
  """configs/hgg.py:<preset>, locked."""
  config = hgg_config.get_config(preset)
  config.lock()
  return config


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--preset", default="quick")
  p.add_argument("--repeat", type=int, default=2)
  args = p.parse_args()
  from ganjax import evaluation, io
  from ganjax.hgg.run import restore_best, setup

  config = load_config(args.preset)
  t0 = time.time()
  s = setup(config, args.workdir)
  params_g = restore_best(s, args.workdir)
  ganed, _ = io.read_parquet(os.path.join(args.workdir, "ganed_cr.parquet"))
  print(json.dumps({"setup_and_restore_s": round(time.time() - t0, 1), "cpu_count": os.cpu_count(),
                    "load": open("/proc/loadavg").read().split()[:3]}), flush=True)
  for i in range(args.repeat):
    t0, c0 = time.time(), time.process_time()
    ev = evaluation.hgg(config, s, params_g, ganed)
    cpu_s = time.process_time() - c0
    summ = ev["summary"]
    print(json.dumps({"repeat": i, "total_s": round(time.time() - t0, 1), "process_cpu_s": round(cpu_s, 1),
                      "test_nll_bootstrap_s": round(ev["test_nll_bootstrap"]["seconds"], 1),
                      "summary_s": {k: round(v, 1) for k, v in summ["seconds"].items()},
                      "n_generated": summ["n_generated"], "n_truth": summ["n_truth"],
                      "load": open("/proc/loadavg").read().split()[:3]}), flush=True)
  io.write_json(os.path.join(args.workdir, "evaluation_benchmark.json"), ev)  # the last repetition's table
  evaluation.write_report(ev, os.path.join(args.workdir, "evaluation_benchmark.md"), "GANed CR vs MC SR test")


if __name__ == "__main__":
  main()
