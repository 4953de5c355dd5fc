"""The small fully connected GAN of the DCTR toys (DCTR paper Sec. III A).

G: latent z (dimension 5 / 8 / 25 for bimodal / circle / grid) -> two hidden ReLU layers of 15 -> x (linear).
D: x -> two hidden ReLU layers of 25 -> logit (the paper's final sigmoid is folded into the BCE loss).
Both are the package's one MLP implementation (ganjax.models.classifier).
"""

from __future__ import annotations

from typing import Sequence

from ganjax.models.classifier import MLP, MLPClassifier


def make_small_gan(data_dim: int, g_hidden: Sequence[int] = (15, 15), d_hidden: Sequence[int] = (25, 25),
                   activation: str = "relu") -> tuple[MLP, MLPClassifier]:
  """(generator z_NxM -> x_NxD, discriminator x_NxD -> logit_N)."""
  generator = MLP(tuple(int(h) for h in g_hidden), int(data_dim), activation)
  discriminator = MLPClassifier(tuple(int(h) for h in d_hidden), activation)
  return generator, discriminator
