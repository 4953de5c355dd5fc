"""Analysis-specific generation (paper: analysis-specific-gan) on the engine: data preparation (data),
models and losses (train), selection metrics (metrics), test-set evaluation (evaluate), run(config, workdir)."""

from ganjax.asg.run import run

__all__ = ["run"]
