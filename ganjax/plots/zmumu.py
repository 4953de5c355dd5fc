"""Figures of the analysis-specific GAN on Z -> mu mu (paper: analysis-specific-gan, Figs. 4, 5, 8, 9, 10).

Distributions are drawn against the held-out data with a GAN / data ratio panel below each (grey band:
the data's statistical uncertainty), in ganjax.plots.style.hep_style. Every panel has its y-axis label and tick
numbers, every quantity its unit, and every figure of real data the experiment label (`exp_label`, e.g.
CMS Open Data, sqrt(s) = 7 TeV; config.eval.exp_label)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganjax.plots import style  # noqa: E402
from ganjax.plots.style import draw_ratio, hep_style, ratio_axes, save_figure  # noqa: E402

LABELS = {"mll": r"$M_{\mu\mu}$ [GeV]", "ptll": r"$p_T^{\mu\mu}$ [GeV]", "dphi": r"$\Delta\phi$",
          "pt1": r"$p_T^{\mu1}$ [GeV]", "pt2": r"$p_T^{\mu2}$ [GeV]", "eta1": r"$\eta^{\mu1}$",
          "eta2": r"$\eta^{\mu2}$", "mll_peak": r"$5\,\tanh((M_{\mu\mu} - M_Z) / 5)$ [GeV]",
          **{f"{c}{i}": rf"${s}^{{\mu{i}}}$ [GeV]" for i in (1, 2)
             for c, s in (("px", "p_x"), ("py", "p_y"), ("pz", "p_z"), ("E", "E"))},
          "iso1": r"iso$_1$ [GeV]", "iso2": r"iso$_2$ [GeV]", "dxy1": r"$d_{xy}^{\mu1}$ [cm]",
          "dxy2": r"$d_{xy}^{\mu2}$ [cm]", "Q1": r"$(Q_1 + 1) / 2$", "Q2": r"$(Q_2 + 1) / 2$",
          "offshell1": r"$E^{\mu1} - |\vec p^{\,\mu1}|$ [GeV]", "offshell2": r"$E^{\mu2} - |\vec p^{\,\mu2}|$ [GeV]"}
GAN_COLOR = "tab:red"
# The packaged data: CMS collisions of 2011 at 7 TeV. (experiment, text, right label); () = no label.
CMS_OPEN_DATA = ("CMS", "Open Data", "√s = 7 TeV")


def unit(name: str) -> str:
  """The unit in a quantity's label ('GeV', 'cm' or '')."""
  label = LABELS.get(name, name)
  return label[label.rindex("[") + 1:label.rindex("]")] if label.endswith("]") else ""


def density_label(name: str) -> str:
  """y label of a normalised histogram of `name`: 1/N dN/dx [1/unit]."""
  u = unit(name)
  return r"$1/N\,dN/dx$" + (f" [1/{u}]" if u else "")


def exp_label(ax, label: Sequence[str] = CMS_OPEN_DATA, fontsize: float = 10.0) -> None:
  """The experiment label above `ax` (style.experiment_label: experiment, text, right label such as sqrt(s));
  label=() draws nothing."""
  if label:
    exp, text, right = (tuple(label) + ("", "", ""))[:3]
    style.experiment_label(ax, exp, text, rlabel=right, fontsize=fontsize)


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
             path: str, title: str = "", label: Sequence[str] = CMS_OPEN_DATA) -> None:
  """Normalised histograms, data vs generated, one panel per quantity with its ratio panel (Figs. 5-8);
  the experiment label on every panel (label=() for none)."""
  n = len(names)
  cols = min(4, n)
  rows = -(-n // cols)
  fig = plt.figure(figsize=(3.8 * cols, 3.9 * rows))
  grid = fig.add_gridspec(rows, cols, hspace=0.45, wspace=0.5)
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
    ax.set_ylabel(density_label(name) if not name.startswith("iso") else "fraction of events per bin / width")
    exp_label(ax, label, fontsize=7)
  first.legend(fontsize=7, title="end bins: overflow", title_fontsize=6)
  if title:
    fig.suptitle(title)
  save_figure(fig, path)


@hep_style()
def correlations(c_data: np.ndarray, c_gen: np.ndarray, names: Sequence[str], path: str,
                 kind: str = "Spearman rank", label: Sequence[str] = CMS_OPEN_DATA) -> None:
  """Pairwise correlation matrices, data and generated, diagonal set to 0 (Fig. 9)."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
  for ax, c, t in zip(axes, (c_data, c_gen), ("data (test)", "GAN")):
    c = np.array(c)
    np.fill_diagonal(c, 0.0)
    im = ax.imshow(c, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(f"{t}: {kind} correlation", pad=22)
    exp_label(ax, label, fontsize=9)
  fig.colorbar(im, ax=axes, shrink=0.8)
  save_figure(fig, path)


@hep_style()
def zpt_and_spike(data: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], path: str,
                  label: Sequence[str] = CMS_OPEN_DATA) -> None:
  """Z pT (Fig. 10 left) and, when present, the isolation spike at 0 on a log scale (the sharp edge),
  each with its GAN / data ratio panel."""
  has_iso = "iso1" in data
  fig = plt.figure(figsize=(9 if has_iso else 4.5, 4.4))
  grid = fig.add_gridspec(1, 2 if has_iso else 1, wspace=0.3)
  ax, rax = ratio_axes(fig, grid[0, 0])
  edges = np.linspace(0, 100, 51)
  _hist_and_ratio(ax, rax, np.clip(data["ptll"], 0, 100), np.clip(gen["ptll"], 0, 100), edges)
  rax.set_xlabel(LABELS["ptll"])
  ax.set_ylabel(density_label("ptll"))
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  exp_label(ax, label, fontsize=9)
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
    exp_label(ax, label, fontsize=9)
  save_figure(fig, path)


@hep_style()
def history(hist: Mapping[str, list], reg_on: np.ndarray, regression: Sequence[str], path: str,
            label: Sequence[str] = CMS_OPEN_DATA) -> None:
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
  axes[0].set_title("D loss (blue), G BCE (orange)", pad=20)
  axes[1].set_title(f"batch mean / width of {regression[0] if regression else ''}", pad=20)
  axes[2].set_title("KS sum vs validation (solid: Eq. 2 on)", pad=20)
  axes[0].set_ylabel("loss")
  axes[1].set_ylabel(LABELS.get(regression[0], regression[0]) if regression else "")
  axes[2].set_ylabel("KS sum")
  for ax in axes:
    ax.set_xlabel("step")
    exp_label(ax, label, fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
