"""The main job: conditional-GAN background estimate for H->gamma gamma (hgg-background-gan paper).

checks (config and input checks), prepare (regions, splits, fitted preprocessing), train (the TrainSpec:
DC-GAN models, Eq. 1 losses with label noise, sampler), metric (S-sample -2lnL, Eq. 2; chunked generation),
apply (GANed CR, S^2, DCTR), ideal (the simulator's ideal-generator reference), run (run(config, workdir)
and the vmapped study members, train_members).
"""

from ganjax.hgg.apply import apply_dctr, ganed_cr, ganed_table, s2_table
from ganjax.hgg.checks import MEMBER_KEYS, STRATEGY_FEATURES, check_config, cond_features
from ganjax.hgg.ideal import ideal_reference
from ganjax.hgg.prepare import Prepared, load_regions, region_params
from ganjax.hgg.run import restore_best, run, setup, train_members

__all__ = ["apply_dctr", "ganed_cr", "ganed_table", "s2_table", "MEMBER_KEYS", "STRATEGY_FEATURES",
           "check_config", "cond_features", "ideal_reference", "Prepared", "load_regions", "region_params",
           "restore_best", "run", "setup", "train_members"]
