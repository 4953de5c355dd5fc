"""GANplifying figures from a GANplifying metrics.json (ganjax.ganplify.run) (Figs. 1, 2, 4, 5, 6, 7 like)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from ganjax.plots.style import draw_ratio, hep_style, ratio_axes, save_figure  # noqa: E402

SAMPLE, GAN, FIT = "tab:blue", "tab:orange", "tab:green"


def _panel(ax, name: str, c: dict, amp: dict, n_train: int) -> None:
  n = np.asarray(c["n"], float)
  for key, col, lab in (("sample", SAMPLE, "sample"), ("gan", GAN, "GAN")):
    m, s = np.asarray(c[f"{key}_mean"]), np.asarray(c[f"{key}_std"])
    ax.plot(n, m, color=col, label=lab)
    ax.fill_between(n, np.maximum(m - s, m * 1e-2), m + s, color=col, alpha=0.25, lw=0)
  ax.plot(n, c["sample_expectation"], color=SAMPLE, ls=":", lw=1, label="sample, expectation")
  if "fit_mse_mean" in c:
    m, s = c["fit_mse_mean"], c["fit_mse_std"]
    ax.axhline(m, color=FIT, label=f"fit ({n_train} pts)")
    ax.axhspan(max(m - s, m * 1e-2), m + s, color=FIT, alpha=0.2, lw=0)
  ax.axvline(n_train, color="gray", lw=0.8, ls="--")
  ax.set(xscale="log", yscale="log", xlabel="number of events", ylabel="quantile MSE",
         title=f"{name} ({c['n_quantiles']} quantiles): amplification {amp['amplification']:.1f}")
  ax.legend(fontsize=7)


@hep_style()
def plot_mse_curves(res: dict, path: str, names=None) -> None:
  """Quantile MSE vs number of sampled / GANned events with ensemble bands (Figs. 2, 4, 6, 7 left)."""
  names = list(names or res["curves"])
  cols = min(3, len(names))
  rows = int(np.ceil(len(names) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    _panel(ax, name, res["curves"][name], res["amplification"][name], res["config"]["data"]["n_train"])
  for ax in list(axes.flat)[len(names):]:
    ax.set_visible(False)
  fig.tight_layout()
  save_figure(fig, path, dpi=120)


@hep_style()
def plot_deviation_maps(m: dict, path: str) -> None:
  """Relative deviation from 1/N_bins per 2D quantile: training sample vs GANned events (Fig. 5)."""
  shape = m["shape"]
  fig, axes = plt.subplots(1, 2, figsize=(9, 4))
  for ax, key, title in zip(axes, ("train_rel_dev", "gan_rel_dev"), ("training sample", "GAN")):
    im = ax.imshow(np.reshape(m[key], shape), origin="lower", cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set(xlabel=f"{m['coords'][1]} quantile", ylabel=f"{m['coords'][0]} quantile", title=title)
  fig.colorbar(im, ax=axes, label="relative deviation")
  save_figure(fig, path, dpi=120)


@hep_style()
def plot_amplification_vs_quantiles(res: dict, path: str, prefix: str = "5d_") -> None:
  """Amplification factor vs number of multi-dimensional quantiles, with band (Fig. 7 right)."""
  names = [n for n in res["amplification"] if n.startswith(prefix)]
  k = np.array([res["curves"][n]["n_quantiles"] for n in names])
  a = [res["amplification"][n] for n in names]
  mid = np.array([x["amplification"] for x in a])
  lo = np.array([x["amplification_lo"] for x in a])
  hi = np.array([x["amplification_hi"] if x["amplification_hi"] is not None else np.nan for x in a])
  fig, ax = plt.subplots(figsize=(4.5, 3.6))
  ax.errorbar(k, mid, yerr=[mid - lo, np.where(np.isfinite(hi), hi - mid, 0)], color=GAN, marker="o")
  ax.set(xscale="log", xlabel="number of quantiles", ylabel="amplification factor",
         title=f"N_gen = {a[0]['n_gen'] if a else 0}")
  fig.tight_layout()
  save_figure(fig, path, dpi=120)


@hep_style()
def plot_camel(c: dict, path: str) -> None:
  """Truth, one training sample, its fit and a high-statistics GAN sample (Fig. 1); below, each over the
  truth (binned samples over the truth's bin-averaged density, the fit over the truth density)."""
  x = np.linspace(-9, 9, 400)
  truth_pdf = lambda v: 0.5 * (norm.pdf(v, -4, 1) + norm.pdf(v, 4, 1))  # noqa: E731
  bins = np.linspace(-9, 9, 41)
  truth_binned = 0.5 * np.diff(norm.cdf(bins, -4, 1) + norm.cdf(bins, 4, 1)) / np.diff(bins)
  fig = plt.figure(figsize=(5, 4.6))
  ax, rax = ratio_axes(fig, None)
  ax.plot(x, truth_pdf(x), color="k", label="truth")
  for key, col, lab in (("train", SAMPLE, f"{len(c['train'])} samples"), ("gan", GAN, f"GAN ({len(c['gan'])})")):
    h = np.histogram(c[key], bins, density=True)[0]
    ax.stairs(h, bins, color=col, label=lab)
    draw_ratio(rax, bins, h, truth_binned, ylabel="/ truth", ylim=(0, 2), color=col)
  if "fit_params" in c:
    mu1, s1, mu2, s2, f = c["fit_params"]
    fit = f * norm.pdf(x, mu1, s1) + (1 - f) * norm.pdf(x, mu2, s2)
    ax.plot(x, fit, color=FIT, label="fit")
    rax.plot(x, fit / truth_pdf(x), color=FIT)
  ax.set(ylabel="density")
  rax.set(xlabel="x")
  ax.legend(fontsize=7)
  save_figure(fig, path, dpi=120)


def plot_all(res: dict, workdir: str) -> list[str]:
  """Every figure that applies to this result; returns the written paths."""
  out = []
  names = list(res["curves"])
  single = [n for n in names if res["curves"][n]["n_quantiles"] <= 10 or not n.startswith("5d_")]
  groups = {"mse.png": single}
  multi = [n for n in names if n not in single]
  if multi:
    groups["mse_multid.png"] = multi
  for fname, group in groups.items():
    out.append(os.path.join(workdir, fname))
    plot_mse_curves(res, out[-1], group)
  for name, m in res.get("maps", {}).items():
    out.append(os.path.join(workdir, f"deviation_{name}.png"))
    plot_deviation_maps(m, out[-1])
  if sum(n.startswith("5d_") for n in names) > 1:
    out.append(os.path.join(workdir, "amplification_vs_quantiles.png"))
    plot_amplification_vs_quantiles(res, out[-1])
  if "camel" in res:
    out.append(os.path.join(workdir, "camel.png"))
    plot_camel(res["camel"], out[-1])
  return out
