"""GANplifying ensembles on the engine: member == single training, sharded == unsharded, resume exact, the
evaluation and the MSE history, and the run through python -m ganjax.main."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import ROOT, load_config

from ganjax import engine
from ganjax.data import toys
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError
from ganjax.ganplify.run import check_config, run
from ganjax.ganplify.evaluate import evaluate
from ganjax.ganplify.train import make_generate, make_members


@pytest.fixture(scope="module")
def setup():
  """One compiled 1-device ensemble of the 'test' preset (1 epoch per segment), shared by the tests."""
  c = load_config("ganplify:test")
  x = toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), c.n_members, c.data.n_train)
  return c, x, make_members(c, c.n_members, 1, devices=jax.devices()[:1])


def _assert_trees_equal(a, b):
  for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=jax.tree_util.keystr(path))


def test_vmapped_member_equals_single_training(setup):
  c, x, ens = setup
  spe = ens.train.spec.sampler.steps_per_epoch
  keys = engine.member_keys(c.seed, c.n_members)
  state, metrics = ens.segment(ens.init(keys), x, spe)
  state, metrics = ens.segment(state, x, spe)
  single = jax.jit(ens.train.train_segment, static_argnums=2)
  s1, m1 = single(jax.jit(ens.train.init)(keys[1]), x[1], 2 * spe)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7),
               jax.tree.map(lambda a: a[1], state), s1)
  np.testing.assert_allclose(metrics["d_loss"][1, -1], m1["d_loss"][-1], rtol=1e-6)
  assert int(s1.epoch) == 2 and int(s1.step) == 2 * spe
  g = state.params["g"]["params"]["TorchDense_0"]["kernel"]
  assert not np.allclose(g[0], g[1])  # independent keys and samples


def test_resume_equals_straight_training(setup, tmp_path):
  c, x, ens = setup
  spe = ens.train.spec.sampler.steps_per_epoch
  keys = engine.member_keys(c.seed, c.n_members)
  loop = driver.Loop(ens, x, total_steps=2 * spe, segment_steps=spe, keep=lambda s: s.params["g"])
  straight = driver.run(loop, ens.init(keys), str(tmp_path / "a"))
  driver.run(loop._replace(total_steps=spe), ens.init(keys), str(tmp_path / "b"))  # stops after 1 epoch
  resumed = driver.run(loop, ens.init(keys), str(tmp_path / "b"))
  assert resumed.resumed_from == spe
  _assert_trees_equal(straight.state, resumed.state)
  assert [r["epoch"] for r in resumed.history] == [1, 2]
  assert sorted(d for d in os.listdir(tmp_path / "b" / "checkpoints" / "latest") if d.isdigit()) == [str(spe), str(2 * spe)]


def test_bad_config_raises_before_compute(tmp_path):
  with pytest.raises(BadInputError, match="multiple of train.batch_size"):
    check_config(load_config("ganplify:test", **{"data.n_train": 25}))
  with pytest.raises(BadInputError, match="train.optimizer.name='adamx'"):
    check_config(load_config("ganplify:test", **{"train.optimizer.name": "adamx"}))
  with pytest.raises(ValueError, match="multiple of the 3 devices"):
    engine.member_sharding(4, jax.devices()[:1] * 3)


_SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_disable_most_optimizations", True)
    sys.path.insert(0, {tests!r})
    from conftest import load_config
    from ganjax import engine
    from ganjax.data import toys
    from ganjax.ganplify.train import make_members
    assert jax.device_count() == 8, jax.devices()
    c = load_config("ganplify:test", n_members=8)
    x = toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), 8, c.data.n_train)
    keys = engine.member_keys(0, 8)
    out = {{}}
    for name, devs in (("sharded", None), ("single", jax.devices()[:1])):
      ens = make_members(c, 8, 1, devices=devs)
      state, m = ens.segment(ens.init(keys), x, 2 * ens.train.spec.sampler.steps_per_epoch)
      out[name] = state
      out[name + "_devices"] = len(state.params["g"]["params"]["TorchDense_0"]["kernel"].sharding.device_set)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(out["sharded"]), jax.tree.leaves(out["single"])))
    print(json.dumps({{"diff": diff, "sharded_devices": out["sharded_devices"],
                      "single_devices": out["single_devices"]}}))
""")


def test_sharded_ensemble_on_8_devices_equals_unsharded():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARDED.format(tests=os.path.join(ROOT, "tests"))], env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["sharded_devices"] == 8 and res["single_devices"] == 1
  assert res["diff"] <= 1e-6, res


def test_evaluate_and_plots(setup, tmp_path):
  """Tiny trained ensemble -> amplification curves, metrics and the figures."""
  from ganjax.io import write_json
  from ganjax.plots import ganplify as gplots

  c, x, ens = setup
  c = load_config("ganplify:test", **{"eval.n_gen": 200, "eval.n_sample_repeats": 4})
  state, _ = ens.segment(ens.init(engine.member_keys(c.seed, c.n_members)), x,
                         ens.train.spec.sampler.steps_per_epoch)
  res = evaluate(c, state.params["g"], make_generate(c, 1), x, log=lambda s: None)
  res["config"] = c.to_dict()
  assert set(res["curves"]) == {"x_10", "x_20", "x_50"}
  cur = res["curves"]["x_10"]
  np.testing.assert_array_equal(cur["n"], [100, 200])
  assert cur["gan_mean"].shape == (2,) and np.all(cur["gan_std"] >= 0) and "fit_mse_mean" in cur
  a = res["amplification"]["x_50"]
  assert a["amplification"] > 0 and a["amplification_lo"] <= a["amplification"] and a["n_gen"] == 200
  write_json(str(tmp_path / "results.json"), res)
  paths = gplots.plot_all(json.loads((tmp_path / "results.json").read_text()), str(tmp_path))
  assert {os.path.basename(p) for p in paths} == {"mse.png", "camel.png"}
  assert all(os.path.getsize(p) > 1000 for p in paths)


def test_run_with_history_resumes_identically(tmp_path):
  """run(): the MSE history at every epoch (checked against numpy on the same events), an interrupted and
  resumed run equals a straight one, tb/ written, metrics.json last."""
  from ganjax.metrics import quantiles as qm

  c = load_config("ganplify:test", **{"eval.history_every": 1, "eval.history_n_gen": 200, "eval.n_gen": 200,
                                      "eval.n_sample_repeats": 4})
  straight = run(c, str(tmp_path / "a"), log=lambda s: None)
  half = load_config("ganplify:test", **{"eval.history_every": 1, "eval.history_n_gen": 200, "eval.n_gen": 200,
                                         "eval.n_sample_repeats": 4, "train.epochs": 1})
  run(half, str(tmp_path / "b0"), log=lambda s: None)
  os.makedirs(tmp_path / "b")
  os.rename(tmp_path / "b0" / "checkpoints", tmp_path / "b" / "checkpoints")  # an interrupted run's state
  resumed = run(c, str(tmp_path / "b"), log=lambda s: None)
  assert resumed["amplification"] == straight["amplification"]
  assert [r["epoch"] for r in resumed["history"]] == [1, 2] == [r["epoch"] for r in straight["history"]]
  assert resumed["history"] == straight["history"]
  assert os.listdir(tmp_path / "a" / "tb")
  # the recorded MSE of member m at epoch 2 equals numpy on the same generated events
  from ganjax.engine.checkpoints import Checkpoints
  toy = toys.get_toy(c.data.toy)
  ens = make_members(c, c.n_members, 1)
  like = {"state": ens.init(engine.member_keys(c.seed, c.n_members)), "best": None, "aux": None}
  ckpt = Checkpoints(str(tmp_path / "a"))
  like["best"] = like["state"].params["g"]
  tree, _, _ = ckpt.restore_latest(like)
  ckpt.close()
  g_M = tree["state"].params["g"]
  edges = toy.inner_edges(0, 10)
  keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(c.seed + 2), 2), c.n_members)
  generate = make_generate(c, 1)
  rec = straight["history"][1]
  for m in range(c.n_members):
    p = jax.tree.map(lambda a: a[m], g_M)
    ev = np.concatenate([np.asarray(generate(p, jax.random.fold_in(keys[m], i), c.eval.chunk))
                         for i in range(2)])[:, 0]
    probs = np.bincount(np.searchsorted(edges, ev, side="right"), minlength=10) / len(ev)
    np.testing.assert_allclose(rec["x_10"]["member_mse"][m], ((probs - 0.1) ** 2).mean(), rtol=1e-5)
  mse = np.asarray(rec["x_50"]["member_mse"])
  np.testing.assert_allclose(rec["x_50"]["amplification"], qm.amplification(mse.mean(), 50, c.data.n_train))
