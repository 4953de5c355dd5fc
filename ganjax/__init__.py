"""ganjax: JAX/Flax generative models for data-driven background estimation in particle physics."""

__version__ = "0.1.0"
