"""The one place for figure style: HEP (mplhep CMS) style, ratio panels, atomic PNG writes.

Figures of real data carry the experiment label (`experiment_label`); simulation has none (the toy
simulator is no experiment's). Every axis is labelled, with its unit in brackets ([GeV] for momenta and
masses). Every module under ganjax/plots draws inside `with hep_style():` (or decorates a figure function with
`@hep_style()`, the same context around the whole call) and writes with `save_figure`. With
mplhep installed the style is mplhep's CMS style (TeX Gyre Heros, inward ticks on all sides with minor
ticks, axis labels at the ends), its sizes scaled from CMS's 10x10-inch single plot to our smaller
multi-panel figures; without mplhep (a bare install) a plain matplotlib style with the same tick layout.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# CMS style's absolute sizes (points) are for a 10 x 10 inch figure with 26 pt text: scaled by font_size / 26
_SIZE_KEYS = ("xtick.major.size", "xtick.minor.size", "ytick.major.size", "ytick.minor.size", "xtick.major.pad",
              "ytick.major.pad", "axes.linewidth")
_FALLBACK = {"xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True,
             "xtick.minor.visible": True, "ytick.minor.visible": True, "legend.frameon": False}


def hep_rc(font_size: float = 12.0) -> dict:
  """The rcParams hep_style applies: mplhep's CMS style at `font_size`, or the plain fallback."""
  try:
    import mplhep
  except ImportError:
    return {**_FALLBACK, "font.size": font_size}
  rc = dict(mplhep.style.CMS)
  scale = font_size / float(rc.get("font.size", 26))
  rc.update({k: float(rc[k]) * scale for k in _SIZE_KEYS if k in rc})
  rc["font.size"] = font_size
  rc.pop("figure.figsize", None)  # every figure here sets its own size
  return rc


@contextlib.contextmanager
def hep_style(font_size: float = 12.0) -> Iterator[None]:
  """Context manager: draw (and save) figures inside it in HEP style; rcParams are restored on exit."""
  with plt.style.context(hep_rc(font_size)):
    yield


def ratio_axes(fig, cell, height_ratio: float = 3.0, hspace: float = 0.06):
  """Split a gridspec cell (or a figure with cell=None) into a main and a ratio axes sharing x."""
  grid = (fig.add_gridspec(2, 1, height_ratios=[height_ratio, 1], hspace=hspace) if cell is None else
          cell.subgridspec(2, 1, height_ratios=[height_ratio, 1], hspace=hspace))
  ax = fig.add_subplot(grid[0])
  rax = fig.add_subplot(grid[1], sharex=ax)
  ax.tick_params(labelbottom=False)
  return ax, rax


def draw_ratio(rax, edges, num, den, ylabel: str = "ratio", ylim=(0.5, 1.5), den_err=None, **stairs_kw) -> None:
  """num / den per bin as stairs on the ratio axes (empty reference bins left blank), the line at 1 and,
  with den_err, the reference's relative uncertainty as a grey band."""
  num, den = np.asarray(num, float), np.asarray(den, float)
  with np.errstate(divide="ignore", invalid="ignore"):
    r = np.where(den > 0, num / den, np.nan)
    if den_err is not None:
      rel = np.where(den > 0, np.asarray(den_err, float) / den, np.nan)
      rax.stairs(1 + rel, edges, baseline=1 - rel, fill=True, color="0.85", lw=0)
  rax.stairs(r, edges, baseline=None, **stairs_kw)
  rax.axhline(1.0, color="k", lw=0.8)
  rax.set_ylim(*ylim)
  rax.set_ylabel(ylabel)


def experiment_label(ax, exp: str = "CMS", text: str = "Open Data", rlabel: str = "",
                     fontsize: float | None = None) -> None:
  """The experiment label of a figure of real data, top left of `ax` ("CMS Open Data"; mplhep's form when
  installed, the same words in bold + italic otherwise), with `rlabel` (e.g. sqrt(s) or the data set) top
  right."""
  fontsize = fontsize or ax.xaxis.label.get_size()
  try:
    import mplhep
    mplhep.label.exp_text(exp, text, loc=0, ax=ax, fontsize=fontsize)
  except ImportError:
    ax.text(0.0, 1.01, exp, transform=ax.transAxes, fontweight="bold", ha="left", va="bottom", fontsize=fontsize)
    ax.text(0.0, 1.01, " " * (len(exp) + 2) + text, transform=ax.transAxes, fontstyle="italic", ha="left",
            va="bottom", fontsize=fontsize)
  if rlabel:
    ax.text(1.0, 1.01, rlabel, transform=ax.transAxes, ha="right", va="bottom", fontsize=0.85 * fontsize)


def save_figure(fig, path: str, dpi: int = 110) -> None:
  """Save `fig` to `path` via a temporary file and a rename, then close it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)
