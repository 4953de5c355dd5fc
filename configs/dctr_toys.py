"""DCTR on the multimodal Gaussian toys (DCTR paper Sec. III A, Fig. 1): presets bimodal, circle, grid, test.

Train the paper's small GAN on a toy, learn DCTR weights (truth vs GAN), and report <S^2> (Eq. 15) and the
dilution r (Sec. II B) per observable before/after weighting, on independent evaluation samples.

  python -m ganjax.main --config=configs/dctr_toys.py:bimodal --workdir=runs/dctr_bimodal
  python -m ganjax.main --config=configs/dctr_toys.py:circle  --workdir=runs/dctr_circle
  python -m ganjax.main --config=configs/dctr_toys.py:grid    --workdir=runs/dctr_grid
  python -m ganjax.main --config=configs/dctr_toys.py:test    --workdir=/tmp/dctr_test

Keys (the common schema inside two groups, one per trained network):
  seed; data.{toy, n_truth, n_generated, n_eval}
  gan.model.{latent_dim, latent, g_hidden, d_hidden, standardize}
  gan.train.{steps, batch_size, eval_every (steps per segment = checkpoint), d_steps, g_ema, r1_gamma,
             optimizer.{name, learning_rate, b1, b2, schedule, decay_length}}     (ganjax/dctr/gan.py)
  reweight.{columns, seed, val_fraction, keep_best, calibrate, clip, normalize, eval_batch_size}
  reweight.model.{hidden, activation}
  reweight.train.{epochs, batch_size, optimizer.{name, learning_rate, b1, b2, weight_decay, schedule,
                  decay_length}}                                                  (ganjax/dctr/reweight.py)
  eval.{n_bins, scatter_bins, clip_scan}
Presets bimodal / circle / grid use the paper's settings (GAN: G 2x15, D 2x25 ReLU, latent 5 / 8 / 25,
batch 128, 10k steps; reweighter 3x20 (1D) or 64-128-256 (2D), BCE); 'test' is a seconds-long bimodal run
for the test suite. Hardware: 2-core CPU; each paper preset takes about 1-3 minutes there (bimodal ~1,
circle ~3, grid ~3; up to 2x more on a loaded machine). Interrupted runs resume from --workdir.
Expected (docs/results.md): median over observables of S^2(weighted)/S^2(GAN) 0.03 / 0.33 / 0.10-0.24
with median r 1.38 / 1.87 / 1.68-1.78 for bimodal / circle / grid (3 grid seeds: r <= 2 and ratio <= 0.5 in all).
"""

from __future__ import annotations

import ml_collections

_LATENT = {"bimodal": 5, "circle": 8, "grid": 25}


def _optimizer(learning_rate: float, b1: float, b2: float, schedule: str) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.name = "adam"            # adam | adamw (ganjax/engine/optim.py)
  o.learning_rate = learning_rate
  o.b1 = b1
  o.b2 = b2
  o.weight_decay = 0.0       # adamw only
  o.schedule = schedule      # constant | cosine | linear (decay to 0 over the whole training)
  o.decay_length = 0         # cosine / linear: decay length in steps (GAN) or epochs (reweighter); 0 = all
  return o


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  preset = arg or "bimodal"
  if preset not in ("bimodal", "circle", "grid", "test"):
    raise ValueError(f"configs/dctr_toys.py: unknown preset {preset!r}; use bimodal, circle, grid or test")
  toy = "bimodal" if preset == "test" else preset
  dim = 1 if toy == "bimodal" else 2

  c = ml_collections.ConfigDict()
  c.experiment = "dctr_toys"
  c.preset = preset
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.toy = toy              # bimodal (Eq. 12) | circle (Eq. 13) | grid (Eq. 14)
  c.data.n_truth = 100_000      # truth events for GAN training and the DCTR truth side
  c.data.n_generated = 100_000  # GAN events for DCTR training
  c.data.n_eval = 500_000       # independent truth and GAN events for <S^2> and r

  # The GAN. The paper fixes the networks, latent size, batch size and number of steps; the other choices
  # are free and were chosen by the GAN-only scans of experiments/dctr_gan_scan.py on the grid by the worst
  # seed's ideal r (docs/results.md), used for all three toys.
  c.gan = ml_collections.ConfigDict()
  c.gan.model = ml_collections.ConfigDict()
  c.gan.model.latent_dim = _LATENT[toy]
  c.gan.model.latent = "normal"     # normal | uniform (on [-1, 1])
  c.gan.model.g_hidden = (15, 15)
  c.gan.model.d_hidden = (25, 25)
  c.gan.model.standardize = True    # G and D see (x - mean) / std of the truth
  c.gan.train = ml_collections.ConfigDict()
  c.gan.train.steps = 10_000        # paper: "10,000 epochs (passes through the batches)"
  c.gan.train.batch_size = 128
  c.gan.train.eval_every = 1_000    # steps per jitted segment (checkpoint); GAN losses averaged per segment
  c.gan.train.d_steps = 1           # D updates per G update
  c.gan.train.g_ema = 0.0           # moving average of G's parameters used to generate (0: off)
  c.gan.train.r1_gamma = 0.1        # R1 gradient penalty on D at real points (0: off)
  c.gan.train.optimizer = _optimizer(5e-3, 0.0, 0.999, "cosine")

  # The DCTR reweighter (the keys of ganjax.dctr.reweight.default_config(), with the toys' values).
  c.reweight = ml_collections.ConfigDict()
  c.reweight.columns = [f"x{i}" for i in range(dim)]
  c.reweight.seed = 0               # used only when no key is passed (library fits)
  c.reweight.val_fraction = 0.2     # held-out fraction of each class
  c.reweight.keep_best = True       # keep the epoch with the lowest held-out loss
  c.reweight.calibrate = True       # temperature scaling on the held-out split
  c.reweight.clip = 5.0             # paper: weights clipped at 5
  c.reweight.normalize = True       # weights sum to N (Eq. 10)
  c.reweight.eval_batch_size = 16384
  c.reweight.model = ml_collections.ConfigDict()
  c.reweight.model.hidden = (20, 20, 20) if dim == 1 else (64, 128, 256)
  c.reweight.model.activation = "relu"
  c.reweight.train = ml_collections.ConfigDict()
  c.reweight.train.epochs = 100     # over the larger class's training split (paper: 100)
  c.reweight.train.batch_size = 512  # half truth, half generated
  c.reweight.train.optimizer = _optimizer(1e-3, 0.9, 0.999, "constant")

  c.eval = ml_collections.ConfigDict()
  c.eval.n_bins = 50
  c.eval.scatter_bins = 100  # 2D density plots (Fig. 1)
  c.eval.clip_scan = (0.0, 2.0, 3.0, 5.0, 10.0)  # also report S^2 / r for these clips (0 = none)
  c.eval.summary_events = 20_000  # events per sample in the evaluation table, before/after weights (0: none)

  if preset == "test":
    c.data.n_truth = 2_000
    c.data.n_generated = 2_000
    c.data.n_eval = 5_000
    c.gan.train.steps = 200
    c.gan.train.eval_every = 20
    c.reweight.model.hidden = (8, 8)
    c.reweight.train.batch_size = 256
    c.reweight.train.epochs = 3
    c.eval.n_bins = 20
    c.eval.summary_events = 0
  return c
