"""Data of the main job: the SR and CR tables from the configured source, the SR split into train / val /
test, and the preprocessing fitted on SR training events only (quantile transforms, a pytree of arrays saved
with every checkpoint and applied identically at training and generation time; hgg paper Sec. 3.1)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ganjax.data import gjets
from ganjax.data.preprocess import QuantileTransform, dequantize, fit_quantile_transform
from ganjax.engine.errors import BadInputError
from ganjax.hgg import metric
from ganjax.hgg.checks import cond_features


def region_params(config) -> gjets.GJetsParams:
  """The simulator's parameters (the preset named by data.simulator) with the configured region thresholds."""
  name = config.data.get("simulator", "default")
  if name not in gjets.PRESETS:
    raise BadInputError(f"data.simulator={name!r} is not a simulator preset; use one of {sorted(gjets.PRESETS)}")
  fields = {f.name for f in dataclasses.fields(gjets.GJetsParams)}
  overrides = {}
  for item in [i for i in config.data.get("simulator_set", "").split(",") if i.strip()]:
    key, _, value = item.partition("=")
    key = key.strip()
    try:
      overrides[key] = float(value)
    except ValueError:
      raise BadInputError(f"data.simulator_set: {item!r} is not name=number") from None
    if key not in fields:
      raise BadInputError(f"data.simulator_set: {key!r} is not a GJetsParams field (ganjax/data/gjets.py)")
  return dataclasses.replace(gjets.PRESETS[name], **overrides, sr_id_min=config.data.sr_id_min,
                             cr_id_floor=config.data.cr_id_floor, prompt_id_min=config.data.prompt_id_min)


def load_regions(config) -> tuple[dict, dict, str]:
  """(SR, CR, description) from the configured source: the simulator, NanoAOD or a flat table."""
  if config.data.source == "simulate":
    events = gjets.simulate(config.data.n_events, seed=config.data.sim_seed, params=region_params(config))
    sr, cr = gjets.split_regions(events)
    return sr, cr, (f"built-in gamma+jets simulator ({config.data.simulator}, n_events={config.data.n_events}, "
                    f"seed={config.data.sim_seed})")
  from ganjax.data import sources
  try:
    return sources.load_source(config.data.source, config.data)
  except (ValueError, OSError) as e:
    raise BadInputError(str(e)) from e


class Prepared:
  """Splits, fitted transforms and model-space arrays of one run."""

  def __init__(self, config, sr: dict, cr: dict):
    self.gen_names = tuple(config.gen_features)
    self.cond_names = cond_features(config)
    self.metric_dims = tuple(config.metric.dims)
    rng = np.random.default_rng(config.seed)
    n_sr = len(sr[self.gen_names[0]])
    n_tr, n_va, n_te = config.data.n_train, config.data.n_val, config.data.n_test
    if n_tr + n_va + n_te > n_sr:
      raise BadInputError(f"the SR has {n_sr} events but data.n_train + n_val + n_test = "
                          f"{n_tr + n_va + n_te}; lower them or simulate more (data.n_events)")
    perm = rng.permutation(n_sr)
    take = lambda idx: {k: v[idx] for k, v in sr.items()}
    self.train = take(perm[:n_tr])
    self.val = take(perm[n_tr:n_tr + n_va])
    self.test = take(perm[n_tr + n_va:n_tr + n_va + n_te])
    n_cr = len(cr[self.gen_names[0]])
    if config.data.n_cr and config.data.n_cr < n_cr:
      keep = rng.permutation(n_cr)[:config.data.n_cr]  # one subset of events for every column
      cr = {k: v[keep] for k, v in cr.items()}
    self.cr = cr
    self._dq_seed = config.seed + 1
    # The fake sits near its parent jet's axis: when the jet is conditional input, generate its eta and phi
    # relative to the jet (a bijection given the condition), which removes the phi wrap-around.
    # relative_features: those generated relative to the jet even without relative_to_jet (the default is
    # the fake's phi: no wrap-around at +-pi, and no identity map y_phi,fake ~ y_phi,jet to learn).
    # An entry "fake_phi=recoil_phi" names the reference (a conditional column, or the photon's recoil axis
    # metric.RECOIL_PHI when the photon's phi is a condition); a bare name means the parent jet. The first
    # entry of a feature whose reference the conditions provide is used (so one default serves every
    # strategy), none: the feature is generated in absolute form.
    wanted = ("fake_eta", "fake_phi") if config.relative_to_jet else tuple(config.get("relative_features", ()))
    self.relative = {}
    for item in wanted:
      g, _, ref = (p.strip() for p in item.partition("="))
      ref = ref or {"fake_eta": "jet_eta", "fake_phi": "jet_phi"}.get(g, "")
      window = ref not in metric.PT_WINDOWS or (g == "fake_pt" and config.data.preselection and {
          "fake_eta", "fake_phi"} <= set(self.gen_names))  # the window needs the generated fake's direction
      if g in self.gen_names and g not in self.relative and ref and window and all(
          c in self.cond_names for c in metric.reference_columns({g: ref})):
        self.relative[g] = ref

    # With the fake's phi relative to its jet, the prompt photon's phi is a condition relative to the jet too
    # (a bijection given jet_phi): the recoil fixes the true jet's azimuth from the photon's, so the fake's
    # offset from the reported jet follows the photon's offset, a near-linear map in these coordinates and a
    # periodic difference of two absolute angles otherwise.
    # Likewise with the fake's phi relative to the recoil axis, the jet's phi is a condition relative to it.
    both = "pho_phi" in self.cond_names and "jet_phi" in self.cond_names
    self.cond_relative = ({"pho_phi": "jet_phi"} if both and self.relative.get("fake_phi") == "jet_phi" else
                          {"jet_phi": metric.RECOIL_PHI} if both and self.relative.get("fake_phi") == metric.RECOIL_PHI
                          else {})
    # Generated eta columns in absolute form skip the detector's excluded |eta| interval (the ECAL
    # barrel-endcap gap): squeezed out before the quantile transform, so no generated value lands in it.
    gap = tuple(config.data.eta_gap)
    self.gaps = {g: gap for g in self.gen_names if gap and g.endswith("_eta") and g not in self.relative}
    model_cols = self.gen_names + self.cond_names
    gaps_Dx2 = np.array([self.gaps.get(g, (0.0, 0.0)) for g in model_cols], np.float32).reshape(-1, 2)
    x = self._model_matrix(self.train, model_cols, 0)
    self._check_gaps(x, gaps_Dx2)
    # Conditions in the same coordinates as the generated object (with normal coordinates and a linear
    # output, y_fake ~ y_jet is close to the identity).
    qt = fit_quantile_transform(x, config.data.n_quantiles, config.data.quantile_output,
                                gaps_Dx2 if self.gaps else None, config.data.quantile_tails)
    self.gen_qt = qt.select(range(len(self.gen_names)))
    self.cond_qt = qt.select(range(len(self.gen_names), len(model_cols)))
    rows, metric_gaps = [], []
    for d in self.metric_dims:
      if d in self.gen_names and d not in self.relative:
        rows.append(np.asarray(self.gen_qt.knots_DxQ[self.gen_names.index(d)]))
        metric_gaps.append(gaps_Dx2[self.gen_names.index(d)])
      else:
        values = self.train[d] if d in self.train else gjets.diphoton(
            *[self.train[c] for c in ("pho_pt", "pho_eta", "pho_phi", "fake_pt", "fake_eta", "fake_phi")])[d]
        rows.append(np.asarray(fit_quantile_transform(  # knots at the generator's probabilities
            self._maybe_dequantize(d, values, 1)[:, None], config.data.n_quantiles, config.data.quantile_output,
            tails=config.data.quantile_tails).knots_DxQ[0]))
        metric_gaps.append(np.zeros(2, np.float32))
    # The metric bins in uniform coordinates; its knots for generated columns are the generator's.
    self.metric_qt = QuantileTransform(knots_DxQ=np.stack(rows), probs_Q=self.gen_qt.probs_Q,
                                       gaps_Dx2=np.stack(metric_gaps) if self.gaps else None)

  def _check_gaps(self, x_NxD, gaps_Dx2):
    """The squeeze is a bijection only outside the gap: training values inside it are bad input."""
    for i, g in enumerate(self.gen_names):
      a, b = gaps_Dx2[i]
      inside = int(np.sum((np.abs(x_NxD[:, i]) > a) & (np.abs(x_NxD[:, i]) < b)))
      if g in self.gaps and inside:
        raise BadInputError(f"{inside} of {len(x_NxD)} SR training events have {g} inside the excluded "
                            f"interval {a:g} < |{g}| < {b:g} (data.eta_gap); apply the acceptance or set "
                            f"--config.data.eta_gap='()'")

  def _maybe_dequantize(self, name, values, salt):
    if name in gjets.INTEGER_COLUMNS:
      return dequantize(values, np.random.default_rng([self._dq_seed, salt]))
    return np.asarray(values, np.float64)

  def _model_values(self, table, name, salt):
    """A column as the model sees it: de-quantised if integer, relative to the jet if so configured (the
    generated `relative` ones and the conditions in `cond_relative`)."""
    ref = self.relative.get(name) or self.cond_relative.get(name)
    if ref in metric.PT_WINDOWS:
      cols = {c: np.asarray(table[c], np.float64) for c in ("pho_pt", "pho_eta", "pho_phi", "fake_eta", "fake_phi")}
      lo, hi = metric.pt_window(cols)
      return metric.window_to_model(np.asarray(table[name], np.float64), lo, cols["pho_pt"],
                                    hi if ref == metric.WINDOW else None)
    if ref:
      return metric.to_relative(np.asarray(table[name], np.float64), metric.reference(table, ref), name)
    return self._maybe_dequantize(name, table[name], salt)

  def _model_matrix(self, table, names, salt):
    cols = [self._model_values(table, n, salt) for n in names]
    return np.stack(cols, -1) if cols else np.zeros((len(table[self.gen_names[0]]), 0))

  def cond(self, table, salt: int) -> np.ndarray:
    """Preprocessed conditional features of a table (integer columns de-quantised)."""
    x = self._model_matrix(table, self.cond_names, salt)
    return np.asarray(self.cond_qt.forward(x), np.float32) if x.shape[1] else x.astype(np.float32)

  def gen(self, table) -> np.ndarray:
    return np.asarray(self.gen_qt.forward(self._model_matrix(table, self.gen_names, 0)), np.float32)

  def transforms(self) -> dict:
    """The fitted transforms, as saved in every checkpoint (orbax cannot save the empty vanilla `cond`)."""
    out = {"gen": self.gen_qt, "metric": self.metric_qt}
    if self.cond_names:
      out["cond"] = self.cond_qt
    return out
