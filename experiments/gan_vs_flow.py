"""The main job's conditional GAN and conditional spline flow side by side: one markdown table.

  python experiments/gan_vs_flow.py --preset=quick --seeds=3 --workdir=runs/gan_vs_flow     # docs/results.md
  python experiments/gan_vs_flow.py --preset=full --seeds=3 --workdir=runs/gan_vs_flow_full # GPU
  python experiments/gan_vs_flow.py --preset=quick --seeds=2 --workdir=/tmp/gvf \\
      --set train.epochs=10 --set data.n_events=60000                                       # a quick check

For each kind (configs/hgg.py:<preset> and <preset>,flow) the seeds train as ONE program (hgg.train_members,
the member axis of ganjax.engine.members) on the same simulated events; each member's best model (by its
validation -2lnL) is applied to the CR. The table gives mean +- std over seeds of: test -2lnL at S = 100,
the S^2 ratio (generated CR vs MC SR over MC CR vs MC SR) of fake pT and of every generated and diphoton
observable, chi of the distance-correlation matrices against the MC SR and against the ideal CR (the
simulator's exact SR fakes, ganjax/hgg/ideal.py), the flow's exact test NLL; and per kind the training wall
time of the whole program, generation objects/s of one member on the CR and the parameter count. Writes
<workdir>/gan_vs_flow.json and gan_vs_flow.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import hgg as hgg_config  # noqa: E402
from ganjax import hgg, io  # noqa: E402
from ganjax.data import gjets  # noqa: E402
from ganjax.hgg import metric  # noqa: E402
from ganjax.hgg.train import latent_dim  # noqa: E402


def make_config(preset: str, kind: str, overrides: list[str]):
  config = hgg_config.get_config(preset + (",flow" if kind == "flow" else ""))
  config.output.plots = False
  for item in overrides:
    key, _, value = item.partition("=")
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    try:
      node[leaf] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      node[leaf] = value
  if 100 not in config.metric.test_samples:
    config.metric.test_samples = tuple(config.metric.test_samples) + (100,)
  config.lock()
  return config


def generation_rate(config, regions, repeats: int = 3) -> float:
  """Objects/s of one model applied to the CR conditions (chunked, jitted; compile excluded). The speed does
  not depend on the weights' values, so freshly initialised ones are used."""
  s = hgg.setup(config, tempfile.mkdtemp(), regions=regions)
  params = s.train.init(jax.random.PRNGKey(0)).params["g"]
  cond = jnp.asarray(s.prep.cond(s.prep.cr, 3))
  gen = jax.jit(metric.make_generate_fn(s.generator, latent_dim(config, len(s.prep.gen_names)), config.metric.chunk))
  jax.block_until_ready(gen(params, jax.random.PRNGKey(0), cond))
  best = np.inf
  for i in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(gen(params, jax.random.PRNGKey(i + 1), cond))
    best = min(best, time.perf_counter() - t)
  return cond.shape[0] / best


def summarize(res: dict) -> dict:
  """Per-kind lists over members of every table quantity."""
  ms = res["members"]
  out = {"test -2lnL (S=100)": [m["test_nll"]["100"] for m in ms]}
  for col in ms[0]["s2_ratio"]:
    out[f"S^2 ratio {col}"] = [m["s2_ratio"][col] for m in ms]
  out["chi vs MC SR"] = [m["validation"]["summary"]["chi"] for m in ms]
  out["chi MC CR vs MC SR (reference)"] = [m["validation"]["summary"]["chi_cr_vs_sr"] for m in ms]
  if "ideal_reference" in ms[0]["validation"]:
    out["chi vs ideal CR"] = [m["validation"]["ideal_reference"]["ganed_vs_ideal"]["summary"]["chi"] for m in ms]
  if "test_flow_nll" in ms[0]:
    out["exact test NLL (preprocessed coordinates)"] = [m["test_flow_nll"] for m in ms]
  return out


def fmt(values) -> str:
  v = np.asarray(values, np.float64)
  if len(v) == 1:
    return f"{v[0]:.4g}"
  return f"{v.mean():.4g} +- {v.std(ddof=1):.2g}"


def table(results: dict, header: str) -> str:
  kinds = list(results)
  rows = {}
  for kind in kinds:
    for q, vals in results[kind]["summary"].items():
      rows.setdefault(q, {})[kind] = fmt(vals)
  lines = [header, "", "| quantity | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
  for q, by_kind in rows.items():
    lines.append(f"| {q} | " + " | ".join(by_kind.get(k, "") for k in kinds) + " |")
  lines.append("| training time, all seeds in one program (segments without evaluations or compile; s) | "
               + " | ".join(f"{results[k]['train_seconds']:.1f}" for k in kinds) + " |")
  lines.append("| run wall time incl. setup, test metric, CR, validation (s) | "
               + " | ".join(f"{results[k]['seconds']:.0f}" for k in kinds) + " |")
  lines.append("| generation objects/s (one member, CR) | "
               + " | ".join(f"{results[k]['generation_objects_per_s']:,.0f}" for k in kinds) + " |")
  lines.append("| parameters | " + " | ".join(
      " + ".join(f"{v:,} ({m.upper()})" for m, v in sorted(results[k]["params"].items(), key=lambda mv: mv[0] != "g"))
      for k in kinds) + " |")
  return "\n".join(lines) + "\n"


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="quick")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--workdir", required=True)
  p.add_argument("--member-axis", default="auto", choices=("auto", "vmap", "map"))
  p.add_argument("--set", action="append", default=[], help="config override key=value (both kinds)")
  a = p.parse_args()
  os.makedirs(a.workdir, exist_ok=True)
  base = make_config(a.preset, "gan", a.set)
  t0 = time.time()
  sr, cr = gjets.split_regions(gjets.simulate(base.data.n_events, seed=base.data.sim_seed,
                                              params=hgg.region_params(base)))
  regions = (sr, cr, f"built-in gamma+jets simulator (n_events={base.data.n_events})")
  print(f"simulation: {time.time() - t0:.0f} s", flush=True)
  results = {}
  for kind in ("gan", "flow"):
    config = make_config(a.preset, kind, a.set)
    wd = os.path.join(a.workdir, kind)
    res = hgg.train_members(config, wd, [{"seed": i} for i in range(a.seeds)], regions=regions,
                            member_axis=a.member_axis, report=True)
    res["generation_objects_per_s"] = generation_rate(config, regions)
    res["summary"] = summarize(res)
    results[kind] = res
    print(f"{kind}: done in {res['seconds']:.0f} s", flush=True)
  dev = jax.devices()[0]
  header = (f"`python experiments/gan_vs_flow.py --preset={a.preset} --seeds={a.seeds}"
            + "".join(f" --set {s}" for s in a.set) + f"`; device {dev.device_kind} ({dev.platform}, "
            f"{os.cpu_count()} CPU cores); {time.strftime('%Y-%m-%d')}; mean +- std over {a.seeds} seeds")
  md = table(results, header)
  print(md)
  io.write_json(os.path.join(a.workdir, "gan_vs_flow.json"), results)
  with open(os.path.join(a.workdir, "gan_vs_flow.md"), "w") as f:
    f.write(md)


if __name__ == "__main__":
  main()
