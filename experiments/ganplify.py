"""GANplifying: train an ensemble of GANs (one vmapped program) and measure the amplification factor.

  python experiments/ganplify.py --config configs/ganplify.py:1d --workdir runs/ganplify_1d

Writes to --workdir: checkpoints/ (resumable), train_log.jsonl, mse_history.jsonl (with
eval.history_every > 0: every member's quantile MSE vs epoch, the convergence diagnostic), results.json
(curves with ensemble bands, amplification factors per binning, the history, runtimes), and the paper-like
plots (mse_*.png = Figs. 2/4/6/7 left, deviation_7x7.png = Fig. 5, amplification_vs_quantiles.png = Fig. 7
right, camel.png = Fig. 1).
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data import toys
from ganjax.io import write_json
from ganjax.metrics import quantiles as qm
from ganjax.train import ganplify as gtrain


def _log_grid(n_chunks: int, n_points: int = 40) -> np.ndarray:
  """Chunk indices (0-based) at roughly log-spaced N = (k + 1) * chunk, always including the last."""
  k = np.unique(np.round(np.logspace(0, np.log10(n_chunks), n_points)).astype(int)) - 1
  return np.unique(np.append(k, n_chunks - 1))


def _finite(x):
  """JSON-safe float: inf (an MSE band reaching zero) becomes None."""
  x = float(x)
  return x if np.isfinite(x) else None


def evaluate(config, state, ens, x_train_MxNxD, log=print) -> dict:
  """Quantile-MSE curves of GAN, truth samples (and the 1D fit), and the amplification read-off."""
  toy = toys.get_toy(config.toy)
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
    return jax.vmap(lambda p, k: qm.mse_curve(partial(ens.trainer.generate, p), k, toy.to_coords, binnings,
                                              n_chunks, ev.chunk))(g_params_M, keys_M)

  gan = jax.tree.map(np.asarray, gan_curves(state["g_params"], jax.random.split(k_gan, n_members)))
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
    a = qm.amplification_summary(g[:, -1], gan["noise"][:, -1, b_i], b.n_bins, config.n_train)
    final = gb["mean"][-1]
    a["n_gen"] = int(ev.n_gen)
    a["n_saturation"] = int((np.argmax(gb["mean"] <= 1.1 * final) + 1) * ev.chunk)  # within 10% of final
    a["train_amplification"] = float(qm.amplification(train_mse[:, b_i].mean(), b.n_bins, config.n_train))
    if fit_mse is not None:
      fb = qm.band(fit_mse[:, b_i])
      c["fit_mse_mean"], c["fit_mse_std"] = float(fb["mean"]), float(fb["std"])
      a["fit_amplification"] = float(qm.amplification(fb["mean"], b.n_bins, config.n_train))
      a["fit_amplification_lo"] = float(qm.amplification(fb["mean"] + fb["std"], b.n_bins, config.n_train))
      a["fit_amplification_hi"] = _finite(qm.amplification(fb["mean"] - fb["std"], b.n_bins, config.n_train))
    curves[b.name] = c
    amp[b.name] = {k: (_finite(v) if isinstance(v, float) else v) for k, v in a.items()}

  out = {"curves": curves, "amplification": amp}
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
    p0 = jax.tree.map(lambda a: a[0], state["g_params"])
    out["camel"] = {"train": np.asarray(x_train_MxNxD[0, :, 0]),
                    "gan": np.asarray(jax.jit(ens.trainer.generate, static_argnums=2)(p0, k_show, 20_000))[:, 0]}
    if ev.fit:
      out["camel"]["fit_params"] = fits["params"][0]
  return out

def train_with_history(config, x_train_MxNxD, workdir: str, log=print):
  """train_ensemble in stages of eval.history_every epochs, recording each member's quantile MSE after each.

  The MSE of eval.history_n_gen GANned events per member (all binnings) and its amplification summary go to
  workdir/mse_history.jsonl, one line per stage: how far from convergence, and how noisy, the members are.
  Resumable: stages already recorded are skipped (the lr schedule depends on the epoch only, so stopping
  at a stage and resuming gives the same training as one straight run).
  """
  ev = config.eval
  every, total = int(ev.history_every), int(config.train.epochs)
  if ev.history_n_gen % ev.chunk:
    raise ValueError(f"config.eval: history_n_gen={ev.history_n_gen} must be a multiple of chunk={ev.chunk}")
  toy = toys.get_toy(config.toy)
  binnings = toys.make_binnings(toy, ev.binnings)
  path = os.path.join(workdir, "mse_history.jsonl")
  done = set()
  if os.path.exists(path):
    with open(path) as f:
      done = {json.loads(line)["epoch"] for line in f if line.strip()}
  targets = [e for e in range(every, total, every) if e not in done] + [total]
  ens, member_mse = None, None
  for target in targets:
    stage = config.copy_and_resolve_references()
    stage.train.epochs = target
    state, ens = gtrain.train_ensemble(stage, x_train_MxNxD, workdir, log=log, ens=ens)
    epoch = int(np.asarray(state["epoch"])[0])
    if epoch in done:
      continue
    if member_mse is None:
      @jax.jit
      def member_mse(g_params_M, key):
        keys = jax.random.split(key, x_train_MxNxD.shape[0])
        return jax.vmap(lambda p, k: jax.tree.map(lambda a: a[-1], qm.mse_curve(
            partial(ens.trainer.generate, p), k, toy.to_coords, binnings, ev.history_n_gen // ev.chunk,
            ev.chunk)))(g_params_M, keys)
    r = jax.tree.map(np.asarray, member_mse(state["g_params"], jax.random.fold_in(
        jax.random.PRNGKey(config.seed + 2), epoch)))
    rec = {"epoch": epoch, "n_gen": int(ev.history_n_gen)}
    for b_i, b in enumerate(binnings):
      a = qm.amplification_summary(r["mse"][:, b_i], r["noise"][:, b_i], b.n_bins, config.n_train)
      rec[b.name] = {"member_mse": r["mse"][:, b_i].tolist(), **{k: _finite(v) for k, v in a.items()}}
    os.makedirs(workdir, exist_ok=True)
    with open(path, "a") as f:
      f.write(json.dumps(rec) + "\n")
    done.add(epoch)
    log(f"epoch {epoch}: " + " ".join(
        f"{b.name} amp {rec[b.name]['amplification']:.2f} (median member "
        f"{rec[b.name]['member_amplification_median']:.2f})" for b in binnings))
  return state, ens


def run(config, workdir: str, log=print) -> dict:
  """Train (or resume) the ensemble in workdir, evaluate, write results.json and plots."""
  toy = toys.get_toy(config.toy)
  x_train = toys.training_samples(toy, jax.random.PRNGKey(config.seed + 10_000), config.n_members, config.n_train)
  t0 = time.time()
  if config.eval.history_every:
    state, ens = train_with_history(config, x_train, workdir, log=log)
  else:
    state, ens = gtrain.train_ensemble(config, x_train, workdir, log=log)
  train_s = time.time() - t0
  t0 = time.time()
  res = evaluate(config, state, ens, x_train, log=log)
  eval_s = time.time() - t0
  n_params = {k: int(sum(a[0].size for a in jax.tree.leaves(state[k]))) for k in ("g_params", "d_params")}
  hist_path = os.path.join(workdir, "mse_history.jsonl")
  if config.eval.history_every and os.path.exists(hist_path):
    with open(hist_path) as f:
      res["history"] = sorted((json.loads(line) for line in f if line.strip()), key=lambda r: r["epoch"])
  res.update(config=config.to_dict(), n_params=n_params,
             runtime={"train_s": train_s, "eval_s": eval_s, "device": str(jax.devices()[0].device_kind),
                      "n_devices": jax.device_count()})
  write_json(os.path.join(workdir, "results.json"), res)
  from ganjax.plots import ganplify as gplots
  gplots.plot_all(res, workdir)
  for name, a in res["amplification"].items():
    fit = f" fit {a['fit_amplification']:.2f}" if "fit_amplification" in a else ""
    log(f"{name}: amplification {a['amplification']:.2f} [{a['amplification_lo']:.2f}, "
        f"{a['amplification_hi'] or float('inf'):.2f}] asymptote {a['asymptote_amplification'] or float('inf'):.2f}"
        f" at N={a['n_gen']}{fit}")
  return res


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  run(_CONFIG.value, flags.FLAGS.workdir)


if __name__ == "__main__":
  from absl import app, flags, logging
  from ml_collections import config_flags

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  _CONFIG = config_flags.DEFINE_config_file("config", None, "configs/ganplify.py:<preset>", lock_config=True)
  flags.DEFINE_string("workdir", None, "output directory (resumes from its checkpoints)")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
