"""Main job: conditional-GAN background estimate for H->gamma gamma (gamma+jets), hgg-background-gan paper.

Presets (`--config=configs/hgg.py:<preset>`):
  full     (default) the paper's recipe, Sec. 3.1: full conditional set, latent 32, LAMB, cosine decay
           1e-3 -> 0 over 5000 epochs, batch 1024, label noise 0.15, 100k training events, validation
           -2lnL with S=100 generations per event every epoch. GPU/TPU.
             python -m ganjax.main --config=configs/hgg.py --workdir=runs/hgg-full
  partial  as full, conditioned on the fake's parent jet only.
  vanilla  as full, no conditional features (latent only).
  quick    the same code path, shrunk for a 2-core CPU laptop (24k training events, 200 epochs of batch
           128, Adam, S=10 for selection, test -2lnL at S = 1, 10, 100, networks at 1/4 width): ~8-9 min on
           a 2-core CPU. On the default simulator (whose CR already matches the SR except in the fake's ID)
           expect the fake's barrel/gap/endcap fractions at MC SR's (pulls ~1), chi ~0.9 vs MC SR (MC CR
           0.66, ideal 0.80) and the generated and diphoton observables within their S^2 floor or below MC
           CR's in most seeds, dphi_gg at 1.3-3x its floor (the ideal generator: 1.5x on the same test
           events; docs/results.md, "Physics fidelity", section 5). The earlier quick preset (8k events,
           100 epochs, jet-relative phi, one draw, equal-probability knots) is the override set
           EARLIER_QUICK there. With --config.data.simulator=stress: S^2(fake pT) ratio GANed / MC CR ~0.2-0.6.
             python -m ganjax.main --config=configs/hgg.py:quick --workdir=runs/hgg-quick
  test     tiny, for the test suite (~45 s on a 2-core CPU, most of it compilation).
             python -m ganjax.main --config=configs/hgg.py:test --workdir=runs/hgg-test
  dctr     adds DCTR reweighting of the GANed CR (combine: `quick,dctr`); the ganed_cr table gets a
           `dctr_weight` column and metrics.json a `dctr` section (S^2 and dilution r before/after).
  flow     a conditional normalizing flow (rational-quadratic spline couplings, ganjax/models/flow.py)
           instead of the GAN, trained by maximum likelihood; everything downstream is the same, and
           metrics.json adds the exact test NLL `test_flow_nll` (combine: `quick,flow`, `test,flow`).
             python -m ganjax.main --config=configs/hgg.py:quick,flow --workdir=runs/hgg-quick-flow
           (docs/flow.md, docs/results.md).
Presets combine with a strategy: `quick,vanilla`, `quick,partial`.
Any field can be overridden: --config.train.epochs=50; a misspelt key is an error (lock_config=True).
Lengths count in epochs: train.epochs, train.eval_every (the segment between evaluations and checkpoints),
train.optimizer.decay_length (ganjax/engine/optim.py).
"""

import ml_collections

STRATEGIES = ("vanilla", "partial", "full", "custom")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Paper defaults, then the presets named in `arg` (comma separated)."""
  c = ml_collections.ConfigDict()
  c.experiment = "hgg"
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.source = "simulate"      # built-in gamma+jets simulator (ganjax/data/gjets.py)
  c.data.simulator = "default"    # its event model: default | stress (the fake's ID depends on the rest of the
                                  # event, the jet is measured exactly; gjets.PRESETS, docs/results.md)
  c.data.simulator_set = ""       # overrides of its GJetsParams fields, "fake_c_iso=0.5,jet_smear=0"
  c.data.n_events = 2_700_000     # preselected SR+CR events simulated (the paper's sample size)
  c.data.sim_seed = 0
  c.data.n_train = 100_000        # SR training events (paper)
  c.data.n_val = 25_000           # SR validation events (best-model selection)
  c.data.n_test = 50_000          # SR test events (final metric, comparison with the GANed CR)
  c.data.n_cr = 0                 # CR events to GAN (0 = all)
  c.data.n_quantiles = 1000       # knots of the quantile transform
  # Model coordinates: "normal" (quantiles to a standard normal, linear generator output) or "uniform" (the
  # paper's [-1, 1] with tanh). Normal is the default: with uniform + tanh the fake's eta and phi, which
  # follow the parent jet's, never reach the ends (no endcap fakes at the quick preset; docs/results.md).
  c.data.quantile_output = "normal"
  # Tails of the normal coordinates: "sample" (knots equally spaced in the normal coordinate out to
  # +-Phi^-1(1 - 1/(2 n_train)), so the sample's tails are resolved to single events and a generator's
  # overflow is ~1/n_train) or "knots" (the earlier equal-probability knots: the outer 1/Q of the sample is
  # interpolated flat and 1/Q of a standard normal lands on the sample's extreme values; ganjax/data/preprocess.py).
  c.data.quantile_tails = "sample"
  c.data.eta_gap = (1.4442, 1.566)  # excluded |eta| of generated *_eta columns (ECAL gap); () = none
  # Regions (simulator, NanoAOD and flat tables): SR = fake ID > sr_id_min, CR = cr_id_floor < ID <= sr_id_min.
  c.data.sr_id_min = 0.0
  c.data.cr_id_floor = -0.9
  c.data.prompt_id_min = -0.2
  c.data.preselection = True      # H->gg-like preselection (mass window, pT/m, acceptance)
  # Real data (data.source = a path or glob): see docs/data_sources.md for every field.
  c.data.format = "auto"          # auto | nanoaod | table
  c.data.tree = ""
  c.data.max_events = 0
  c.data.extra_columns = ()       # columns carried through to the outputs (e.g. ("event",))
  c.data.mode = "mc"              # NanoAOD: mc (genPartFlav) | data (ID ordering)
  c.data.id_branch = "Photon_mvaID"
  c.data.prompt_flavours = (1,)
  c.data.fake_flavours = (0,)
  c.data.data_prompt = "higher_id"
  c.data.no_jet = "drop"
  c.data.photon_pt_min = 0.0
  c.data.jet_pt_min = 25.0
  c.data.jet_eta_max = 4.7
  c.data.jet_prompt_dr = 0.4
  c.data.columns = ""             # flat tables: "pho_pt=g1_pt,fake_pt=g2_pt" (our name = file column)
  c.data.region_column = ""       # flat tables: nonzero = SR; "" = split by the fake ID thresholds

  # Conditioning strategy (Sec. 3.1): which columns G and D see besides the generated object.
  c.strategy = "full"
  c.cond_features = ()            # used only when strategy == "custom"
  c.gen_features = ("fake_pt", "fake_eta", "fake_phi", "fake_id")
  # Optionally generate the fake's eta, phi relative to its parent jet when the jet is a conditional
  # feature (partial, full): a bijective preprocessing given the condition. Off by default: the paper's
  # absolute coordinates did better on the quick preset (docs/results.md).
  c.relative_to_jet = False
  # Generated relative to a reference whatever relative_to_jet says, a bijection given the conditions
  # (ganjax/hgg/prepare.py): "name=ref" with ref a conditional column, "recoil_phi" (the photon's recoil axis,
  # pho_phi + pi) or, for fake_pt, "window" (the pT inside the window (lo, hi) of pT that pass the preselection
  # given the photon and the fake's direction, log((pT - lo) / pT_gamma) - log(1 - (pT - lo) / (hi - lo)): both
  # m_gg cut edges map to -+infinity) or "preselection" (the lower edge only: log((pT - lo) / pT_gamma)); a bare
  # name means the parent jet; a feature takes its first entry whose reference the strategy's conditions
  # provide (full: recoil-relative phi and the window pT; partial: jet-relative phi, absolute pT).
  # () = the paper's absolute coordinates (docs/results.md: "Physics fidelity").
  c.relative_features = ("fake_phi=recoil_phi", "fake_phi", "fake_pt=window")

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 32
  c.model.g_width = 1.0
  c.model.d_width = 1.0
  c.model.dropout = 0.2
  c.model.kind = "gan"            # gan | flow (the `flow` preset): which generator
  c.model.flow = ml_collections.ConfigDict()  # the conditional spline flow (ganjax/models/flow.py)
  c.model.flow.layers = 6         # coupling layers (each with its own feature permutation)
  c.model.flow.bins = 8           # spline bins K
  c.model.flow.hidden = (256, 256)  # conditioner MLP widths
  c.model.flow.bound = 4.5        # splines on [-B, B], identity outside; the features fill +-4.42 (normal
                                  # coordinates, sample tails at 100k training events) or [-1, 1] (uniform)

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 5000
  c.train.batch_size = 1024
  c.train.optimizer = ml_collections.ConfigDict()
  c.train.optimizer.name = "lamb"           # lamb | adam | sgd (any of ganjax/engine/optim.py)
  c.train.optimizer.learning_rate = 1e-3    # peak; cosine decay to 0 over decay_length epochs, then 0
  c.train.optimizer.b1 = 0.9                # first-moment decay of lamb/adam (DC-GAN practice: 0.5)
  c.train.optimizer.b2 = 0.999
  c.train.optimizer.schedule = "cosine"
  c.train.optimizer.decay_length = 0        # epochs over which the cosine reaches 0 (0 = train.epochs). The
                                            # paper's Fig. 2 training runs 6000 epochs with the decay
                                            # reaching 0 at 5000 (Sec. 3.1)
  c.train.label_noise = 0.15      # labels uniform in [0, eps] (fake) and [1-eps, 1] (real)
  c.train.eval_every = 1          # epochs per jitted segment; metric + checkpoint at each segment end
  c.train.devices = 0             # data-parallel over this many devices (0 = all; the batch is split)

  c.metric = ml_collections.ConfigDict()
  c.metric.dims = ("fake_pt", "fake_eta", "fake_id", "ptgg_over_mgg")  # Eq. (2) binning, paper's choice
  c.metric.n_bins = 10            # per dimension, on the SR-training quantiles
  c.metric.n_samples = 100        # S generations per event
  c.metric.chunk = 32768          # objects generated per inner step (bounds memory)
  c.metric.n_train_events = 0     # training events for the train-set metric (0 = all)
  c.metric.test_samples = (1, 10, 100)
  c.metric.history_samples = ()   # extra S whose validation -2lnL is also recorded each time (Fig. 2)
  c.metric.history_from = 0       # record history_samples only at evaluations from this epoch on (0 = all)
  c.metric.select_within_sigma = 0.0  # > 0: a later model replaces the kept best only if its val -2lnL is lower
                                  # by more than this many paired event-bootstrap sigmas (resume-exact;
                                  # 0: the paper's plain lowest val -2lnL)

  # CR application (Sec. 2.2): each CR event's fake is redrawn (fresh latents) until the GANed event passes the
  # SR selection (fake ID and preselection), at most max_draws times: the SR conditional p_SR(fake | event)
  # is zero outside the selection, as in the ideal reference (ganjax/hgg/apply.py). 1 = a single draw.
  c.apply = ml_collections.ConfigDict()
  c.apply.max_draws = 50

  c.output = ml_collections.ConfigDict()
  c.output.s2_bins = 40           # bins for the S^2 separation power of 1D distributions
  c.output.plots = True
  c.output.experiment_label = "CMS Open Data"  # on the validation figures of real data (not the simulator's)
  c.output.format = "parquet"     # parquet | root (a TTree, via uproot) for ganed_cr / mc_sr_test
  c.output.validation = True      # distance correlations, chi, S^2 and KS of 15 observables (Sec. 3.2)
  c.output.ideal_reference = True # simulator only: the same checks for an ideal generator (its exact SR fakes)
  c.output.ideal_max_events = 250_000  # CR events used for it (random subset; 0 = all): bounds its cost
  c.output.evaluation = True      # test -2lnL event-bootstrap error; classifier test, FPD, KPD, W1 with nulls

  # DCTR (dctrgan paper): reweight the GANed CR with w = h/(1-h) from a classifier of MC SR events vs the
  # generator applied to the same SR events' conditions (object + conditional features as inputs).
  c.dctr = ml_collections.ConfigDict()  # the reweighter's keys (ganjax/dctr/reweight.py), plus `enabled`
  c.dctr.enabled = False
  c.dctr.clip = 5.0               # the paper clips the weights at 5
  c.dctr.calibrate = True         # temperature scaling on the held-out split
  c.dctr.model = ml_collections.ConfigDict()
  c.dctr.model.hidden = (64, 128, 256)
  c.dctr.train = ml_collections.ConfigDict()
  c.dctr.train.epochs = 50
  c.dctr.train.batch_size = 256
  c.dctr.train.optimizer = ml_collections.ConfigDict()
  c.dctr.train.optimizer.name = "adam"
  c.dctr.train.optimizer.learning_rate = 1e-3

  presets = [p for p in (arg or "").split(",") if p]
  for preset in presets:
    if preset in ("vanilla", "partial", "full"):
      c.strategy = preset
    elif preset == "quick":
      c.data.n_events = 150_000
      c.data.n_train = 24_000  # of the 46k SR events: a generator fitted to 8k could not beat the S^2 floor
      c.data.n_val = 4_000     # of 8k test events (its own training sample's noise is 1.4x that floor)
      c.data.n_test = 8_000
      c.data.n_cr = 20_000
      c.data.n_quantiles = 500
      c.model.g_width = 0.25
      c.model.d_width = 0.25
      c.train.epochs = 200
      c.train.batch_size = 128
      c.train.optimizer.name = "adam"  # DC-GAN's Adam(1e-3, b1=0.5) converges in fewer steps at this size
      c.train.optimizer.b1 = 0.5
      c.train.optimizer.learning_rate = 1e-3
      c.train.eval_every = 20
      c.metric.n_samples = 10
      c.metric.n_train_events = 8_000  # the training-set metric on a third of the events (evaluation cost)
      c.metric.chunk = 16384
      c.metric.test_samples = (1, 10, 100)
    elif preset == "dctr":
      c.dctr.enabled = True
    elif preset == "flow":
      c.model.kind = "flow"
    elif preset == "test":
      c.data.n_events = 6_000
      c.data.n_train = 512
      c.data.n_val = 256
      c.data.n_test = 256
      c.data.n_cr = 512
      c.data.n_quantiles = 64
      c.model.latent_dim = 4
      c.model.g_width = 0.125
      c.model.d_width = 0.125
      c.train.epochs = 4
      c.train.batch_size = 128
      c.train.eval_every = 2
      c.metric.n_samples = 3
      c.metric.chunk = 256
      c.metric.n_train_events = 256
      c.metric.test_samples = (1, 3)
      c.output.plots = False
      c.output.evaluation = False
    else:
      raise ValueError(f"unknown preset {preset!r}; known: full, partial, vanilla, quick, dctr, flow, test")
  if c.model.kind == "flow":  # in any order with the size presets
    c.train.optimizer.b1 = 0.9  # the flow's likelihood is no minimax game: the usual Adam/LAMB b1
    if "quick" in presets:
      c.model.flow.layers = 4
      c.model.flow.hidden = (48, 48)  # ~21k parameters, the GAN's G + D at this preset
    if "test" in presets:
      c.model.flow.layers = 2
      c.model.flow.hidden = (8,)
  return c
