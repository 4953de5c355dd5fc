"""Conditional DC-GAN shapes and parameter counts (paper Sec. 3.1 layer list, our geometry)."""

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.models.dcgan import Discriminator, Generator, generator_flops_per_object


def _n_params(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_generator_paper_geometry_shapes_and_counts():
  n_latent, n_cond = 32, 9
  g = Generator(n_out=4)
  params = g.init(jax.random.PRNGKey(0), jnp.zeros((1, n_latent)), jnp.zeros((1, n_cond)))
  y = g.apply(params, jax.random.normal(jax.random.PRNGKey(1), (7, n_latent)), jnp.ones((7, n_cond)))
  assert y.shape == (7, 4)
  assert np.all(np.abs(np.asarray(y)) < 1.0)  # tanh output
  # Hand count: dense (41 -> 1024), deconv 64->32 4x4, 32->16 2x2, 16->8 2x2, conv 8->4 3x3, dense 256->4.
  expected = ((n_latent + n_cond) * 1024 + 1024 + 4 * 4 * 64 * 32 + 32 + 2 * 2 * 32 * 16 + 16
              + 2 * 2 * 16 * 8 + 8 + 3 * 3 * 8 * 4 + 4 + 8 * 8 * 4 * 4 + 4)
  assert _n_params(params) == expected
  info = generator_flops_per_object(n_latent + n_cond, g)
  # Per-object multiply-adds: dense + 4x4x64 inputs scattering 4x4x32 + ... (see dcgan.py docstring).
  assert info["macs"] == (41 * 1024 + 4 * 4 * 64 * 16 * 32 + 8 * 8 * 32 * 4 * 16 + 8 * 8 * 16 * 4 * 8
                          + 8 * 8 * 4 * 9 * 8 + 8 * 8 * 4 * 4)
  assert info["activations"] == 1024 + 8 * 8 * 32 + 8 * 8 * 16 + 8 * 8 * 8 + 8 * 8 * 4 + 4


def test_discriminator_shapes_counts_and_dropout():
  n_obj, n_cond = 4, 9
  d = Discriminator()
  params = d.init(jax.random.PRNGKey(0), jnp.zeros((1, n_obj)), jnp.zeros((1, n_cond)))
  expected = ((n_obj + n_cond) * 256 + 256 + 2 * 2 * 16 * 32 + 32 + 2 * 2 * 32 * 64 + 64
              + 4 * 4 * 64 * 64 + 64 + 2 * 2 * 64 * 1 + 1)
  assert _n_params(params) == expected
  x, c = jnp.ones((5, n_obj)), jnp.ones((5, n_cond))
  assert d.apply(params, x, c).shape == (5,)
  # Dropout is active only in training mode and then depends on its key.
  a = d.apply(params, x, c, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
  b = d.apply(params, x, c, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(d.apply(params, x, c), d.apply(params, x, c))


def test_vanilla_has_no_conditional_input():
  g = Generator(n_out=4, width=0.25)
  params = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), jnp.zeros((1, 0)))
  assert g.apply(params, jnp.zeros((3, 8)), jnp.zeros((3, 0))).shape == (3, 4)
  assert params["params"]["Dense_0"]["kernel"].shape[0] == 8
