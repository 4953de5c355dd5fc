"""Cost of the CR application's redraw (ganjax/hgg/apply.make_sr_generate_fn) against the single draw of the
paper, on a finished main-job run's best generator: the whole CR generated once (max_draws = 1) and with the
redraw until every GANed event passes the SR selection (max_draws = N), each jitted, timed after a warm-up.

  python -m ganjax.main --config=configs/hgg.py:quick --workdir=runs/hgg-quick     # once
  python benchmarks/cr_redraw.py --workdir=runs/hgg-quick [--preset=quick] [--max_draws=50] [--repeat=3]

Prints one JSON line: seconds per call of each version, their ratio, the draws used and the pass fractions,
and how the objects compare with the run's own ganed_cr.parquet (written by the code of the run).
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


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True)
  p.add_argument("--preset", default="quick")
  p.add_argument("--max_draws", type=int, default=50)
  p.add_argument("--repeat", type=int, default=3)
  a = p.parse_args()

  import jax
  import numpy as np

  from ganjax.hgg import apply, metric
  from ganjax.hgg.prepare import region_params
  from ganjax.hgg.run import restore_best, setup
  from ganjax.hgg.train import latent_dim, run_keys

  config = hgg_config.get_config(a.preset)
  config.lock()
  s = setup(config, a.workdir)
  params_g = restore_best(s, a.workdir)
  gen_one = metric.make_generate_fn(s.generator, latent_dim(config, len(s.prep.gen_names)), config.metric.chunk)
  cond = jax.numpy.asarray(s.prep.cond(s.prep.cr, 3))
  aux = {k: jax.numpy.asarray(v) for k, v in apply.sr_check_aux(s.prep).items()}
  key = run_keys(jax.random.PRNGKey(config.seed))[4]
  out = {"n_cr": int(cond.shape[0]), "max_draws": a.max_draws, "devices": [str(d) for d in jax.devices()]}
  for n in (1, a.max_draws):
    fn = jax.jit(apply.make_sr_generate_fn(gen_one, s.prep, region_params(config), config.data.preselection, n))
    u, draws = jax.block_until_ready(fn(params_g, key, cond, aux))  # compile + warm-up
    times = []
    for _ in range(a.repeat):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(params_g, key, cond, aux))
      times.append(time.perf_counter() - t0)
    draws = np.asarray(draws)
    out[f"draws{n}"] = {"seconds": min(times), "pass_fraction": float(np.mean(draws > 0)),
                        "first_draw_pass_fraction": float(np.mean(draws == 1)), "max_draw_used": int(draws.max())}
    if n == config.apply.max_draws:  # the run's own table: the same objects?
      from ganjax import io
      table, _ = io.read_parquet(os.path.join(a.workdir, "ganed_cr.parquet"))
      mine = apply.ganed_cr(config, s.prep, np.asarray(u), draws)
      out["vs_run_table"] = {"draws_equal": bool(np.array_equal(mine["gan_draws"], table["gan_draws"])),
                             "max_abs_diff": {c: float(np.max(np.abs(mine[c] - table[c])))
                                              for c in mine if c.startswith("gan_") and c not in ("gan_pass_sr",
                                                                                                  "gan_draws")}}
  out["ratio"] = out[f"draws{a.max_draws}"]["seconds"] / out["draws1"]["seconds"]
  print(json.dumps(out))


if __name__ == "__main__":
  main()
