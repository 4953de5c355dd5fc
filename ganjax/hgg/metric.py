"""The S-sample validation metric in one jitted call (hgg-background-gan paper, Sec. 2.4-2.5, Eq. 2), and the
chunked generation of one object per event that applies a generator to a whole table.

For every event the generator produces S objects with independent latents; all S x N objects are binned in
the metric's dimensions and histogrammed in one XLA program: a `lax.scan` over samples of a `lax.scan` over
fixed-size event chunks, so memory is bounded by the chunk whatever S and N are. The latent of (sample s,
chunk c) is normal(fold_in(fold_in(key, s), c)), so the histogram of samples {0..S-1} is exactly the sum of
the histograms of each sample alone (tested). Chunks are sized to the event count (`chunk_layout`), so a
4k-event set is not padded to a 16k chunk (every padded event costs a generator call per sample).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data import gjets
from ganjax.data.gjets import DIPHOTON_COLUMNS, diphoton
from ganjax.data.preprocess import QuantileTransform
from ganjax.metrics import likelihood
from ganjax.parallel import shard_batch

PROMPT_AUX = ("pho_pt", "pho_eta", "pho_phi")
RECOIL_PHI = "recoil_phi"  # a reference that is not a column: the prompt photon's recoil axis, pho_phi + pi
# The fake's pT "relative to the preselection": log((pT - lo) / pT_gamma), lo the lowest pT for which the
# diphoton passes the kinematic cuts given the photon and the fake's direction (gjets.fake_pt_window).
PRESELECTION = "preselection"
# The same with the window's upper end hi too (m_gg < 180 GeV, the pT/m cuts): both edges at -+infinity.
WINDOW = "window"
PT_WINDOWS = (PRESELECTION, WINDOW)
_WINDOW_COLUMNS = ("pho_pt", "pho_eta", "pho_phi")
_WINDOW_EPS = 1e-6


def _xp(*arrays):
  """jax.numpy if any argument is a jax array (or a tracer), else numpy."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def reference(columns: dict, name: str):
  """The reference values of a relatively generated feature: a column, or the recoil axis wrap(pho_phi + pi)
  (where the jets balancing the photon point; numpy or jax)."""
  if name == RECOIL_PHI:
    return (columns["pho_phi"] + 2 * np.pi) % (2 * np.pi) - np.pi
  return columns[name]


def to_relative(values, ref_values, name: str):
  """A feature relative to its reference: momenta as the log of their ratio (a fake carries a fraction of
  its jet's pT), angles as the wrapped difference, anything else as the difference (numpy or jax)."""
  xp = _xp(values, ref_values)
  if name.endswith("_pt"):
    return xp.log(values) - xp.log(ref_values)
  v = values - ref_values
  return (v + np.pi) % (2 * np.pi) - np.pi if name.endswith("phi") else v


def from_relative(v, ref_values, name: str):
  """The inverse of `to_relative`."""
  xp = _xp(v, ref_values)
  if name.endswith("_pt"):
    return ref_values * xp.exp(v)
  v = v + ref_values
  return (v + np.pi) % (2 * np.pi) - np.pi if name.endswith("phi") else v


def window_to_model(pt, lo, pho_pt, hi=None):
  """The fake's pT above the preselection's lowest passing pT `lo` (gjets.fake_pt_window), in units of the
  photon's pT: log((pT - lo) / pT_gamma). Every real SR fake is above lo, so that edge, where the SR's
  conditional density is cut off at its highest (m_gg piles up at the 100 GeV cut), maps to -infinity and
  the generator never has to build a per-event cliff; far above it the coordinate is ln(pT / pT_gamma), the
  fake's share of the recoil, nearly independent of the event (numpy or jax).
  With the upper end `hi` (the WINDOW reference), minus log(1 - w), w = (pT - lo) / (hi - lo): the upper cut
  (m_gg < 180 GeV) goes to +infinity too, and far below it the coordinate is the one-sided one."""
  xp = _xp(pt, lo, pho_pt)
  v = xp.log(xp.maximum((pt - lo) / pho_pt, _WINDOW_EPS))
  if hi is None:
    return v
  return v - xp.log(xp.maximum(1.0 - (pt - lo) / xp.maximum(hi - lo, _WINDOW_EPS), _WINDOW_EPS))


def model_to_window(v, lo, pho_pt, hi=None):
  """The inverse of `window_to_model`: a pT above lo (and below hi) for any v. Two-sided: w = sigmoid(v - ln r),
  r = (hi - lo) / pT_gamma."""
  xp = _xp(v, lo, pho_pt)
  if hi is None:
    return lo + pho_pt * xp.exp(v)
  width = xp.maximum(hi - lo, _WINDOW_EPS)
  t = v - xp.log(width / pho_pt)
  return lo + width * (0.5 * (1.0 + xp.tanh(0.5 * t)))  # sigmoid(t), finite for any t


def pt_window(columns: dict, fake: dict | None = None):
  """gjets.fake_pt_window of the photon in `columns` and the fake direction in `fake` (else in columns)."""
  fake = fake or columns
  args = [columns[c] for c in _WINDOW_COLUMNS] + [fake["fake_eta"], fake["fake_phi"]]
  return gjets.fake_pt_window(*args, xp=_xp(*args))


def reference_columns(relative: dict | None) -> list[str]:
  """The table columns the references of `relative` are computed from."""
  out = []
  for r in (relative or {}).values():
    out += list(_WINDOW_COLUMNS) if r in PT_WINDOWS else ["pho_phi"] if r == RECOIL_PHI else [r]
  return list(dict.fromkeys(out))


class EvalEvents(NamedTuple):
  """Events padded to a whole number of chunks: cond_NxC (preprocessed), aux columns (physical), mask."""

  cond: jax.Array
  aux: dict
  mask: jax.Array
  n_events: int


def aux_columns(metric_dims: Sequence[str], gen_features: Sequence[str],
                relative: dict | None = None) -> tuple[str, ...]:
  """Physical event columns the metric needs besides the generated object."""
  need = reference_columns(relative)
  if any(d in DIPHOTON_COLUMNS for d in metric_dims):
    need += list(PROMPT_AUX)
  need += [d for d in metric_dims if d not in gen_features and d not in DIPHOTON_COLUMNS]
  return tuple(dict.fromkeys(need))


def to_physical(gen_phys_NxO, aux: dict, gen_features: Sequence[str], relative: dict | None) -> dict:
  """Generated features in physical units: those generated relative to a reference column (e.g. the
  fake's eta and phi relative to its parent jet) get the reference added back (phi wrapped)."""
  out, relative = {}, relative or {}
  for i, name in enumerate(gen_features):
    v = gen_phys_NxO[..., i]
    if name in relative and relative[name] not in PT_WINDOWS:
      v = from_relative(v, reference(aux, relative[name]), name)
    out[name] = v
  for name in [n for n in gen_features if relative.get(n) in PT_WINDOWS]:  # after the fake's direction
    lo, hi = pt_window(aux, {**aux, **out})
    out[name] = model_to_window(out[name], lo, aux["pho_pt"], hi if relative[name] == WINDOW else None)
  return out


def chunk_layout(n: int, chunk: int, multiple: int = 8) -> tuple[int, int]:
  """(n_chunks, chunk_size) for n events in chunks of at most `chunk`: as few chunks as `chunk` allows,
  of equal size rounded up to `multiple` (a multiple of the device count), so padding stays below
  n_chunks * multiple events instead of up to a whole chunk. `chunk_of(n_chunks * chunk_size, chunk)`
  recovers the layout from the padded length."""
  n_chunks = max(1, -(-n // chunk))
  size = min(chunk, -(-(-(-n // n_chunks)) // multiple) * multiple)
  return n_chunks, size


def chunk_of(n_pad: int, chunk: int) -> tuple[int, int]:
  """The (n_chunks, chunk_size) of a length padded by `chunk_layout` (static shapes only)."""
  n_chunks = max(1, -(-n_pad // chunk))
  return n_chunks, n_pad // n_chunks


def pad_events(cond_NxC: np.ndarray, aux: dict, chunk: int, multiple: int = 8) -> EvalEvents:
  """Pad to the `chunk_layout` of the events (padding is masked out of every histogram)."""
  n = cond_NxC.shape[0]
  n_chunks, size = chunk_layout(n, chunk, multiple)
  n_pad = n_chunks * size
  pad = lambda a: np.concatenate([a, np.zeros((n_pad - n,) + a.shape[1:], a.dtype)])
  mask = np.arange(n_pad) < n
  return EvalEvents(cond=jnp.asarray(pad(np.asarray(cond_NxC, np.float32))),
                    aux={k: jnp.asarray(pad(np.asarray(v, np.float32))) for k, v in aux.items()},
                    mask=jnp.asarray(mask), n_events=n)


def metric_coordinates(gen_u_NxO, aux: dict, gen_features: Sequence[str], metric_dims: Sequence[str],
                       gen_qt: QuantileTransform, metric_qt: QuantileTransform, relative: dict | None = None):
  """Map generated objects (in the generator's coordinates) plus event columns to the metric's [-1,1]^K.

  Generated dimensions generated in absolute form are used as they are (the metric's knots for them are
  the generator's); the others, and the diphoton dimensions, are recomputed from the physical generated
  object (and the prompt photon), then transformed with the metric's knots.
  """
  phys = None
  out = []
  for k, d in enumerate(metric_dims):
    if d in gen_features and not (relative and d in relative):
      out.append(gen_qt.to_uniform(gen_u_NxO)[..., gen_features.index(d)])
      continue
    if phys is None:
      phys = to_physical(gen_qt.inverse(gen_u_NxO), aux, gen_features, relative)
      if any(m in DIPHOTON_COLUMNS for m in metric_dims):
        phys.update(diphoton(aux["pho_pt"], aux["pho_eta"], aux["pho_phi"],
                             phys["fake_pt"], phys["fake_eta"], phys["fake_phi"], xp=jnp))
    if d in phys:
      value = phys[d]
    else:
      value = aux[d]
    qt = metric_qt.select([k])
    out.append(qt.forward(value[..., None])[..., 0])
  return jnp.stack(out, -1)


def make_histogram_fn(generator, latent_dim: int, gen_features: Sequence[str], metric_dims: Sequence[str],
                      gen_qt: QuantileTransform, metric_qt: QuantileTransform, n_bins: int,
                      chunk: int, relative: dict | None = None, mesh=None) -> Callable:
  """Returns hist(params_g, key, events, sample_ids) -> int32 counts over n_bins^K bins (jit it).
  With a `mesh`, every chunk of events is split over its devices (ganjax/parallel.py)."""
  gen_features = tuple(gen_features)
  metric_dims = tuple(metric_dims)

  def hist(params_g, key, events: EvalEvents, sample_ids):
    n_chunks, size = chunk_of(events.cond.shape[0], chunk)

    def one_chunk(counts, c, key_s):
      sl = lambda a: shard_batch(jax.lax.dynamic_slice_in_dim(a, c * size, size), mesh)
      z = shard_batch(jax.random.normal(jax.random.fold_in(key_s, c), (size, latent_dim)), mesh)
      g = generator.apply(params_g, z, sl(events.cond))
      u = metric_coordinates(g, {k: sl(v) for k, v in events.aux.items()}, gen_features, metric_dims,
                             gen_qt, metric_qt, relative)
      return counts + likelihood.histogram(u, n_bins, sl(events.mask))

    def one_sample(counts, s):
      key_s = jax.random.fold_in(key, s)
      counts, _ = jax.lax.scan(lambda cnt, c: (one_chunk(cnt, c, key_s), None), counts,
                               jnp.arange(n_chunks))
      return counts, None

    counts0 = jnp.zeros(n_bins ** len(metric_dims), jnp.int32)
    counts, _ = jax.lax.scan(one_sample, counts0, sample_ids)
    return counts

  return hist


def real_histogram(columns: dict, gen_features: Sequence[str], metric_dims: Sequence[str],
                   gen_qt: QuantileTransform, metric_qt: QuantileTransform, n_bins: int) -> np.ndarray:
  """m_k: counts of the real events (physical columns) in the metric's bins."""
  u = [metric_qt.select([k]).forward(np.asarray(columns[d], np.float64)[:, None])[:, 0]
       for k, d in enumerate(metric_dims)]
  idx = likelihood.flat_bin_index(np.stack(u, -1), n_bins)
  return np.bincount(idx, minlength=n_bins ** len(metric_dims))


def metric_spread(hist_fn: Callable, params_g, events: EvalEvents, real_counts, s_values: Sequence[int],
                  n_keys: int = 20, seed: int = 10_000) -> dict:
  """Mean and std of -2lnL of ONE generator over `n_keys` independent latent keys, for each S: the metric's
  own sampling noise (hgg paper Sec. 2.5, Fig. 2), which falls like 1/sqrt(S) where the generated
  histogram's Poisson noise dominates. `hist_fn` is the jitted `make_histogram_fn` result."""
  out = {}
  for s in s_values:
    ids = jnp.arange(s)
    vals = [likelihood.neg2_log_likelihood(real_counts, hist_fn(params_g, jax.random.PRNGKey(seed + k), events,
                                                                ids)) for k in range(n_keys)]
    out[f"S{s}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)), "n_keys": n_keys}
  return out


def make_generate_fn(generator, latent_dim: int, chunk: int, mesh=None) -> Callable:
  """generate(params_g, key, cond_NxC) -> object_NxO: one object per event, in fixed-size chunks (each
  split over the devices of `mesh`); the latent of chunk c is normal(fold_in(key, c)). Its two halves are
  attributes: generate.latents(key, n) -> z_NxL (the latents generate(key) uses for n events) and
  generate.apply(params_g, z_NxL, cond_NxC), so a subset of events can be regenerated with its own rows."""
  multiple = 8 * (mesh.size if mesh is not None else 1)

  def latents(key, n: int):
    n_chunks, size = chunk_layout(n, chunk, multiple)
    z = jax.vmap(lambda c: jax.random.normal(jax.random.fold_in(key, c), (size, latent_dim)))(jnp.arange(n_chunks))
    return z.reshape(n_chunks * size, latent_dim)[:n]

  def apply(params_g, z_NxL, cond_NxC):
    n = cond_NxC.shape[0]
    n_chunks, size = chunk_layout(n, chunk, multiple)
    pad = lambda a: jnp.pad(a, ((0, n_chunks * size - n), (0, 0))).reshape(n_chunks, size, -1)
    z, cond = pad(z_NxL), pad(cond_NxC)

    def one(c):
      return generator.apply(params_g, shard_batch(z[c], mesh), shard_batch(cond[c], mesh))

    return jax.lax.map(one, jnp.arange(n_chunks)).reshape(n_chunks * size, -1)[:n]

  def generate(params_g, key, cond_NxC):
    return apply(params_g, latents(key, cond_NxC.shape[0]), cond_NxC)

  generate.latents, generate.apply = latents, apply
  return generate


def make_index_fn(generator, latent_dim: int, gen_features: Sequence[str], metric_dims: Sequence[str],
                  gen_qt: QuantileTransform, metric_qt: QuantileTransform, n_bins: int, chunk: int,
                  relative: dict | None = None, mesh=None) -> Callable:
  """Returns index(params_g, key, events, sample_ids) -> int32 [S, N_pad]: the flat metric bin of every
  generated object, with the latents of `make_histogram_fn` (so the histogram of these indices over the
  unmasked events is exactly its counts). For event-level bootstrap errors (ganjax/metrics/event_bootstrap)."""
  gen_features, metric_dims = tuple(gen_features), tuple(metric_dims)

  def index(params_g, key, events: EvalEvents, sample_ids):
    n_chunks, size = chunk_of(events.cond.shape[0], chunk)

    def one(key_s, c):
      sl = lambda a: shard_batch(jax.lax.dynamic_slice_in_dim(a, c * size, size), mesh)
      z = shard_batch(jax.random.normal(jax.random.fold_in(key_s, c), (size, latent_dim)), mesh)
      g = generator.apply(params_g, z, sl(events.cond))
      u = metric_coordinates(g, {k: sl(v) for k, v in events.aux.items()}, gen_features, metric_dims,
                             gen_qt, metric_qt, relative)
      return likelihood.flat_bin_index(u, n_bins)

    def one_sample(s):
      key_s = jax.random.fold_in(key, s)
      return jax.lax.map(lambda c: one(key_s, c), jnp.arange(n_chunks)).reshape(-1)

    return jax.lax.map(one_sample, sample_ids)

  return index


def real_bin_index(columns: dict, metric_dims: Sequence[str], metric_qt: QuantileTransform,
                   n_bins: int) -> np.ndarray:
  """The flat metric bin of each real event (physical columns); its bincount is `real_histogram`."""
  u = [metric_qt.select([k]).forward(np.asarray(columns[d], np.float64)[:, None])[:, 0]
       for k, d in enumerate(metric_dims)]
  return np.asarray(likelihood.flat_bin_index(np.stack(u, -1), n_bins))
