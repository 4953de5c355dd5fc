"""Built-in gamma+jets simulator: events where a jet fakes the second photon of an H->gamma gamma selection.

The default data set of the main job (hgg-background-gan paper, Sec. 3). It is a seeded, vectorised toy of
the physics that makes the method non-trivial; one event model produces both the signal region (SR: the fake
passes the photon ID) and the control region (CR: it fails), so the simulated SR is the truth for a GANed CR.

Event model (all momenta in GeV; parameters are the fields of `GJetsParams`):
- Hard process. Prompt photon pT from a steeply falling power law, dN/dpT ~ pT^-n (n = `pt_power`) above
  `pt_min` (a generator-level cut chosen so that ~12% of raw events pass the preselection, which makes the
  paper-size sample of 2.7M preselected events cheap to draw). Rapidities from a 2->2 picture: eta_gamma = y_boost + y*, eta_jet = y_boost - y*, with y_boost
  and y* Gaussian, so the photon and recoil-jet rapidities are correlated (and deta = 2 y*).
- Recoil. N_jets = 1 + Poisson(lambda), lambda = `njet_base` + `njet_slope` ln(pT/pt_min) +
  `njet_pileup` N_vtx, so N_jets grows with pT (and a little with pileup). The recoiling jet balances the
  photon in pT and phi up to an ISR kick: a 2D Gaussian of width `kick_sigma` x sqrt(N_jets). The jet is
  reported with its (px, py) smeared by `jet_smear` GeV (jet energy resolution; the photon is exact), so the
  photon knows the true jet better than the reported jet does: the full conditioning strategy (which sees
  the photon) can place the fake better than the partial one (jet only), as in the paper's Fig. 3.
- Pileup. N_vtx ~ Poisson(`nvtx_mean`).
- Fake photon = leading neutral meson of the recoil jet (the TRUE jet). It carries a momentum fraction
  z ~ Beta(a, b) (fragmentation-like: falling towards z -> 1), sits near the jet axis with an angular spread
  `axis_sigma` (1 - z) + `axis_floor`, and has pT = z pT_jet, measured with `fake_pileup_pt` N_vtx x
  Gamma(4, 1/4) GeV of pileup energy added to its cluster. Its isolation is the rest of the jet in the cone,
  (1 - z) pT_jet x `cone_fraction`, plus a pileup term `iso_pileup` N_vtx x Exp(1).
- Photon ID score in (-1, 1) (like CMS's mvaID): 2 sigmoid(t) - 1 with, for the fake,
  t = c0 - c_iso iso/pT - c_sh shower - c_eta |eta| - c_pu (N_vtx - nvtx_mean) + noise, where the shower-shape
  proxy is `fake_shower_mean` plus, in the stress preset, a term wider for a pi0 (two merged photons) at low
  meson pT and one for the endcap. The prompt photon has the same form with a high offset, so its ID is high
  with a pileup tail.
- Preselection (CMS-like): 100 < m_gg < 180, pT_lead/m > 1/3, pT_sublead/m > 1/4, |eta| < 2.5 outside the
  barrel-endcap gap 1.4442 < |eta| < 1.566, prompt photon ID above `prompt_id_min`.
- Regions: SR = fake ID > `sr_id_min`; CR = `cr_id_floor` < fake ID <= `sr_id_min`. Isolated, high-z fakes
  pass the ID more often, so the SR fake pT spectrum is harder than the CR one (Fig. 5 of the paper).

Presets (`PRESETS`, configs/hgg.py data.simulator). "default" reproduces the paper's premise (Sec. 3: a CR
"with similar physics properties as the SR"): the ID depends on the fake alone and only weakly on its
isolation (c_iso = 0.1), so an ideal generator (exact SR-conditional fakes, `sample_sr_fakes`) reaches
chi ~ 1.1 against MC SR at the paper's sizes. The price is measured (docs/results.md): through the
preselection, which involves the fake's pT, any z-dependence of the ID makes SR and CR events differ, so the
SR-vs-CR difference of the fake's pT is small here (S^2 ~ 1e-3); the ID itself and, in the full strategy, the
fake's placement from the photon recoil are what the generator must learn. "stress" (`STRESS`) is the earlier
model: a strong isolation, |eta|, pT and pileup dependence of the ID and an exactly measured jet (ideal chi
~ 4.5 at the paper's sizes; full and partial tie).

Columns (1D float32 arrays, n_jets and n_vtx integer valued): pho_{pt,eta,phi,id}, fake_{pt,eta,phi,id},
jet_{pt,eta,phi} (the fake's parent jet), n_jets, n_vtx, and the diphoton mgg, ptgg, ptgg_over_mgg, detagg,
dphigg recomputed from the two photon four-vectors (massless).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.special

PHOTON_COLUMNS = ("pho_pt", "pho_eta", "pho_phi", "pho_id")
FAKE_COLUMNS = ("fake_pt", "fake_eta", "fake_phi", "fake_id")
JET_COLUMNS = ("jet_pt", "jet_eta", "jet_phi")
EVENT_COLUMNS = ("n_jets", "n_vtx")
DIPHOTON_COLUMNS = ("mgg", "ptgg", "ptgg_over_mgg", "detagg", "dphigg")
ALL_COLUMNS = PHOTON_COLUMNS + FAKE_COLUMNS + JET_COLUMNS + EVENT_COLUMNS + DIPHOTON_COLUMNS
INTEGER_COLUMNS = ("n_jets", "n_vtx")

BARREL_ENDCAP_GAP = (1.4442, 1.566)


@dataclasses.dataclass(frozen=True)
class GJetsParams:
  """Parameters of the gamma+jets event model (see the module docstring). The defaults are the "default"
  simulator; `PRESETS["stress"]` is the earlier event model (kept as a stress test)."""

  pt_min: float = 45.0
  pt_power: float = 4.5
  y_boost_sigma: float = 0.9
  y_star_sigma: float = 0.55
  nvtx_mean: float = 20.0
  njet_base: float = 0.4
  njet_slope: float = 0.6
  njet_pileup: float = 0.02
  kick_sigma: float = 6.0
  jet_smear: float = 15.0
  z_a: float = 1.6
  z_b: float = 2.2
  axis_sigma: float = 0.06
  axis_floor: float = 0.005
  cone_fraction: float = 0.6
  fake_pileup_pt: float = 0.3
  iso_pileup: float = 0.0
  fake_c0: float = 0.0
  fake_c_iso: float = 0.1
  fake_c_shower: float = 1.5
  fake_shower_pt: float = 0.0
  fake_shower_endcap: float = 0.0
  fake_shower_mean: float = 0.26
  fake_c_eta: float = 0.0
  fake_c_pileup: float = 0.0
  fake_noise: float = 0.8
  prompt_c0: float = 4.0
  prompt_c_iso: float = 3.0
  prompt_c_pileup: float = 0.05
  prompt_noise: float = 0.8
  prompt_iso_pileup: float = 0.12
  prompt_id_min: float = -0.2
  sr_id_min: float = 0.0
  cr_id_floor: float = -0.9


# The earlier event model: the fake's ID depends strongly on its isolation (i.e. its momentum fraction z, so
# SR fakes are much harder than CR fakes, the hgg paper's Fig. 5), on its |eta|, pT and the pileup, so SR and
# CR events differ in their photons, jets and pileup (through the preselection, which involves the fake): an
# ideal generator reaches only chi ~ 4.5 against MC SR at the paper's sizes. The fake follows its exactly
# measured parent jet alone, so the full and partial conditioning strategies tie. Kept as a stress test of
# the method; `configs/hgg.py` selects it with data.simulator="stress".
STRESS = GJetsParams(jet_smear=0.0, fake_pileup_pt=0.0, iso_pileup=0.12, fake_c0=1.5, fake_c_iso=6.0,
                     fake_shower_pt=0.6, fake_shower_endcap=0.35, fake_shower_mean=0.0, fake_c_eta=0.5,
                     fake_c_pileup=0.03)
PRESETS = {"default": GJetsParams(), "stress": STRESS}


def wrap_phi(phi):
  """Wrap an angle into [-pi, pi)."""
  return (phi + np.pi) % (2 * np.pi) - np.pi


def diphoton(pt1, eta1, phi1, pt2, eta2, phi2, xp=np):
  """Diphoton mgg, ptgg, ptgg/mgg, deta, dphi from two massless photons (works for numpy and jax.numpy)."""
  px = pt1 * xp.cos(phi1) + pt2 * xp.cos(phi2)
  py = pt1 * xp.sin(phi1) + pt2 * xp.sin(phi2)
  ptgg = xp.sqrt(px * px + py * py)
  # m^2 = 2 pT1 pT2 (cosh(deta) - cos(dphi)) for massless particles.
  deta = eta1 - eta2
  dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
  m2 = 2.0 * pt1 * pt2 * (xp.cosh(deta) - xp.cos(dphi))
  mgg = xp.sqrt(xp.maximum(m2, 0.0))
  return {"mgg": mgg, "ptgg": ptgg, "ptgg_over_mgg": ptgg / xp.maximum(mgg, 1e-6),
          "detagg": deta, "dphigg": dphi}


def _sigmoid(t):
  return scipy.special.expit(t)


def _in_acceptance(eta, xp=np):
  a = xp.abs(eta)
  return (a < 2.5) & ~((a > BARREL_ENDCAP_GAP[0]) & (a < BARREL_ENDCAP_GAP[1]))


def preselection(cols: dict, params: GJetsParams = GJetsParams(), xp=np) -> np.ndarray:
  """H->gamma gamma-like diphoton preselection (mass window, pT/m, acceptance, prompt-photon ID); numpy or
  jax.numpy (xp)."""
  m = cols["mgg"]
  lead = xp.maximum(cols["pho_pt"], cols["fake_pt"])
  sub = xp.minimum(cols["pho_pt"], cols["fake_pt"])
  return ((m > 100.0) & (m < 180.0) & (lead > m / 3.0) & (sub > m / 4.0)
          & _in_acceptance(cols["pho_eta"], xp) & _in_acceptance(cols["fake_eta"], xp)
          & (cols["pho_id"] > params.prompt_id_min))


def fake_pt_window(pho_pt, pho_eta, pho_phi, fake_eta, fake_phi, xp=np):
  """(lo, hi): the fake pT for which the diphoton passes the preselection's kinematic cuts given the prompt
  photon and the fake's direction. With C = cosh(deta) - cos(dphi), m^2 = 2 pT_pho pT_fake C, so
  100 < m < 180 bounds pT_fake to (100^2, 180^2) / (2 pT_pho C); a subleading fake needs pT_fake > pT_pho C/8
  (sub > m/4) and pT_fake < 9 pT_pho / (2C) (lead > m/3), a leading one pT_fake > 2 pT_pho C/9 and
  pT_fake < 8 pT_pho / C. The two pieces meet at pT_pho when C < 4.5 (one interval, exact); for C > 4.5
  (|deta| > ~1.9) they are disjoint and (lo, hi) is their envelope. Where no pT passes, lo = hi."""
  p1 = pho_pt
  c = xp.maximum(xp.cosh(pho_eta - fake_eta) - xp.cos(pho_phi - fake_phi), 1e-6)
  m_lo, m_hi = 100.0 ** 2 / (2.0 * p1 * c), 180.0 ** 2 / (2.0 * p1 * c)
  a_lo, a_hi = xp.maximum(p1 * c / 8.0, m_lo), xp.minimum(xp.minimum(p1, 4.5 * p1 / c), m_hi)  # fake subleading
  b_lo, b_hi = xp.maximum(xp.maximum(p1, 2.0 * p1 * c / 9.0), m_lo), xp.minimum(8.0 * p1 / c, m_hi)  # leading
  a_ok, b_ok = a_lo < a_hi, b_lo < b_hi
  lo = xp.where(a_ok, a_lo, xp.where(b_ok, b_lo, m_lo))
  hi = xp.where(b_ok, b_hi, xp.where(a_ok, a_hi, m_lo))
  return lo, hi


def draw_fake(rng: np.random.Generator, jet_pt, jet_eta, jet_phi, n_vtx, p: GJetsParams) -> dict:
  """The fake photon of each event (pt, eta, phi, id) given its parent jet's TRUE momentum and the pileup:
  the only inputs the fake model has, so p(fake | event) = p(fake | true jet, n_vtx) before any selection."""
  n = len(jet_pt)
  z = rng.beta(p.z_a, p.z_b, n)
  spread = p.axis_sigma * (1.0 - z) + p.axis_floor
  fake_eta = jet_eta + spread * rng.normal(size=n)
  fake_phi = wrap_phi(jet_phi + spread * rng.normal(size=n))
  fake_pt = z * jet_pt
  iso = (1.0 - z) * jet_pt * p.cone_fraction + p.iso_pileup * n_vtx * rng.exponential(1.0, n)

  endcap = np.abs(fake_eta) > BARREL_ENDCAP_GAP[1]
  shower = (p.fake_shower_pt / (1.0 + fake_pt / 30.0) + p.fake_shower_endcap * endcap + p.fake_shower_mean
            + 0.25 * rng.normal(size=n))
  t_fake = (p.fake_c0 - p.fake_c_iso * iso / fake_pt - p.fake_c_shower * shower
            - p.fake_c_eta * np.abs(fake_eta) - p.fake_c_pileup * (n_vtx - p.nvtx_mean)
            + p.fake_noise * rng.normal(size=n))
  fake_id = 2.0 * _sigmoid(t_fake) - 1.0
  if p.fake_pileup_pt:
    # Pileup energy in the fake's cluster (after the ID, which is computed on the meson itself): the
    # measured pT depends on N_vtx, which the full conditioning strategy sees and the partial one does not.
    fake_pt = fake_pt + p.fake_pileup_pt * n_vtx * rng.gamma(4.0, 0.25, n)

  return dict(fake_pt=fake_pt, fake_eta=fake_eta, fake_phi=fake_phi, fake_id=fake_id)


def measure_jet(rng: np.random.Generator, jpx, jpy, p: GJetsParams):
  """The parent jet's reported (pT, phi): its true transverse momentum smeared by `jet_smear` GeV per
  component (jet energy resolution; the photon is measured exactly), unchanged when jet_smear = 0."""
  if p.jet_smear:
    jpx = jpx + p.jet_smear * rng.normal(size=len(jpx))
    jpy = jpy + p.jet_smear * rng.normal(size=len(jpy))
  return np.hypot(jpx, jpy), np.arctan2(jpy, jpx)


def true_jet_posterior(rng: np.random.Generator, events: dict, p: GJetsParams):
  """A draw of the parent jet's true (pT, phi) given what is observed: the prompt photon and N_jets (prior:
  minus the photon plus the Gaussian ISR kick of width kick_sigma sqrt(N_jets)) and the measured jet
  (Gaussian smearing of width jet_smear). Both are Gaussian in (px, py), so the posterior is Gaussian:
  the exact input of the ideal generator. With jet_smear = 0 it is the measured jet."""
  pt, phi = np.asarray(events["jet_pt"], np.float64), np.asarray(events["jet_phi"], np.float64)
  mx, my = pt * np.cos(phi), pt * np.sin(phi)
  if not p.jet_smear:
    return pt, phi
  ppt, pphi = np.asarray(events["pho_pt"], np.float64), np.asarray(events["pho_phi"], np.float64)
  prior_var = (p.kick_sigma ** 2) * np.asarray(events["n_jets"], np.float64)
  w_prior, w_meas = 1.0 / prior_var, 1.0 / p.jet_smear ** 2
  var = 1.0 / (w_prior + w_meas)
  cx = var * (w_prior * -ppt * np.cos(pphi) + w_meas * mx)
  cy = var * (w_prior * -ppt * np.sin(pphi) + w_meas * my)
  sd = np.sqrt(var)
  tx = cx + sd * rng.normal(size=len(cx))
  ty = cy + sd * rng.normal(size=len(cy))
  return np.hypot(tx, ty), np.arctan2(ty, tx)


def _simulate_raw(rng: np.random.Generator, n: int, p: GJetsParams) -> dict:
  """n raw events (before preselection)."""
  u = rng.random(n)
  pho_pt = p.pt_min * u ** (-1.0 / (p.pt_power - 1.0))
  y_boost = rng.normal(0.0, p.y_boost_sigma, n)
  y_star = rng.normal(0.0, p.y_star_sigma, n)
  pho_eta = y_boost + y_star
  jet_eta_hard = y_boost - y_star
  pho_phi = rng.uniform(-np.pi, np.pi, n)

  n_vtx = rng.poisson(p.nvtx_mean, n)
  lam = p.njet_base + p.njet_slope * np.log(pho_pt / p.pt_min) + p.njet_pileup * n_vtx
  n_jets = 1 + rng.poisson(lam)

  kick = rng.normal(0.0, 1.0, (2, n)) * (p.kick_sigma * np.sqrt(n_jets))
  jpx = -pho_pt * np.cos(pho_phi) + kick[0]
  jpy = -pho_pt * np.sin(pho_phi) + kick[1]
  true_pt = np.hypot(jpx, jpy)
  true_phi = np.arctan2(jpy, jpx)
  jet_eta = jet_eta_hard
  jet_pt, jet_phi = measure_jet(rng, jpx, jpy, p)

  fake = draw_fake(rng, true_pt, jet_eta, true_phi, n_vtx, p)

  pho_iso = p.prompt_iso_pileup * n_vtx * rng.exponential(1.0, n)
  t_pho = (p.prompt_c0 - p.prompt_c_iso * pho_iso / pho_pt - p.prompt_c_pileup * (n_vtx - p.nvtx_mean)
           + p.prompt_noise * rng.normal(size=n))
  pho_id = 2.0 * _sigmoid(t_pho) - 1.0

  cols = dict(pho_pt=pho_pt, pho_eta=pho_eta, pho_phi=pho_phi, pho_id=pho_id,
              **fake,
              jet_pt=jet_pt, jet_eta=jet_eta, jet_phi=jet_phi,
              n_jets=n_jets.astype(np.float64), n_vtx=n_vtx.astype(np.float64))
  cols.update(diphoton(pho_pt, pho_eta, pho_phi, fake["fake_pt"], fake["fake_eta"], fake["fake_phi"]))
  return cols


def simulate(n_events: int, seed: int = 0, params: GJetsParams = GJetsParams(),
             chunk: int = 0) -> dict[str, np.ndarray]:
  """Simulate `n_events` preselected events (SR and CR together, plus a boolean column `is_sr`).

  Events are drawn in chunks until `n_events` pass the preselection and fall in SR or CR; the result
  is deterministic for a given (n_events, seed, params).
  """
  if n_events < 1:
    raise ValueError(f"n_events must be >= 1, got {n_events}")
  rng = np.random.default_rng(seed)
  chunk = chunk or min(1_000_000, 10 * n_events + 1000)  # ~12% of raw events pass: one chunk usually does
  parts, have = [], 0
  while have < n_events:
    raw = _simulate_raw(rng, chunk, params)
    keep = preselection(raw, params) & (raw["fake_id"] > params.cr_id_floor)
    part = {k: v[keep] for k, v in raw.items()}
    parts.append(part)
    have += int(keep.sum())
  out = {k: np.concatenate([p[k] for p in parts])[:n_events].astype(np.float32) for k in parts[0]}
  out["is_sr"] = out["fake_id"] > params.sr_id_min
  return out


def split_regions(events: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """Split a simulated table into (SR, CR) dicts of columns (without the is_sr flag)."""
  sr = events["is_sr"]
  cols = [k for k in events if k != "is_sr"]
  return {k: events[k][sr] for k in cols}, {k: events[k][~sr] for k in cols}


def sample_sr_fakes(events: dict[str, np.ndarray], seed: int = 0, params: GJetsParams = GJetsParams(),
                    max_rounds: int = 2000) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """An ideal generator: for each event, a fake drawn from the simulator's exact SR conditional.

  The fake model depends on the event only through the parent jet's true momentum and N_vtx (`draw_fake`),
  and the true jet given the observed event (photon, N_jets, measured jet) has the Gaussian posterior of
  `true_jet_posterior`, so p_SR(fake | event) is the posterior mixture of p(fake | true jet, N_vtx)
  restricted to fakes that pass the SR ID and, with the event's prompt photon, the preselection: rejection
  sampling (a fresh posterior draw per try) draws exactly that. Applied to CR events this is what a
  perfect conditional GAN would give (the floor of every GANed-CR vs MC-SR comparison). Returns (fake
  columns plus the recomputed diphoton columns, accepted mask); events not accepted within `max_rounds`
  draws (SR probability below ~1/max_rounds) keep NaN and False.
  """
  rng = np.random.default_rng(seed)
  n = len(events["jet_pt"])
  names = FAKE_COLUMNS + DIPHOTON_COLUMNS
  out = {c: np.full(n, np.nan) for c in names}
  pending = np.arange(n)
  for _ in range(max_rounds):
    if not len(pending):
      break
    ev = {c: np.asarray(events[c], np.float64)[pending] for c in ("jet_pt", "jet_eta", "jet_phi", "n_vtx",
                                                                  "n_jets") + PHOTON_COLUMNS}
    true_pt, true_phi = true_jet_posterior(rng, ev, params)
    cols = {**ev, **draw_fake(rng, true_pt, ev["jet_eta"], true_phi, ev["n_vtx"], params)}
    cols.update(diphoton(cols["pho_pt"], cols["pho_eta"], cols["pho_phi"], cols["fake_pt"],
                         cols["fake_eta"], cols["fake_phi"]))
    ok = (cols["fake_id"] > params.sr_id_min) & preselection(cols, params)
    for c in names:
      out[c][pending[ok]] = cols[c][ok]
    pending = pending[~ok]
  accepted = np.ones(n, bool)
  accepted[pending] = False
  return {c: v.astype(np.float32) for c, v in out.items()}, accepted
