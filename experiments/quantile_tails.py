"""What a perfect generator in normal quantile coordinates gives back, for each `data.quantile_tails`.

The fake's acoplanarity a = wrap(phi_fake - phi_gamma - pi) of simulated SR events: a quantile transform is fitted
on `--n_train` of them (the main job's knots), model coordinates are drawn either from the training sample's
own law (a truncated standard normal: the best a generator can learn) or from a standard normal (its
overflow beyond the bound is clamped), mapped back, and compared with independent SR events on the validation's
dphi_gg bins (50 equal bins over [-pi, pi]): mean S^2 over `--repeats` draws, the fraction beyond 0.7 rad, and the
floor of two samples of these sizes.

  python experiments/quantile_tails.py [--n_train=24000] [--n_quantiles=500]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.stats

from ganjax.data import gjets
from ganjax.data.preprocess import fit_quantile_transform, output_bound
from ganjax.metrics.separation import separation_power, separation_power_floor


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--n_train", type=int, default=24_000)
  ap.add_argument("--n_quantiles", type=int, default=500)
  ap.add_argument("--n_gen", type=int, default=20_000)
  ap.add_argument("--n_test", type=int, default=8_000)
  ap.add_argument("--repeats", type=int, default=20)
  args = ap.parse_args()
  sr, _ = gjets.split_regions(gjets.simulate(400_000, seed=0))
  a = np.asarray(gjets.wrap_phi(sr["fake_phi"] - sr["pho_phi"] - np.pi), np.float64)
  train, test = a[:args.n_train], a[args.n_train:args.n_train + args.n_test]
  edges = np.linspace(-np.pi, np.pi, 51)
  floor = separation_power_floor(np.histogram(a, edges)[0], args.n_gen, len(test))["q"]
  print(f"{len(a)} SR events; train {len(train)}, test {len(test)}, generated {args.n_gen}; "
        f"dphi_gg bins floor {floor:.5f}; true fraction beyond 0.7 rad {np.mean(np.abs(a) > 0.7):.5f}")
  print("| tails | bound | model coordinates drawn from | mean S^2 vs test | fraction beyond 0.7 rad |")
  print("|---|---|---|---|---|")
  for tails in ("knots", "sample"):
    qt = fit_quantile_transform(train[:, None], args.n_quantiles, "normal", tails=tails)
    b = output_bound("normal", args.n_quantiles, len(train), tails)
    for law in ("truncated normal", "standard normal"):
      s2, beyond = [], []
      for seed in range(args.repeats):
        rng = np.random.default_rng(seed)
        y = (scipy.stats.truncnorm.rvs(-b, b, size=args.n_gen, random_state=rng) if law == "truncated normal"
             else rng.normal(size=args.n_gen))
        x = qt.inverse(np.clip(y, -b, b)[:, None])[:, 0]
        s2.append(separation_power(x, test, edges))
        beyond.append(np.mean(np.abs(x) > 0.7))
      print(f"| {tails} | {b:.2f} | {law} | {np.mean(s2):.5f} | {np.mean(beyond):.5f} |")


if __name__ == "__main__":
  main()
