"""The floor of the GANed-CR validation on the built-in simulator: an ideal generator that gives each CR event
a fake from the simulator's exact SR conditional (hgg paper Sec. 3.2; experiments/hgg_ideal.py)."""

from __future__ import annotations

import numpy as np

from ganjax.data import gjets
from ganjax.hgg.prepare import Prepared, region_params


def ideal_reference(config, prep: Prepared, ganed_view: dict | None = None) -> dict:
  """Simulator only: the physics validation for an ideal generator, which gives each CR event a fake from
  the simulator's exact SR conditional (`gjets.sample_sr_fakes`).

  - `ideal_vs_mc_sr`: ideal CR vs MC SR test, the floor of the paper's comparison. A perfect GAN reaches
    exactly this; it is above the null wherever the CR events themselves (their jets, photon, pileup)
    differ from the SR's, which no generator can change.
  - `ganed_vs_ideal`: GANed CR vs ideal CR on disjoint random halves of the accepted CR events (independent
    samples of one target, so chi ~ 0.8 and S^2 ~ its noise for a perfect GAN): the generator's own error.
  At most `output.ideal_max_events` CR events are used (with a 50k SR test set, 250k CR events leave
  sigma dominated by the SR side). Each holds the validation summary (chi, S^2 ratio of fake pT, named
  pairs) and the S^2 per observable; without `ganed_view` only the first (experiments/hgg_ideal.py: the
  floor at any scale, no training).
  """
  from ganjax import validation
  names = validation.HGG_OBSERVABLES
  fakes, accepted = gjets.sample_sr_fakes(prep.cr, seed=config.seed + 1, params=region_params(config))
  ideal = {c: fakes.get(c, prep.cr[c]) for c in names}
  take = lambda table, idx: {c: np.asarray(table[c])[idx] for c in names}
  idx = np.random.default_rng(config.seed).permutation(np.flatnonzero(accepted))
  if config.output.ideal_max_events:  # a random subset bounds the cost at paper size (2M CR events)
    idx = idx[:config.output.ideal_max_events]
  half_a, half_b = idx[: len(idx) // 2], idx[len(idx) // 2:]
  out = {"accepted_fraction": float(accepted.mean())}
  comparisons = {"ideal_vs_mc_sr": (prep.test, take(prep.cr, idx), take(ideal, idx))}
  if ganed_view is not None:
    comparisons["ganed_vs_ideal"] = (take(ideal, half_b), take(prep.cr, half_a), take(ganed_view, half_a))
  for key, (ref, cr, gen) in comparisons.items():
    n_small = min(len(ref["fake_pt"]), len(gen["fake_pt"]))
    res = validation.validate(ref, cr, gen, names, n_batches=max(2, min(20, n_small // 20)), seed=config.seed)
    out[key] = {"summary": res["summary"], "s2": {r["observable"]: r["s2"] for r in res["onedim"]},
                "pairs_above_3": res["chi"]["ganed_vs_sr"]["pairs_above_threshold"]}
  return out
