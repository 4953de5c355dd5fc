"""Figures of the DCTR paper: toy densities (Fig. 1), weight distribution (Fig. 2), weighted observable
histograms with <S^2> and r in the legend (Figs. 3-6), and the summary histograms (Fig. 8)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganjax.metrics.dilution import weighted_histogram  # noqa: E402
from ganjax.metrics.separation import histogram_edges  # noqa: E402
from ganjax.plots.style import hep_style, save_figure  # noqa: E402

_STYLE = {"truth": dict(color="k", lw=1.5), "gan": dict(color="tab:red", lw=1.2, ls="--"),
          "dctr": dict(color="tab:blue", lw=1.2)}


def _save(fig, path: str) -> None:
  fig.tight_layout()
  save_figure(fig, path)


@hep_style()
def plot_toy_densities(path: str, x_truth_NxD: np.ndarray, x_gen_MxD: np.ndarray, w_M: np.ndarray,
                       density_fn=None, bins: int = 100, title: str = "") -> None:
  """Fig. 1: truth | GAN | DCTR-weighted GAN densities (1D: overlaid with ratio panel; 2D: three maps)."""
  xt, xg = np.asarray(x_truth_NxD), np.asarray(x_gen_MxD)
  if xt.shape[1] == 1:
    edges = histogram_edges(xt[:, 0], bins, (0.0005, 0.9995))
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(6, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ht = np.histogram(xt[:, 0], edges)[0] / (len(xt) * width)
    hg = np.histogram(xg[:, 0], edges)[0] / (len(xg) * width)
    hw = np.histogram(xg[:, 0], edges, weights=w_M)[0] / (w_M.sum() * width)
    if density_fn is not None:
      ax.plot(centers, density_fn(centers[:, None]), color="0.6", lw=3, alpha=0.5, label="p_T (analytic)")
    ax.step(centers, ht, where="mid", label="truth", **_STYLE["truth"])
    ax.step(centers, hg, where="mid", label="GAN", **_STYLE["gan"])
    ax.step(centers, hw, where="mid", label="DCTR-GAN", **_STYLE["dctr"])
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    ax.set_title(title)
    with np.errstate(divide="ignore", invalid="ignore"):
      rax.step(centers, hg / ht, where="mid", **_STYLE["gan"])
      rax.step(centers, hw / ht, where="mid", **_STYLE["dctr"])
    rax.axhline(1, color="k", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("/ truth")
    rax.set_xlabel("x")
    _save(fig, path)
    return
  lo = np.quantile(xt, 0.0005, axis=0)
  hi = np.quantile(xt, 0.9995, axis=0)
  pad = 0.05 * (hi - lo)
  rng = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
  maps = [np.histogram2d(xt[:, 0], xt[:, 1], bins, rng, density=True)[0],
          np.histogram2d(xg[:, 0], xg[:, 1], bins, rng, density=True)[0],
          np.histogram2d(xg[:, 0], xg[:, 1], bins, rng, density=True, weights=w_M)[0]]
  vmax = 1.5 * maps[0].max()  # one colour scale set by the truth: sharp GAN spikes saturate, truth stays visible
  fig, axes = plt.subplots(1, 3, figsize=(12, 4))
  for ax, m, label in zip(axes, maps, ["truth", "GAN", "DCTR-GAN"]):
    ax.imshow(m.T, origin="lower", extent=[*rng[0], *rng[1]], vmin=0, vmax=vmax, cmap="viridis",
              aspect="auto")
    ax.set_title(f"{title} {label}".strip())
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
  _save(fig, path)


@hep_style()
def plot_weights(path: str, weights: Mapping[str, np.ndarray], bins: int = 60) -> None:
  """Fig. 2 (top): histogram(s) of per-event weights, log-scaled counts."""
  fig, ax = plt.subplots(figsize=(5, 4))
  w_all = np.concatenate([np.asarray(w) for w in weights.values()])
  edges = np.linspace(0, max(1.0, np.quantile(w_all, 0.9999)) * 1.02, bins + 1)
  for label, w in weights.items():
    ax.hist(np.asarray(w), edges, histtype="step", label=label)
  ax.set_yscale("log")
  ax.set_xlabel("DCTR weight")
  ax.set_ylabel("events")
  ax.legend(frameon=False)
  _save(fig, path)


@hep_style()
def plot_observables(path: str, truth: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                     weights: np.ndarray, report: Mapping, n_bins: int = 50, ncols: int = 3) -> None:
  """Figs. 3-6: truth / GAN / DCTR-GAN histograms per observable, ratio panels, <S^2> and r in legends.

  report: the output of ganjax.metrics.dilution.observable_report for the same inputs.
  """
  names = list(report["observables"])
  nrows = -(-len(names) // ncols)
  fig = plt.figure(figsize=(4.2 * min(ncols, len(names)), 4.2 * nrows))
  grid = fig.add_gridspec(2 * nrows, min(ncols, len(names)), height_ratios=[3, 1] * nrows)
  for i, name in enumerate(names):
    r, c = divmod(i, ncols)
    ax = fig.add_subplot(grid[2 * r, c])
    rax = fig.add_subplot(grid[2 * r + 1, c], sharex=ax)
    xt, xg = np.asarray(truth[name]), np.asarray(generated[name])
    edges = histogram_edges(xt, n_bins)
    centers = 0.5 * (edges[1:] + edges[:-1])
    ht, et = weighted_histogram(xt, edges)
    hg, _ = weighted_histogram(xg, edges)
    hw, ew = weighted_histogram(xg, edges, weights)
    st, sg, sw = ht.sum(), hg.sum(), hw.sum()
    m = report["observables"][name]
    ax.step(centers, ht / st, where="mid", label="truth", **_STYLE["truth"])
    ax.step(centers, hg / sg, where="mid",
            label=f"GAN  S2={m['s2_unweighted']:.2g} r={m['r_unweighted']:.2f}", **_STYLE["gan"])
    ax.step(centers, hw / sw, where="mid",
            label=f"DCTR S2={m['s2_weighted']:.2g} r={m['r_weighted']:.2f}", **_STYLE["dctr"])
    ax.set_title(name)
    ax.legend(frameon=False, fontsize=7)
    with np.errstate(divide="ignore", invalid="ignore"):
      ref = ht / st
      rax.fill_between(centers, 1 - et / ht, 1 + et / ht, step="mid", color="0.85")
      rax.step(centers, (hg / sg) / ref, where="mid", **_STYLE["gan"])
      rax.step(centers, (hw / sw) / ref, where="mid", **_STYLE["dctr"])
    rax.axhline(1, color="k", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_xlabel(name)
  _save(fig, path)


@hep_style()
def plot_summary(path: str, reports: Sequence[Mapping], labels: Sequence[str] | None = None) -> None:
  """Fig. 8: histograms over observables of <S^2> (GAN vs DCTR), of the S^2 ratio, and of r."""
  per = [m for rep in reports for m in rep["observables"].values()]
  s2_u = np.array([m["s2_unweighted"] for m in per])
  s2_w = np.array([m["s2_weighted"] for m in per])
  ratio = np.array([m["s2_ratio"] for m in per])
  r_u = np.array([m["r_unweighted"] for m in per])
  r_w = np.array([m["r_weighted"] for m in per])
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  lo = np.log10(max(min(s2_u.min(), s2_w.min()), 1e-8))
  hi = np.log10(max(s2_u.max(), s2_w.max()))
  e = np.logspace(lo - 0.1, hi + 0.1, 20)
  axes[0].hist(s2_u, e, histtype="step", label="GAN", **_STYLE["gan"])
  axes[0].hist(s2_w, e, histtype="step", label="DCTR-GAN", **_STYLE["dctr"])
  axes[0].set_xscale("log")
  axes[0].set_xlabel("<S^2>")
  axes[0].legend(frameon=False)
  axes[1].hist(ratio, np.linspace(0, max(1.2, np.nanmax(ratio) * 1.05), 25), histtype="step", **_STYLE["dctr"])
  axes[1].axvline(np.nanmedian(ratio), color="k", ls=":", label=f"median {np.nanmedian(ratio):.2f}")
  axes[1].set_xlabel("<S^2>(DCTR-GAN) / <S^2>(GAN)")
  axes[1].legend(frameon=False)
  re = np.linspace(min(0.8, r_u.min(), r_w.min()), max(2.5, r_w.max() * 1.05), 25)
  axes[2].hist(r_u, re, histtype="step", label="GAN", **_STYLE["gan"])
  axes[2].hist(r_w, re, histtype="step", label="DCTR-GAN", **_STYLE["dctr"])
  axes[2].set_xlabel("r = sigma(<f>)_gen / sigma(<f>)_truth")
  axes[2].legend(frameon=False)
  title = ", ".join(labels) if labels else ""
  fig.suptitle(f"{len(per)} observables {('(' + title + ')') if title else ''}")
  for ax in axes:
    ax.set_ylabel("observables")
  _save(fig, path)
