"""Pool finished DCTR toy runs into one summary (DCTR paper Fig. 8).

  python -m ganjax.main --config=configs/dctr_toys.py:circle --workdir=runs/dctr_circle     # one run
  python experiments/dctr_toys.py --combine=runs/dctr_bimodal,runs/dctr_circle,runs/dctr_grid \
      --workdir=runs/dctr_toys_all

Reads each run's metrics.json (ganjax.dctr.run) and writes <workdir>/summary.json (the per-observable S^2 and
r of all runs, their medians) and summary.png (Fig. 8 over all runs).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from ganjax.io import write_json
from ganjax.plots import dctr as dctr_plots

def combine(workdirs: list[str], out: str) -> dict:
  """Pool the per-observable results of finished runs: one summary JSON and one Fig. 8."""
  reports, labels, rows = [], [], {}
  for d in workdirs:
    path = os.path.join(d, "metrics.json")
    if not os.path.exists(path):
      raise ValueError(f"--combine: {path} does not exist (run the toy first)")
    with open(path) as f:
      m = json.load(f)
    seed = m["config"].get("seed", 0)
    label = m["toy"] if seed == 0 else f"{m['toy']}_seed{seed}"  # several seeds of one toy stay apart
    if label in labels:
      raise ValueError(f"--combine: {path} repeats toy/seed {label!r}")
    reports.append(m)
    labels.append(label)
    for name, v in m["observables"].items():
      rows[f"{label}/{name}"] = v
  ratios = np.array([v["s2_ratio"] for v in rows.values()])
  r_w = np.array([v["r_weighted"] for v in rows.values()])
  summary = {"runs": workdirs, "n_observables": len(rows), "median_s2_ratio": float(np.nanmedian(ratios)),
             "median_r_weighted": float(np.median(r_w)), "max_r_weighted": float(np.max(r_w)),
             "per_toy": {label: m["summary"] for label, m in zip(labels, reports)}, "observables": rows}
  os.makedirs(out, exist_ok=True)
  write_json(os.path.join(out, "summary.json"), summary)
  dctr_plots.plot_summary(os.path.join(out, "summary.png"), reports, labels)
  return summary


def main(argv):
  del argv
  s = combine(flags.FLAGS.combine, flags.FLAGS.workdir)
  print(json.dumps({k: s[k] for k in ("n_observables", "median_s2_ratio", "median_r_weighted")}))


if __name__ == "__main__":
  # Flags only when run as a script: importing combine() (the tests do) must not define --workdir, which
  # ganjax.main defines too.
  flags.DEFINE_list("combine", None, "workdirs of finished runs to pool into one summary", required=True)
  flags.DEFINE_string("workdir", None, "output directory", required=True)
  app.run(main)
