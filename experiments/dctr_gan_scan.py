"""Scan of the toy GAN's free training choices, judged without a classifier (DCTR paper Sec. III A).

  python experiments/dctr_gan_scan.py --config=configs/dctr_toys.py:grid --workdir=runs/dctr_gan_scan \
      --scan="train.optimizer.learning_rate=1e-3;train.optimizer.learning_rate=3e-4,train.optimizer.schedule=cosine" \
      --seeds=3

Each ';'-separated entry overrides dotted keys of config.gan (the paper fixes the networks, latent size,
batch and steps; optimiser, schedule, latent distribution, D/G ratio, G averaging and standardisation are
free). For every entry, `--seeds` GANs (different init/training keys; one ensemble of the engine, members
vmapped, ganjax.dctr.gan) are trained on the same truth set and judged on independent truth / GAN samples by
  - median over the toy observables of the GAN's <S^2> (Eq. 15) against the truth;
  - for mixtures: the fraction of GAN events within 3 sigma of a mode and the number of modes that get at
    least 20% of their share (the usual mode-coverage figures for Gaussian-grid GANs);
  - 'ideal-weight' dilution: weights p_T/p_G estimated by a fine histogram (bins of sigma/2 per axis, 2D) or
    the exact truth density over a histogram of the GAN (1D), clipped at config.reweight.clip and normalised
    (Eq. 10), applied to a second GAN sample: N_eff/N, median r and median S^2 ratio. This is what a
    perfect DCTR classifier would cost, so it isolates GAN quality from reweighter quality.
Writes <workdir>/scan.json and prints one line per entry (mean and spread over seeds).
"""

from __future__ import annotations

import ast
import os
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ganjax.data.dctr_toys import get_toy, observables
from ganjax.dctr import gan as dgan
from ganjax.dctr.reweight import finalize_weights
from ganjax.engine import driver
from ganjax.io import write_json
from ganjax.metrics.dilution import observable_report

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/dctr_toys.py:<preset>", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory", required=True)
_SCAN = flags.DEFINE_string("scan", "", "';'-separated entries of comma-separated key=value overrides of "
                            "dotted config.gan keys (train.optimizer.learning_rate=1e-3)")
_SEEDS = flags.DEFINE_integer("seeds", 3, "GAN trainings per entry (vmapped)")
_N_EVAL = flags.DEFINE_integer("n_eval", 200_000, "truth and GAN events per evaluation sample")


def parse_entry(entry: str) -> dict:
  """'train.d_steps=2,model.latent=uniform' -> {'train.d_steps': 2, 'model.latent': 'uniform'}."""
  out = {}
  for item in filter(None, (s.strip() for s in entry.split(","))):
    if "=" not in item:
      raise ValueError(f"--scan entry {entry!r}: {item!r} is not key=value")
    k, v = item.split("=", 1)
    try:
      out[k.strip()] = ast.literal_eval(v.strip())
    except (ValueError, SyntaxError):
      out[k.strip()] = v.strip()
  return out


def ideal_weights(toy, x_hist_t: np.ndarray, x_hist_g: np.ndarray, x_apply_g: np.ndarray) -> np.ndarray:
  """Histogram estimate of p_T/p_G at x_apply_g (fine bins; empty GAN bins get the largest ratio)."""
  lo = toy.means_KxD.min(axis=0) - 5 * toy.sigma
  hi = toy.means_KxD.max(axis=0) + 5 * toy.sigma
  n_bins = np.ceil((hi - lo) / (0.5 * toy.sigma)).astype(int)
  edges = [np.linspace(a, b, n + 1) for a, b, n in zip(lo, hi, n_bins)]
  ht, _ = np.histogramdd(x_hist_t, bins=edges)
  hg, _ = np.histogramdd(x_hist_g, bins=edges)
  ratio = (ht / ht.sum()) / np.maximum(hg / hg.sum(), 1e-12)
  ratio = np.where(hg > 0, ratio, np.where(ht > 0, 1e6, 1.0))
  idx = tuple(np.clip(np.digitize(x_apply_g[:, d], edges[d]) - 1, 0, n_bins[d] - 1)
              for d in range(x_apply_g.shape[1]))
  return ratio[idx]


def judge(toy, clip: float, n_bins: int, x_t1, x_t2, x_g1, x_g2) -> dict:
  """GAN-only figures of merit of one generator (see module doc)."""
  obs_t, obs_g = observables(x_t2, toy.center), observables(x_g2, toy.center)
  d2 = np.min(np.sum((x_g2[:, None, :] - toy.means_KxD[None]) ** 2, axis=-1), axis=1)
  nearest = np.argmin(np.sum((x_g2[:, None, :] - toy.means_KxD[None]) ** 2, axis=-1), axis=1)
  good = d2 < (3 * toy.sigma) ** 2
  share = np.bincount(nearest[good], minlength=len(toy.means_KxD)) / len(x_g2)
  with np.errstate(divide="ignore"):  # empty truth bins: weight 0
    w, _ = finalize_weights(np.log(ideal_weights(toy, x_t1, x_g1, x_g2)), clip, True)
  rep = observable_report(obs_t, obs_g, w, n_bins=n_bins)
  per = rep["observables"]
  return {
    "median_s2_gan": float(np.median([v["s2_unweighted"] for v in per.values()])),
    "fraction_near_mode": float(good.mean()),
    "modes_covered": int(np.sum(share >= 0.2 / len(toy.means_KxD))),
    "ideal_n_eff_fraction": rep["summary"]["n_eff_fraction"],
    "ideal_median_r": rep["summary"]["median_r_weighted"],
    "ideal_median_s2_ratio": rep["summary"]["median_s2_ratio"],
  }


def override(gan, overrides: dict, entry: str):
  """A copy of config.gan with the dotted-key overrides of one scan entry (unknown keys are an error)."""
  gan = gan.copy_and_resolve_references()
  for dotted, v in overrides.items():
    *parents, leaf = dotted.split(".")
    node = gan
    for p in parents:
      node = node[p] if p in node else None
      if node is None:
        break
    if node is None or not hasattr(node, "keys") or leaf not in node:
      raise ValueError(f"--scan entry {entry!r}: unknown gan key {dotted!r}")
    node[leaf] = v
  return gan


def train_seeds(gan, x_truth, keys_Sx2):
  """Generator states of one GAN per key (members of one engine ensemble, vmapped), trained on x_truth."""
  dim = x_truth.shape[1]
  shift, scale = dgan.standardization(x_truth, bool(gan.model.standardize))
  members = dgan.make_members(gan, dim, shift, scale, how="vmap")
  init = jax.vmap(lambda k: dgan.init_keys(jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)))(keys_Sx2)
  steps = int(gan.train.steps)
  result = driver.run(driver.Loop(members, x_truth, total_steps=steps, segment_steps=steps, name="dctr-gan-scan"),
                      members.init(init), None)
  return jax.vmap(dgan.generator_state)(result.state)


def main(argv):
  del argv
  config = _CONFIG.value
  os.makedirs(_WORKDIR.value, exist_ok=True)
  toy = get_toy(config.data.toy)
  key = jax.random.PRNGKey(config.seed)
  x_truth = toy.sample(jax.random.fold_in(key, 0), config.data.n_truth)
  n = _N_EVAL.value
  x_t1 = np.asarray(toy.sample(jax.random.fold_in(key, 5), n))
  x_t2 = np.asarray(toy.sample(jax.random.fold_in(key, 6), n))
  results = []
  for entry in [e for e in _SCAN.value.split(";")] or [""]:
    overrides = parse_entry(entry)
    gan = override(config.gan, overrides, entry)
    keys = jax.random.split(jax.random.fold_in(key, 100), _SEEDS.value)
    t0 = time.time()
    states = train_seeds(gan, x_truth, keys)
    jax.block_until_ready(states)
    seconds = time.time() - t0
    generate = dgan.make_generate(gan, toy.dim)
    per_seed = []
    for s in range(_SEEDS.value):
      st = jax.tree.map(lambda a: a[s], states)
      x_g1 = np.asarray(generate(st, jax.random.fold_in(keys[s], 2), n))
      x_g2 = np.asarray(generate(st, jax.random.fold_in(keys[s], 3), n))
      if not np.all(np.isfinite(x_g2)):
        per_seed.append({"non_finite": True})
        continue
      per_seed.append(judge(toy, float(config.reweight.clip), int(config.eval.n_bins), x_t1, x_t2, x_g1, x_g2))
    agg = {k_: (float(np.mean([p[k_] for p in per_seed])), float(np.min([p[k_] for p in per_seed])),
                float(np.max([p[k_] for p in per_seed]))) for k_ in per_seed[0] if k_ != "non_finite"}
    results.append({"entry": entry, "overrides": overrides, "train_seconds": seconds, "per_seed": per_seed,
                    "mean_min_max": agg})
    print(f"{entry or 'config defaults':55s} " + " ".join(
      f"{k_}={v[0]:.3g}[{v[1]:.3g},{v[2]:.3g}]" for k_, v in agg.items()) + f" t={seconds:.0f}s", flush=True)
    write_json(os.path.join(_WORKDIR.value, "scan.json"),
               {"toy": config.data.toy, "config": config.to_dict(), "seeds": _SEEDS.value, "results": results})


if __name__ == "__main__":
  app.run(main)
