"""Figures of the analysis-specific GAN on Z -> mu mu (paper: analysis-specific-gan, Figs. 4, 5, 8, 9, 10).

Distributions are drawn against the held-out data with a GAN / data ratio panel below each (grey band:
the data's statistical uncertainty), in ganjax.plots.style.hep_style."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganjax.plots import style  # noqa: E402
from ganjax.plots.style import draw_ratio, hep_style, ratio_axes, save_figure  # noqa: E402

LABELS = {"mll": r"$M_{\mu\mu}$ [GeV]", "ptll": r"$p_T^{\mu\mu}$ [GeV]", "dphi": r"$\Delta\phi$ [rad]",
          "pt1": r"$p_T^{\mu1}$ [GeV]", "pt2": r"$p_T^{\mu2}$ [GeV]", "eta1": r"$\eta^{\mu1}$",
          "eta2": r"$\eta^{\mu2}$",
          **{f"{v}{i}": rf"${v[0]}_{{{v[1:] or ''}}}^{{\mu{i}}}$ [GeV]".replace("_{}", "")
             for v in ("px", "py", "pz", "E") for i in (1, 2)},
          **{f"iso{i}": rf"iso$_{i}$ [GeV]" for i in (1, 2)},
          **{f"dxy{i}": rf"$d_{{xy}}^{{\mu{i}}}$ [cm]" for i in (1, 2)},
          **{f"Q{i}": rf"$Q^{{\mu{i}}}$ [e]" for i in (1, 2)}}
EXPERIMENT = ("CMS", "Open Data", "2011A")  # the data of these figures: CMS 2011A open data
GAN_COLOR = "tab:red"


def _edges(ref: np.ndarray, n: int = 50) -> np.ndarray:
  lo, hi = np.quantile(ref, [0.005, 0.995])
  if hi <= lo:
    hi = lo + 1.0
  return np.linspace(lo, hi, n + 1)


def _hist_and_ratio(ax, rax, ref, gen, edges, weights_scale: bool = False) -> None:
  """data (filled) and GAN (line) on ax, normalised to densities (or to fractions with weights_scale);
  GAN / data with the data's statistical band on rax."""
  norm = (lambda c, x: c / len(x)) if weights_scale else (lambda c, x: c / (len(x) * np.diff(edges)))
  c_ref = np.histogram(ref, edges)[0].astype(float)
  h_ref, e_ref = norm(c_ref, ref), norm(np.sqrt(c_ref), ref)
  h_gen = norm(np.histogram(gen, edges)[0].astype(float), gen)
  ax.stairs(h_ref, edges, fill=True, alpha=0.35, color="k", label="data (test)")
  ax.stairs(h_gen, edges, color=GAN_COLOR, label="GAN")
  draw_ratio(rax, edges, h_gen, h_ref, ylabel="GAN / data", den_err=e_ref, color=GAN_COLOR)


@hep_style()
def features(data: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], names: Sequence[str],
             path: str, title: str = "") -> None:
  """Normalised histograms, data vs generated, one panel per quantity with its ratio panel (Figs. 5-8)."""
  n = len(names)
  cols = min(4, n)
  rows = -(-n // cols)
  fig = plt.figure(figsize=(3.3 * cols, 3.6 * rows))
  grid = fig.add_gridspec(rows, cols, hspace=0.35, wspace=0.25)
  first = None
  for i, name in enumerate(names):
    ax, rax = ratio_axes(fig, grid[divmod(i, cols)])
    first = first or ax
    ref = np.asarray(data[name])
    if name.startswith("iso"):
      edges = np.concatenate([[-0.5, 0.0], np.logspace(np.log10(0.1), np.log10(max(ref.max(), 1.0)), 30)])
      ax.set_xscale("symlog", linthresh=0.1)
    elif name.startswith("dxy"):
      edges = np.linspace(-0.15, 0.15, 51)
    else:
      edges = _edges(ref)
    _hist_and_ratio(ax, rax, np.clip(ref, edges[0], edges[-1]),
                    np.clip(np.asarray(gen[name]), edges[0], edges[-1]), edges)
    rax.set_xlabel(LABELS.get(name, name))
    rax.set_ylabel("GAN / data" if i % cols == 0 else "")
    ax.set_ylabel("normalised" if i % cols == 0 else "")
    ax.set_yticks([])
  first.legend(fontsize=7, title="end bins: overflow", title_fontsize=6)
  style.experiment_label(first, *EXPERIMENT[:2], rlabel=EXPERIMENT[2])
  if title:
    fig.suptitle(title)
  save_figure(fig, path)


@hep_style()
def correlations(c_data: np.ndarray, c_gen: np.ndarray, names: Sequence[str], path: str,
                 kind: str = "Spearman rank") -> None:
  """Pairwise correlation matrices, data and generated, diagonal set to 0 (Fig. 9)."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
  for ax, c, t in zip(axes, (c_data, c_gen), ("data (test)", "GAN")):
    c = np.array(c)
    np.fill_diagonal(c, 0.0)
    im = ax.imshow(c, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(f"{t}: {kind} correlation")
  fig.colorbar(im, ax=axes, shrink=0.8)
  save_figure(fig, path)


@hep_style()
def zpt_and_spike(data: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], path: str) -> None:
  """Z pT (Fig. 10 left) and, when present, the isolation spike at 0 on a log scale (the sharp edge),
  each with its GAN / data ratio panel."""
  has_iso = "iso1" in data
  fig = plt.figure(figsize=(9 if has_iso else 4.5, 4.4))
  grid = fig.add_gridspec(1, 2 if has_iso else 1, wspace=0.3)
  ax, rax = ratio_axes(fig, grid[0, 0])
  edges = np.linspace(0, 100, 51)
  _hist_and_ratio(ax, rax, np.clip(data["ptll"], 0, 100), np.clip(gen["ptll"], 0, 100), edges)
  rax.set_xlabel(LABELS["ptll"])
  ax.set_ylabel(r"normalised [GeV$^{-1}$]")
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  style.experiment_label(ax, *EXPERIMENT[:2], rlabel=EXPERIMENT[2])
  if has_iso:
    ax, rax = ratio_axes(fig, grid[0, 1])
    edges = np.concatenate([[-0.15, -0.05, 0.05], np.logspace(-1, np.log10(200), 40)])
    binned = lambda x: np.where(x < 0, -0.1, np.where(x == 0, 0.0, np.clip(x, 0.1, 200)))  # noqa: E731
    _hist_and_ratio(ax, rax, binned(np.asarray(data["iso1"])), binned(np.asarray(gen["iso1"])), edges,
                    weights_scale=True)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_yscale("log")
    rax.set_xlabel(r"iso$_1$ [GeV] (bins: < 0, exactly 0, log-spaced > 0)")
    ax.set_ylabel("fraction of events")
  save_figure(fig, path)


@hep_style()
def history(hist: Mapping[str, list], reg_on: np.ndarray, regression: Sequence[str], path: str) -> None:
  """Training history per member: losses, batch mean / width of the regression quantity, KS sum (Fig. 4)."""
  steps = np.asarray(hist["step"])
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
  d, g = np.asarray(hist["d_loss"]), np.asarray(hist["g_bce"])
  for m in range(d.shape[1]):
    ls = "-" if reg_on[m] else ":"
    axes[0].plot(steps, d[:, m], ls, color="C0", lw=0.8)
    axes[0].plot(steps, g[:, m], ls, color="C1", lw=0.8)
    if regression:
      r = regression[0]
      axes[1].plot(steps, np.asarray(hist[f"g_{r}_mean"])[:, m], ls, color="C2", lw=0.8)
      axes[1].plot(steps, np.asarray(hist[f"g_{r}_std"])[:, m], ls, color="C4", lw=0.8)
    axes[2].plot(steps, np.asarray(hist["ks_sum_val"])[:, m], ls, lw=0.8)
  axes[0].set_title("D loss (blue), G BCE (orange)")
  axes[1].set_title(f"batch mean / width of {regression[0] if regression else ''}")
  axes[2].set_title("KS sum vs validation (solid: Eq. 2 on)")
  for ax in axes:
    ax.set_xlabel("step")
  fig.tight_layout()
  save_figure(fig, path)
