"""Training figures of the main job: the -2 ln Lambda history (hgg paper Figs. 2-4).

The physics figures (Fig. 5 fake pT, Fig. 6 corner, Fig. 7 matrices) are in ganjax/plots/validation.py.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganjax.plots.style import hep_style, save_figure as _save  # noqa: E402


@hep_style()
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
