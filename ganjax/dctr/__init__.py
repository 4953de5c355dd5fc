"""DCTR (classifier reweighting of a generator, dctrgan paper) on the engine: the toy GAN (gan), the
reweighter (reweight: w = h/(1-h) from a truth-vs-generated classifier) and run(config, workdir) for the
paper's toys (run)."""

from ganjax.dctr import reweight
from ganjax.dctr.run import run

__all__ = ["reweight", "run"]
