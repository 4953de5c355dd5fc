"""Test-wide JAX settings: CPU, fast compiles (the suite is compile-bound on 2 cores)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
