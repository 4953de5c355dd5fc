"""Figures of the main job (hgg-background-gan paper): metric history (Fig. 2/3), fake pT (Fig. 5), corner (Fig. 6)."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"fake_pt": r"$p_{T}$ fake $\gamma$ [GeV]", "fake_eta": r"$\eta$ fake $\gamma$",
          "fake_phi": r"$\phi$ fake $\gamma$", "fake_id": r"ID fake $\gamma$"}


def _save(fig, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)


def metric_history(epochs, train, val, best_epoch: int, path: str) -> None:
  """-2 ln Lambda on the training and validation sets versus epoch (Fig. 2-3 style)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(epochs, train, label="training", lw=1.2)
  ax.plot(epochs, val, label="validation", lw=1.2)
  ax.axvline(best_epoch, color="k", ls=":", lw=1, label=f"best (epoch {best_epoch})")
  ax.set_xlabel("epoch")
  ax.set_ylabel(r"$-2\ln\Lambda$")
  ax.legend()
  _save(fig, path)


def fake_pt(mc_sr, mc_cr, ganed_cr, edges, path: str) -> None:
  """Fake-photon pT in MC SR, MC CR and GANed CR, normalised, with a ratio to MC SR (Fig. 5)."""
  fig, (ax, rax) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
  hs = {}
  for name, x, style in (("MC Signal", mc_sr, dict(color="k", lw=1.6)),
                         ("MC Ctrl", mc_cr, dict(color="tab:blue", ls="--")),
                         ("GANed Ctrl", ganed_cr, dict(color="tab:red"))):
    h, _ = np.histogram(np.clip(x, edges[0], edges[-1]), edges)
    hs[name] = h / max(h.sum(), 1)
    ax.stairs(hs[name], edges, label=name, **style)
  ax.set_yscale("log")
  ax.set_ylabel("fraction of events")
  ax.legend()
  ref = np.where(hs["MC Signal"] > 0, hs["MC Signal"], np.nan)
  rax.stairs(hs["MC Ctrl"] / ref, edges, color="tab:blue", ls="--")
  rax.stairs(hs["GANed Ctrl"] / ref, edges, color="tab:red")
  rax.axhline(1, color="k", lw=0.8)
  rax.set_ylim(0.5, 1.5)
  rax.set_ylabel("/ MC Signal")
  rax.set_xlabel(LABELS["fake_pt"])
  _save(fig, path)


def _contour_levels(h, fractions):
  """Density levels whose super-level sets contain the given fractions of the histogram's mass."""
  flat = np.sort(h.ravel())[::-1]
  cum = np.cumsum(flat) / max(flat.sum(), 1e-12)
  return sorted({float(flat[min(np.searchsorted(cum, f), len(flat) - 1)]) for f in fractions})


def corner(ref: dict, other: dict, names: Sequence[str], path: str, ref_label="Full MC",
           other_label="GANed", fractions=(0.25, 0.5, 0.75), bins: int = 40) -> None:
  """Diagonal: 1D distributions; off-diagonal: contours holding 25/50/75% of events (Fig. 6)."""
  k = len(names)
  fig, axes = plt.subplots(k, k, figsize=(2.6 * k, 2.6 * k))
  ranges = {n: np.quantile(np.concatenate([ref[n], other[n]]), [0.005, 0.995]) for n in names}
  for i, ni in enumerate(names):
    for j, nj in enumerate(names):
      ax = axes[i, j]
      if j > i:
        ax.axis("off")
        continue
      if i == j:
        e = np.linspace(*ranges[ni], bins + 1)
        ax.hist(ref[ni], e, density=True, histtype="step", color="k", label=ref_label)
        ax.hist(other[ni], e, density=True, histtype="step", color="tab:red", label=other_label)
        if i == 0:
          ax.legend(fontsize=7)
      else:
        ex = np.linspace(*ranges[nj], bins + 1)
        ey = np.linspace(*ranges[ni], bins + 1)
        for data, color in ((ref, "k"), (other, "tab:red")):
          h, _, _ = np.histogram2d(data[nj], data[ni], [ex, ey])
          levels = _contour_levels(h, fractions)
          if len(levels) > 1:
            ax.contour(0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1]), h.T, levels=levels,
                       colors=color, linewidths=0.9)
      if i == k - 1:
        ax.set_xlabel(LABELS.get(nj, nj), fontsize=8)
      if j == 0 and i > 0:
        ax.set_ylabel(LABELS.get(ni, ni), fontsize=8)
  _save(fig, path)
