"""The best generator applied to the control region (hgg-background-gan paper, Sec. 2.2, 3.2): the fake
photon of every CR event replaced by a generated SR-like one, the diphoton system recomputed, S^2 against the
MC SR, and optionally DCTR weights (dctrgan paper) that pull the generator's conditional onto the SR's."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data import gjets
from ganjax.hgg import metric
from ganjax.hgg.prepare import Prepared, region_params
from ganjax.metrics.separation import histogram_edges, separation_power


def ganed_cr(config, prep: Prepared, gen_u_NxO: np.ndarray, draws_N: np.ndarray | None = None) -> dict:
  """The GANed CR table from generated objects in the model's (quantile-preprocessed) coordinates;
  `draws_N` (from `make_sr_generate_fn`) becomes the column gan_draws."""
  gen_names = prep.gen_names
  gen_phys = metric.to_physical(np.asarray(prep.gen_qt.inverse(gen_u_NxO.astype(np.float64))), prep.cr,
                                gen_names, prep.relative)
  out = ganed_table(prep.cr, np.stack([gen_phys[n] for n in gen_names], -1), gen_names,
                    region_params(config), config.data.preselection)
  if draws_N is not None:
    out["gan_draws"] = np.asarray(draws_N, np.int32)
  return out


SR_CHECK_COLUMNS = ("pho_pt", "pho_eta", "pho_phi", "pho_id") + gjets.FAKE_COLUMNS


def sr_check_aux(prep: Prepared) -> dict:
  """The CR columns `make_sr_generate_fn` needs: the prompt photon, the CR's own fake (for features that are
  not generated) and the references of relatively generated features."""
  names = set(SR_CHECK_COLUMNS) | set(metric.reference_columns(prep.relative))
  return {c: np.asarray(prep.cr[c], np.float32) for c in sorted(names)}


def make_sr_generate_fn(generate: Callable, prep: Prepared, params: gjets.GJetsParams, preselection: bool,
                        max_draws: int, buffer_fraction: float = 1 / 8) -> Callable:
  """generate_sr(params_g, key, cond_NxC, aux) -> (object_NxO, draws_N): each CR event's object drawn from
  the generator's SR conditional, p_SR(object | event) ~ p_G(object | event) [the event passes the SR
  selection], by rejection: objects are redrawn (fresh latents) until the GANed event passes the fake ID and
  the preselection, at most `max_draws` times per event, in one XLA program. The SR conditional vanishes
  outside the selection (the paper's SR is defined by it, Sec. 3; the simulator's ideal generator
  `gjets.sample_sr_fakes` draws it the same way), but a generator trained on SR events leaks a little
  probability across the cuts (m_gg window, pT/m, the ID threshold): without the redraw those events sit in
  the GANed CR where no SR event can. draws_N: the draw that passed (1 = the first, the object of a single
  draw with `key`), 0 if none did (the first draw kept). max_draws = 1 is the paper's single draw.

  `generate` is `metric.make_generate_fn`'s. After the first draw of every event, each round of a
  lax.while_loop regenerates only a fixed-size buffer (buffer_fraction of the events) of the events still
  failing, so the cost does not scale with max_draws x N when a few events never pass. Round r draws
  event i's latent as row i of generate.latents(fold_in(key, r), N): while the failing events fit in the
  buffer, round r is every failing event's draw r + 1, the same as regenerating all events each round."""
  gen_names, relative, qt = prep.gen_names, prep.relative, prep.gen_qt

  def passes(u_NxO, aux):
    full = {**aux, **metric.to_physical(qt.inverse(u_NxO), aux, gen_names, relative)}
    ok = full["fake_id"] > params.sr_id_min
    if preselection:
      full.update(gjets.diphoton(full["pho_pt"], full["pho_eta"], full["pho_phi"], full["fake_pt"],
                                 full["fake_eta"], full["fake_phi"], xp=jnp))
      ok &= gjets.preselection(full, params, xp=jnp)
    return ok

  def generate_sr(params_g, key, cond_NxC, aux):
    n = cond_NxC.shape[0]
    n_buf = int(min(n, max(1024, int(n * buffer_fraction))))
    first = generate(params_g, key, cond_NxC)
    found = passes(first, aux)
    draws = found.astype(jnp.int32)                  # the draw that passed (0: none yet)
    tried = jnp.ones(n, jnp.int32)                    # draws made per event

    def more(carry):
      _, _, found, _, tried = carry
      return jnp.any(~found & (tried < max_draws))

    def redraw(carry):
      r, chosen, found, draws, tried = carry
      idx = jnp.nonzero(~found & (tried < max_draws), size=n_buf, fill_value=n)[0]
      live = idx < n
      row = jnp.where(live, idx, 0)
      z = generate.latents(jax.random.fold_in(key, r), n)[row]
      cand = generate.apply(params_g, z, cond_NxC[row])
      ok = live & passes(cand, jax.tree.map(lambda a: a[row], aux))
      take = jnp.where(ok, idx, n)                    # out of range: dropped by the scatters
      tried = tried.at[jnp.where(live, idx, n)].add(1, mode="drop")
      chosen = chosen.at[take].set(cand, mode="drop")
      draws = draws.at[take].set(tried[row], mode="drop")
      return r + 1, chosen, found.at[take].set(True, mode="drop"), draws, tried

    _, chosen, _, draws, _ = jax.lax.while_loop(more, redraw, (1, first, found, draws, tried))
    return chosen, draws

  return generate_sr


def ganed_table(cr: dict, gen_phys_NxO: np.ndarray, gen_names: Sequence[str],
                params: gjets.GJetsParams = gjets.GJetsParams(), preselection: bool = True) -> dict:
  """Every CR column, plus gan_<feature> for the generated object, gan_<diphoton> recomputed, and
  gan_pass_sr: whether the GANed event passes the SR selection (preselection and fake ID)."""
  out = dict(cr)
  g = {n: gen_phys_NxO[:, i].astype(np.float32) for i, n in enumerate(gen_names)}
  if "fake_phi" in g:
    g["fake_phi"] = gjets.wrap_phi(g["fake_phi"]).astype(np.float32)
  for n, v in g.items():
    out["gan_" + n] = v
  full = {**cr, **g}
  dip = gjets.diphoton(full["pho_pt"], full["pho_eta"], full["pho_phi"], full["fake_pt"], full["fake_eta"],
                       full["fake_phi"])
  for n, v in dip.items():
    out["gan_" + n] = v.astype(np.float32)
  full.update(dip)
  passed = full["fake_id"] > params.sr_id_min
  if preselection:
    passed &= gjets.preselection(full, params)
  out["gan_pass_sr"] = passed
  return out


def s2_table(config, prep: Prepared, ganed: dict) -> dict:
  """Separation power S^2 (DCTR paper Eq. 15) of the generated and diphoton columns against the MC SR test
  set: GANed CR next to MC CR."""
  s2 = {}
  for col in list(prep.gen_names) + list(gjets.DIPHOTON_COLUMNS):
    edges = histogram_edges(prep.test[col], config.output.s2_bins, (0.0, 0.995))
    s2[col] = {"ganed_cr_vs_mc_sr": separation_power(ganed["gan_" + col], prep.test[col], edges),
               "mc_cr_vs_mc_sr": separation_power(prep.cr[col], prep.test[col], edges)}
  return s2


def apply_dctr(config, prep: Prepared, params_g, generate, ganed: dict, key, on_mesh=jnp.asarray) -> dict:
  """DCTR for the conditional generator: a classifier of MC SR training events (object + conditions) vs the
  generator applied to the same events' conditions gives w = h/(1-h) ~ p_SR(obj|cond) / p_GAN(obj|cond);
  the weights are applied to the GANed CR (column `dctr_weight`, in place) and the 15 observables are
  compared with the MC SR test set before and after (S^2, dilution r; dctrgan paper Eq. 15, Sec. II B)."""
  from ganjax import validation
  from ganjax.dctr import reweight
  from ganjax.metrics.dilution import observable_report

  gen_names, cond_names = prep.gen_names, prep.cond_names
  g_u = np.asarray(generate(params_g, jax.random.fold_in(key, 1), on_mesh(prep.cond(prep.train, 0))))
  g_phys = metric.to_physical(np.asarray(prep.gen_qt.inverse(g_u.astype(np.float64))), prep.train, gen_names,
                              prep.relative)
  generated = {**{c: prep.train[c] for c in cond_names}, **g_phys}
  cfg = reweight.default_config()
  cfg.columns = list(gen_names) + list(cond_names)
  overrides = config.dctr.to_dict()
  overrides.pop("enabled")
  cfg.update_from_flattened_dict({k: v for k, v in _flatten(overrides).items()})
  cfg.seed = config.seed
  apply_to = {**{c: ganed[c] for c in cond_names}, **{c: ganed["gan_" + c] for c in gen_names}}
  w, report = reweight.reweight(prep.train, generated, cfg, apply_to=apply_to)
  ganed["dctr_weight"] = w.astype(np.float32)
  ganed_view = {c: ganed.get("gan_" + c, ganed[c]) for c in validation.HGG_OBSERVABLES}
  obs = observable_report({c: prep.test[c] for c in validation.HGG_OBSERVABLES}, ganed_view, w,
                          validation.HGG_OBSERVABLES, n_bins=config.output.s2_bins)
  return {"classifier": {k: v for k, v in report.items() if k != "history"}, **obs}


def _flatten(d: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
