"""GANplifying (amplification) on the engine: models and losses (train), evaluation, run(config, workdir)."""

from ganjax.ganplify.run import run

__all__ = ["run"]
