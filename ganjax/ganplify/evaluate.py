"""GANplifying evaluation (ganplifying paper Secs. 3-5): quantile-MSE curves of the GAN ensemble, of truth
samples and of the 1D fit, and the amplification read off where the GAN's MSE equals a truth sample's."""

from __future__ import annotations

import time
from functools import partial

import jax
import numpy as np

from ganjax.data import toys
from ganjax.metrics import quantiles as qm


def _log_grid(n_chunks: int, n_points: int = 40) -> np.ndarray:
  """Chunk indices (0-based) at roughly log-spaced N = (k + 1) * chunk, always including the last."""
  k = np.unique(np.round(np.logspace(0, np.log10(n_chunks), n_points)).astype(int)) - 1
  return np.unique(np.append(k, n_chunks - 1))


def _finite(x):
  """JSON-safe float: inf (an MSE band reaching zero) becomes None."""
  x = float(x)
  return x if np.isfinite(x) else None


def evaluate(config, g_params_M, generate, x_train_MxNxD, log=print) -> dict:
  """Quantile-MSE curves of GAN, truth samples (and the 1D fit), and the amplification read-off."""
  toy = toys.get_toy(config.data.toy)
  binnings = toys.make_binnings(toy, config.eval.binnings)
  ev = config.eval
  if ev.n_gen % ev.chunk:
    raise ValueError(f"config.eval: n_gen={ev.n_gen} must be a multiple of chunk={ev.chunk}")
  n_chunks = ev.n_gen // ev.chunk
  n_members = x_train_MxNxD.shape[0]
  key = jax.random.PRNGKey(config.seed + 1)
  k_gan, k_sample, k_show = jax.random.split(key, 3)

  t0 = time.time()

  @jax.jit
  def gan_curves(g_params_M, keys_M):
    return jax.vmap(lambda p, k: qm.mse_curve(partial(generate, p), k, toy.to_coords, binnings,
                                              n_chunks, ev.chunk))(g_params_M, keys_M)

  gan = jax.tree.map(np.asarray, gan_curves(g_params_M, jax.random.split(k_gan, n_members)))
  log(f"GAN curves: {time.time() - t0:.1f} s")
  t0 = time.time()

  @jax.jit
  def sample_curves(keys_R):
    return jax.vmap(lambda k: qm.mse_curve(toy.sample, k, toy.to_coords, binnings, n_chunks, ev.chunk))(keys_R)

  smp = jax.tree.map(np.asarray, sample_curves(jax.random.split(k_sample, ev.n_sample_repeats)))
  train_mse = np.asarray(jax.jit(jax.vmap(lambda x: qm.counts_mse(x, toy.to_coords, binnings)))(x_train_MxNxD))
  log(f"sample curves: {time.time() - t0:.1f} s")

  fit_mse = None
  if ev.fit:
    if toy.dim != 1:
      raise ValueError(f"config.eval.fit is for the 1D camel only, toy is {toy.name!r}")
    from ganjax.metrics import fit as fitm
    t0 = time.time()
    fits = fitm.fit_samples(np.asarray(x_train_MxNxD)[..., 0])
    fit_mse = np.stack([qm.quantile_mse(fitm.fit_quantile_probs(fits["params"], b.inner_edges[0]))
                        for b in binnings], -1)  # M x B
    log(f"fits: {time.time() - t0:.1f} s, {int(fits['valid'].sum())}/{len(fits['valid'])} valid")

  grid = _log_grid(n_chunks)
  n_grid = (grid + 1) * ev.chunk
  curves, amp = {}, {}
  for b_i, b in enumerate(binnings):
    g, s = gan["mse"][:, :, b_i], smp["mse"][:, :, b_i]
    gb, sb = qm.band(g), qm.band(s)
    c = {"n_quantiles": b.n_bins, "n": n_grid, "gan_mean": gb["mean"][grid], "gan_std": gb["std"][grid],
         "sample_mean": sb["mean"][grid], "sample_std": sb["std"][grid],
         "sample_expectation": qm.sample_mse_expectation(n_grid, b.n_bins),
         "train_mse_mean": float(train_mse[:, b_i].mean()), "train_mse_std": float(train_mse[:, b_i].std(ddof=1))}
    a = qm.amplification_summary(g[:, -1], gan["noise"][:, -1, b_i], b.n_bins, config.data.n_train)
    final = gb["mean"][-1]
    a["n_gen"] = int(ev.n_gen)
    a["n_saturation"] = int((np.argmax(gb["mean"] <= 1.1 * final) + 1) * ev.chunk)  # within 10% of final
    a["train_amplification"] = float(qm.amplification(train_mse[:, b_i].mean(), b.n_bins, config.data.n_train))
    if fit_mse is not None:
      fb = qm.band(fit_mse[:, b_i])
      c["fit_mse_mean"], c["fit_mse_std"] = float(fb["mean"]), float(fb["std"])
      a["fit_amplification"] = float(qm.amplification(fb["mean"], b.n_bins, config.data.n_train))
      a["fit_amplification_lo"] = float(qm.amplification(fb["mean"] + fb["std"], b.n_bins, config.data.n_train))
      a["fit_amplification_hi"] = _finite(qm.amplification(fb["mean"] - fb["std"], b.n_bins, config.data.n_train))
    curves[b.name] = c
    amp[b.name] = {k: (_finite(v) if isinstance(v, float) else v) for k, v in a.items()}

  out = {"curves": curves, "amplification": amp}
  from ganjax import evaluation  # statistics with nulls, and the averaging amplification without truth
  out["evaluation"] = evaluation.ganplify(config, toy, binnings, gan["counts"], generate, g_params_M, ev.n_gen,
                                          ev.summary_events, seed=config.seed)
  # Fig. 5: 2D relative deviation maps of member 0 (training sample vs GANned events)
  for b_i, b in enumerate(binnings):
    if len(b.coords) == 2:
      train_counts = np.bincount(np.asarray(b.assign(toy.to_coords(x_train_MxNxD[0]))), minlength=b.n_bins)
      expect = 1.0 / b.n_bins
      out.setdefault("maps", {})[b.name] = {
          "shape": [b.n_per_coord] * 2, "coords": [toy.coordinates[i].name for i in b.coords],
          "train_rel_dev": (train_counts / train_counts.sum() - expect) / expect,
          "gan_rel_dev": (gan["counts"][b_i][0] / ev.n_gen - expect) / expect}
  if toy.dim == 1:  # Fig. 1: truth, member-0 training sample, fit, high-statistics GAN sample
    p0 = jax.tree.map(lambda a: a[0], g_params_M)
    out["camel"] = {"train": np.asarray(x_train_MxNxD[0, :, 0]),
                    "gan": np.asarray(jax.jit(generate, static_argnums=2)(p0, k_show, 20_000))[:, 0]}
    if ev.fit:
      out["camel"]["fit_params"] = fits["params"][0]
  return out
