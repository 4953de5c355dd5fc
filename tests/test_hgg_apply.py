"""CR application: the redraw of generated fakes until the GANed event passes the SR selection is rejection
sampling (geometric number of draws, first draw = the plain generator call) and agrees with the host's
numpy selection event by event."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.data import gjets
from ganjax.data.preprocess import fit_quantile_transform
from ganjax.hgg import apply


def _stub(n_events=4000, seed=0):
  """A 'generator' uniform in the model's [-1, 1] coordinates of a quantile transform fitted on physical
  fakes with ID uniform in (-1, 1): the first draw passes the fake-ID cut (ID > 0) with probability 1/2."""
  rng = np.random.default_rng(seed)
  phys = np.stack([rng.uniform(20, 80, 3000), rng.uniform(-2.4, 2.4, 3000), rng.uniform(-3, 3, 3000),
                   rng.uniform(-1, 1, 3000)], -1)
  prep = SimpleNamespace(gen_names=gjets.FAKE_COLUMNS, relative={}, gen_qt=fit_quantile_transform(phys, 200))
  def generate(params_g, key, cond_NxC):  # the interface of metric.make_generate_fn
    return generate.apply(params_g, generate.latents(key, cond_NxC.shape[0]), cond_NxC)

  generate.latents = lambda key, n: jax.random.uniform(key, (n, 4), minval=-1.0, maxval=1.0)
  generate.apply = lambda params_g, z_NxL, cond_NxC: params_g * z_NxL
  events = {"pho_pt": rng.uniform(50, 90, n_events), "pho_eta": rng.uniform(-1.2, 1.2, n_events),
            "pho_phi": rng.uniform(-3, 3, n_events), "pho_id": np.full(n_events, 0.9)}
  return prep, generate, {k: v.astype(np.float32) for k, v in events.items()}, np.zeros((n_events, 1), np.float32)


def test_redraw_is_rejection_sampling_of_the_id_cut():
  prep, generate, events, cond = _stub()
  key = jax.random.PRNGKey(3)
  first = np.asarray(generate(1.0, key, cond))
  params = gjets.GJetsParams()
  one = jax.jit(apply.make_sr_generate_fn(generate, prep, params, preselection=False, max_draws=1))
  u1, d1 = (np.asarray(a) for a in one(1.0, key, cond, events))
  np.testing.assert_array_equal(u1, first)  # max_draws = 1: the single draw of the plain call
  id_first = np.asarray(prep.gen_qt.inverse(first.astype(np.float64)))[:, 3]
  np.testing.assert_array_equal(d1, (id_first > 0).astype(np.int32))

  k_max = 3
  gen = jax.jit(apply.make_sr_generate_fn(generate, prep, params, preselection=False, max_draws=k_max))
  u, draws = (np.asarray(a) for a in gen(1.0, key, cond, events))
  np.testing.assert_array_equal(u[draws == 1], first[draws == 1])  # first-draw passes keep it
  np.testing.assert_array_equal(u[draws == 0], first[draws == 0])  # never passed: the first draw is kept
  fake_id = np.asarray(prep.gen_qt.inverse(u.astype(np.float64)))[:, 3]
  assert np.all(fake_id[draws > 0] > 0) and np.all(fake_id[draws == 0] <= 0)
  n = len(draws)
  for k in range(k_max + 1):  # geometric: P(draws = k) = 2^-k for k >= 1, P(never) = 2^-K
    p = 0.5 ** (k if k else k_max)
    assert abs(np.mean(draws == k) - p) < 4 * np.sqrt(p * (1 - p) / n), (k, np.mean(draws == k), p)
  redrawn = draws > 1
  assert not np.any(np.all(u[redrawn] == first[redrawn], axis=1))  # redraws use fresh latents
  # 4,000 events with half failing overflow the 1,024-event buffer: rounds then mix draw numbers, and the
  # geometric law above still holds. With a buffer for every event, round r is each failing event's draw
  # r + 1 with row i of the latents of fold_in(key, r): what regenerating the whole table each round gives.
  whole = jax.jit(apply.make_sr_generate_fn(generate, prep, params, preselection=False, max_draws=k_max,
                                            buffer_fraction=1.0))
  u_w, d_w = (np.asarray(a) for a in whole(1.0, key, cond, events))
  for d in (2, 3):
    again = np.asarray(generate(1.0, jax.random.fold_in(key, d - 1), cond))
    np.testing.assert_array_equal(u_w[d_w == d], again[d_w == d])


def test_redraw_agrees_with_the_host_selection():
  """With the preselection (m_gg window, pT/m, acceptance): every event the JAX check accepted passes the
  host's numpy selection of the GANed table, and the events never accepted fail it."""
  prep, generate, events, cond = _stub(seed=1)
  params = gjets.GJetsParams()
  gen = jax.jit(apply.make_sr_generate_fn(generate, prep, params, preselection=True, max_draws=4))
  u, draws = (np.asarray(a) for a in gen(1.0, jax.random.PRNGKey(0), cond, events))
  phys = np.asarray(prep.gen_qt.inverse(u.astype(np.float64)))
  cr = {**events, **{c: np.zeros(len(draws), np.float32) for c in gjets.FAKE_COLUMNS}}
  table = apply.ganed_table(cr, phys, gjets.FAKE_COLUMNS, params, preselection=True)
  assert 0.1 < np.mean(draws == 1) < 0.9 and np.mean(draws > 1) > 0.1  # the cuts bite and redraws help
  agree = table["gan_pass_sr"] == (draws > 0)
  assert agree.mean() > 0.999, np.flatnonzero(~agree)[:5]  # float32 in JAX vs float64 on the host at a cut
  assert np.all(table["gan_mgg"][draws > 0] > 99.99) and np.all(table["gan_mgg"][draws > 0] < 180.01)
