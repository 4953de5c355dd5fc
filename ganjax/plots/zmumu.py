"""Figures of the analysis-specific GAN on Z -> mu mu (paper: analysis-specific-gan, Figs. 4, 5, 8, 9, 10)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"mll": r"$M_{\mu\mu}$ [GeV]", "ptll": r"$p_T^{\mu\mu}$ [GeV]", "dphi": r"$\Delta\phi$",
          "pt1": r"$p_T^{\mu1}$ [GeV]", "pt2": r"$p_T^{\mu2}$ [GeV]", "eta1": r"$\eta^{\mu1}$",
          "eta2": r"$\eta^{\mu2}$"}


def _edges(ref: np.ndarray, n: int = 50) -> np.ndarray:
  lo, hi = np.quantile(ref, [0.005, 0.995])
  if hi <= lo:
    hi = lo + 1.0
  return np.linspace(lo, hi, n + 1)


def features(data: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], names: Sequence[str],
             path: str, title: str = "") -> None:
  """Normalised histograms, data vs generated, one panel per quantity (Figs. 5-8)."""
  n = len(names)
  cols = min(4, n)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    ref = np.asarray(data[name])
    if name.startswith("iso"):
      edges = np.concatenate([[-0.5, 0.0], np.logspace(np.log10(0.1), np.log10(max(ref.max(), 1.0)), 30)])
      ax.set_xscale("symlog", linthresh=0.1)
    elif name.startswith("dxy"):
      edges = np.linspace(-0.15, 0.15, 51)
    else:
      edges = _edges(ref)
    ax.hist(np.clip(ref, edges[0], edges[-1]), edges, density=True, histtype="stepfilled", alpha=0.35,
            color="k", label="data (test)")
    ax.hist(np.clip(np.asarray(gen[name]), edges[0], edges[-1]), edges, density=True, histtype="step",
            color="C3", label="GAN")
    ax.set_xlabel(LABELS.get(name, name))
    ax.set_yticks([])
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7, title="end bins: overflow", title_fontsize=6)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


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
  fig.savefig(path, dpi=110)
  plt.close(fig)


def zpt_and_spike(data: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], path: str) -> None:
  """Z pT (Fig. 10 left) and, when present, the isolation spike at 0 on a log scale (the sharp edge)."""
  has_iso = "iso1" in data
  fig, axes = plt.subplots(1, 2 if has_iso else 1, figsize=(9 if has_iso else 4.5, 3.5), squeeze=False)
  edges = np.linspace(0, 100, 51)
  ax = axes[0, 0]
  ax.hist(np.clip(data["ptll"], 0, 100), edges, density=True, histtype="stepfilled", alpha=0.35, color="k",
          label="data (test)")
  ax.hist(np.clip(gen["ptll"], 0, 100), edges, density=True, histtype="step", color="C3", label="GAN")
  ax.set_xlabel(LABELS["ptll"])
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  if has_iso:
    ax = axes[0, 1]
    edges = np.concatenate([[-0.15, -0.05, 0.05], np.logspace(-1, np.log10(200), 40)])
    for x, style in ((data["iso1"], dict(histtype="stepfilled", alpha=0.35, color="k")),
                     (gen["iso1"], dict(histtype="step", color="C3"))):
      w = np.full(len(x), 1.0 / len(x))
      x = np.where(x < 0, -0.1, np.where(x == 0, 0.0, np.clip(x, 0.1, 200)))
      ax.hist(x, edges, weights=w, **style)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_yscale("log")
    ax.set_xlabel(r"iso$_1$ [GeV] (bins: < 0, exactly 0, log-spaced > 0)")
    ax.set_ylabel("fraction of events")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


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
      axes[1].plot(steps, np.asarray(hist[f"{r}_mean"])[:, m], ls, color="C2", lw=0.8)
      axes[1].plot(steps, np.asarray(hist[f"{r}_std"])[:, m], ls, color="C4", lw=0.8)
    axes[2].plot(steps, np.asarray(hist["ks_sum_val"])[:, m], ls, lw=0.8)
  axes[0].set_title("D loss (blue), G BCE (orange)")
  axes[1].set_title(f"batch mean / width of {regression[0] if regression else ''}")
  axes[2].set_title("KS sum vs validation (solid: Eq. 2 on)")
  for ax in axes:
    ax.set_xlabel("step")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
