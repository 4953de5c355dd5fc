"""Figures of the validation report (hgg paper): 1D histograms with ratio panels (Fig. 5), corner plot with
25/50/75% contours (Fig. 6), distance-correlation matrices side by side (Fig. 7), sqrt(chi2_ij) matrices.

Every function draws from the binned, JSON-ready output of ganjax.validation.validate, in
ganjax.plots.style.hep_style (mplhep's CMS style when mplhep is installed, plain matplotlib otherwise).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganjax.plots.style import experiment_label, hep_style, save_figure as _save  # noqa: E402
import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402

_COLORS = {"sr": "k", "cr": "tab:blue", "ganed": "tab:red"}
_CONTOUR_FRACTIONS = (0.25, 0.5, 0.75)


def density_label(unit: str | None) -> str:
  """The y label of a unit-area histogram: 1/N dN/dx, in 1/unit of x."""
  return r"$1/N\;dN/dx$" + (f" [{unit}$^{{-1}}$]" if unit else "")


def hist_ratio(hist: Mapping, xlabel: str, path: str, sample_labels: Mapping[str, str],
               s2: Mapping[str, float] | None = None, unit: str | None = None, experiment: str = "") -> None:
  """Fig. 5: normalised distributions of MC SR, MC CR and GANed CR with the ratio to MC SR below.
  hist: {"edges", "sr"|"cr"|"ganed": {"counts", "sumw2"}} (end bins include under/overflow). xlabel
  carries the unit; `unit` labels the density axis; `experiment` ("CMS Open Data"): real data's label."""
  edges = np.asarray(hist["edges"])
  width = np.diff(edges)
  centers = 0.5 * (edges[1:] + edges[:-1])
  dens, errs = {}, {}
  for k in ("sr", "cr", "ganed"):
    c, w2 = np.asarray(hist[k]["counts"], float), np.asarray(hist[k]["sumw2"], float)
    dens[k] = c / (c.sum() * width)
    errs[k] = np.sqrt(w2) / (c.sum() * width)
  with hep_style():
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    for k in ("sr", "cr", "ganed"):
      label = sample_labels[k]
      if s2 is not None and k in s2:
        label += rf" ($S^2$={s2[k]:.1e})"
      ax.stairs(dens[k], edges, color=_COLORS[k], lw=1.5, label=label)
      ax.errorbar(centers, dens[k], errs[k], fmt="none", color=_COLORS[k], lw=0.8)
    ax.set_ylabel(density_label(unit))
    ax.legend(frameon=False, fontsize=9)
    if experiment:
      experiment_label(ax, *experiment.split(" ", 1))
    ref = dens["sr"]
    with np.errstate(divide="ignore", invalid="ignore"):
      rel_ref = np.where(ref > 0, errs["sr"] / ref, np.nan)
      rax.fill_between(edges, np.r_[1 - rel_ref, 1 - rel_ref[-1]], np.r_[1 + rel_ref, 1 + rel_ref[-1]],
                       step="post", color="0.8", lw=0, label="MC SR stat.")
      for k in ("cr", "ganed"):
        rax.errorbar(centers, dens[k] / ref, errs[k] / ref, fmt="o", ms=2.5, color=_COLORS[k], lw=0.8)
    rax.axhline(1.0, color="k", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel(f"/ {sample_labels['sr']}")
    rax.set_xlabel(xlabel)
    _save(fig, path)


def contour_levels(h: np.ndarray, n_total: float, fractions: Sequence[float] = _CONTOUR_FRACTIONS):
  """Bin-content thresholds t_p such that the bins with h >= t_p hold a fraction p of all n_total events
  (highest-density regions); returned in increasing order for matplotlib's contour."""
  flat = np.sort(np.asarray(h, float).ravel())[::-1]
  cum = np.cumsum(flat) / n_total
  levels = [flat[min(np.searchsorted(cum, p), len(flat) - 1)] for p in fractions]
  return sorted(set(levels))


def smooth(h: np.ndarray, sigma: float = 1.0) -> np.ndarray:
  """A 2D histogram smoothed with a Gaussian kernel of `sigma` bins (its sum kept, edges reflected), so that
  the highest-density contours of a finite sample are closed curves instead of fragments."""
  h = np.asarray(h, float)
  out = scipy.ndimage.gaussian_filter(h, sigma, mode="reflect")
  return out * (h.sum() / out.sum()) if out.sum() > 0 else out


def corner(data: Mapping, labels: Mapping[str, str], path: str, ref_label: str = "MC SR",
           other_label: str = "GANed CR", smooth_bins: float = 1.5, experiment: str = "") -> None:
  """Fig. 6: diagonal 1D distributions, off-diagonal contours holding 25/50/75% of the events, for the
  reference (MC SR, "Full MC" in the paper) and the GANed CR. data: validate()'s "corner" entry. The 2D
  histograms are smoothed (`smooth`, sigma = smooth_bins bins) before the levels are found, the same for
  both samples, so that the contours are readable."""
  names = data["names"]
  d = len(names)
  edges = {k: np.asarray(v) for k, v in data["edges"].items()}
  with hep_style():
    fig, axes = plt.subplots(d, d, figsize=(2.4 * d, 2.4 * d), squeeze=False)
    for i, a in enumerate(names):
      for j, b in enumerate(names):
        ax = axes[i, j]
        if j > i:
          ax.axis("off")
          continue
        if i == j:
          for s, lab in (("sr", ref_label), ("ganed", other_label)):
            c = np.asarray(data["diag"][a][s], float)
            ax.stairs(c / (data["n_events"][s] * np.diff(edges[a])), edges[a], color=_COLORS[s], lw=1.3,
                      label=lab)
          ax.set_yticks([])
          ax.set_ylabel(density_label(_unit(labels.get(a, a))), fontsize=7)
          ax.yaxis.set_label_position("right")
          if i == 0:
            ax.legend(frameon=False, fontsize=7)
            if experiment:
              experiment_label(ax, *experiment.split(" ", 1))
        else:
          # row i (y) = names[i], column j (x) = names[j]; stored as pairs "first|second" with first < second
          h2 = data["pairs"][f"{b}|{a}"]
          xc = 0.5 * (edges[b][1:] + edges[b][:-1])
          yc = 0.5 * (edges[a][1:] + edges[a][:-1])
          for s, ls in (("sr", "-"), ("ganed", "--")):
            h = smooth(h2[s], smooth_bins) if smooth_bins else np.asarray(h2[s], float)
            levels = contour_levels(h, data["n_events"][s])
            if len(levels) > 1 or (levels and levels[0] > 0):
              ax.contour(xc, yc, h.T, levels=levels, colors=_COLORS[s], linestyles=ls, linewidths=1.0)
        if i == d - 1:
          ax.set_xlabel(labels.get(b, b))
        else:
          ax.set_xticklabels([])
        if j == 0 and i > 0:
          ax.set_ylabel(labels.get(a, a))
        elif j > 0 and i != j:
          ax.set_yticklabels([])
    fig.suptitle(f"{ref_label} (solid) vs {other_label} (dashed): contours hold 25/50/75% of events",
                 fontsize=9)
    _save(fig, path)


def _unit(label: str) -> str | None:
  """The unit in a label's trailing brackets ("$p_T$ [GeV]" -> "GeV"), None without."""
  return label[label.rindex("[") + 1:-1] if label.endswith("]") and "[" in label else None


def matrices(mats: Mapping[str, Sequence[Sequence[float]]], labels: Sequence[str], path: str,
             title: str = "distance correlation") -> None:
  """Fig. 7: distance-correlation matrices side by side, first observable at the bottom left; the matrices are
  symmetric, so only the lower triangle and the diagonal are drawn and annotated."""
  n = len(mats)
  d = len(labels)
  with hep_style():
    fig, axes = plt.subplots(1, n, figsize=(0.55 * d * n + 1.5, 0.55 * d + 1.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], mats.items()):
      m = np.asarray(m, float)
      im = ax.imshow(np.where(np.tril(np.ones((d, d), bool)), m, np.nan), origin="lower", cmap="viridis",
                     vmin=0.0, vmax=1.0)
      for i in range(d):
        for j in range(i + 1):
          ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                  color="k" if m[i, j] > 0.6 else "w")
      ax.set_xticks(range(d), labels, rotation=90, fontsize=8)
      ax.set_yticks(range(d), labels, fontsize=8)
      ax.set_title(f"{title}: {name}", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02)
    _save(fig, path)


def sqrt_chi2_matrices(chis: Mapping[str, Mapping], labels: Sequence[str], path: str) -> None:
  """sqrt(chi2_ij) of each comparison (lower triangle, annotated; cells above the threshold boxed), chi in
  the title. chis[name]: a dcor_chi result."""
  n = len(chis)
  d = len(labels)
  with hep_style():
    fig, axes = plt.subplots(1, n, figsize=(0.55 * d * n + 1.5, 0.55 * d + 1.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], chis.items()):
      m = np.asarray([[np.inf if v is None else v for v in row] for row in r["sqrt_chi2"]], float)
      shown = np.where(np.tril(np.ones((d, d), bool), -1), m, np.nan)
      # one fixed scale for every panel: 0..5, darker = worse, the number is printed anyway
      im = ax.imshow(shown, origin="lower", cmap="magma_r", vmin=0.0, vmax=5.0)
      for i in range(d):
        for j in range(i):
          ax.text(j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=6,
                  color="w" if m[i, j] > 2.5 else "k")
          if m[i, j] > r["threshold"]:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:green", lw=1.5))
      ax.set_xticks(range(d), labels, rotation=90, fontsize=8)
      ax.set_yticks(range(d), labels, fontsize=8)
      above = len(r["pairs_above_threshold"])
      # "√" as a text glyph: the HEP style's mathtext font has no radical, \sqrt floods the log with warnings.
      ax.set_title("√" + rf"$\chi^2_{{ij}}$ {name}: $\chi$ = {r['chi']:.2f}, "
                   f"{above} pairs > {r['threshold']:g}", fontsize=9)
      fig.colorbar(im, ax=ax, fraction=0.046, extend="max")
    _save(fig, path)
