"""GANplifying ensembles: vmap member == single training, sharded == unsharded, checkpoint resume exact."""

import json
import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import numpy as np
import pytest

from ganjax.data import toys
from ganjax.train import ganplify as gtrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configs import ganplify as gconfig  # noqa: E402


def _config(**over):
  c = gconfig.get_config("test")
  for k, v in over.items():
    node, *path = k.split(".")
    target = c if not path else c[node]
    target[path[-1] if path else node] = v
  return c


@pytest.fixture(scope="module")
def setup():
  """One compiled 1-device ensemble of the 'test' preset (1 epoch per segment), shared by the tests."""
  c = _config()
  x = toys.training_samples(toys.get_toy(c.toy), jax.random.PRNGKey(1), c.n_members, c.n_train)
  return c, x, gtrain.make_ensemble(c, c.n_members, devices=jax.devices()[:1])


def _assert_trees_close(a, b, rtol=1e-6, atol=1e-7):
  for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def test_vmapped_member_equals_single_training(setup):
  c, x, ens = setup
  keys = gtrain.member_keys(c.seed, c.n_members)
  state, metrics = ens.segment(ens.init(keys), x, 1)
  state, metrics = ens.segment(state, x, 1)
  single = jax.jit(partial(ens.trainer.train_segment, n_epochs=2))
  s1, m1 = single(jax.jit(ens.trainer.init)(keys[1]), x[1])
  _assert_trees_close(jax.tree.map(lambda a: a[1], state), s1)
  np.testing.assert_allclose(metrics["d_loss"][1, -1], m1["d_loss"][-1], rtol=1e-6)
  assert int(s1["epoch"]) == 2
  # members differ from each other (independent keys and samples)
  assert not np.allclose(state["g_params"]["params"]["TorchDense_0"]["kernel"][0],
                         state["g_params"]["params"]["TorchDense_0"]["kernel"][1])


def test_resume_equals_straight_training(setup, tmp_path):
  c, x, ens = setup
  straight, _ = gtrain.train_ensemble(c, x, str(tmp_path / "a"), log=lambda s: None, ens=ens)  # 2 segments
  half = _config(**{"train.epochs": 1})
  gtrain.train_ensemble(half, x, str(tmp_path / "b"), log=lambda s: None, ens=ens)  # 1 segment + checkpoint
  logs = []
  resumed, _ = gtrain.train_ensemble(c, x, str(tmp_path / "b"), log=logs.append, ens=ens)  # restore + 1
  assert logs[0] == "resumed from epoch 1"
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), straight, resumed)
  assert sorted(os.listdir(tmp_path / "b" / "checkpoints")) == ["1", "2"]
  lines = (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
  assert [json.loads(s)["epoch"] for s in lines] == [1, 2]


def test_bad_config_and_data_raise(setup, tmp_path):
  c, x, ens = setup
  with pytest.raises(ValueError, match="multiple of train.batch_size"):
    gtrain.make_train(_config(n_train=25))
  with pytest.raises(ValueError, match="n_train=20"):
    gtrain.train_ensemble(c, x[:, :10], str(tmp_path), ens=ens)
  with pytest.raises(ValueError, match="multiple of the 3 devices"):
    gtrain.member_sharding(4, jax.devices()[:1] * 3)


_SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_disable_most_optimizations", True)
    sys.path.insert(0, {root!r})
    from configs import ganplify as gconfig
    from ganjax.data import toys
    from ganjax.train import ganplify as gtrain
    assert jax.device_count() == 8, jax.devices()
    c = gconfig.get_config("test")
    c.n_members = 8
    x = toys.training_samples(toys.get_toy(c.toy), jax.random.PRNGKey(1), 8, c.n_train)
    keys = gtrain.member_keys(0, 8)
    out = {{}}
    for name, devs in (("sharded", None), ("single", jax.devices()[:1])):
      ens = gtrain.make_ensemble(c, 8, devices=devs)
      state, m = ens.segment(ens.init(keys), x, 2)
      out[name] = state
      out[name + "_devices"] = len(state["g_params"]["params"]["TorchDense_0"]["kernel"].sharding.device_set)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(out["sharded"]), jax.tree.leaves(out["single"])))
    print(json.dumps({{"diff": diff, "sharded_devices": out["sharded_devices"],
                      "single_devices": out["single_devices"]}}))
""")


def test_sharded_ensemble_on_8_devices_equals_unsharded():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARDED.format(root=ROOT)], env=env, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["sharded_devices"] == 8 and res["single_devices"] == 1
  assert res["diff"] <= 1e-6, res


def test_evaluate_and_plots_end_to_end(setup, tmp_path):
  """Tiny trained ensemble -> amplification curves, results.json and the figures (experiments/ganplify.py)."""
  from experiments import ganplify as exp
  from ganjax.io import write_json
  from ganjax.plots import ganplify as gplots

  c, x, ens = setup
  c = _config(**{"eval.n_gen": 200, "eval.n_sample_repeats": 4})
  state, _ = ens.segment(ens.init(gtrain.member_keys(c.seed, c.n_members)), x, 1)
  res = exp.evaluate(c, state, ens, x, log=lambda s: None)
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


def test_history_stages_equal_straight_training_and_resume(setup, tmp_path):
  """eval.history_every: per-stage member MSEs (checked against numpy on the same events), the staged
  training equals one straight train_ensemble, and a rerun adds nothing."""
  from experiments import ganplify as exp
  from ganjax.metrics import quantiles as qm

  c, x, _ = setup
  c = _config(**{"train.epochs": 2, "eval.history_every": 1, "eval.history_n_gen": 200})
  state, ens = exp.train_with_history(c, x, str(tmp_path / "staged"), log=lambda s: None)
  straight, _ = gtrain.train_ensemble(c, x, str(tmp_path / "straight"), log=lambda s: None, ens=ens)
  _assert_trees_close(state, straight, rtol=0, atol=0)
  path = tmp_path / "staged" / "mse_history.jsonl"
  recs = [json.loads(line) for line in path.read_text().splitlines()]
  assert [r["epoch"] for r in recs] == [1, 2]
  toy = toys.get_toy(c.toy)
  edges = toy.inner_edges(0, 10)
  keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(c.seed + 2), 2), c.n_members)
  for m in range(c.n_members):
    p = jax.tree.map(lambda a: a[m], state["g_params"])
    ev = np.concatenate([np.asarray(ens.trainer.generate(p, jax.random.fold_in(keys[m], i), c.eval.chunk))
                         for i in range(2)])[:, 0]
    probs = np.bincount(np.searchsorted(edges, ev, side="right"), minlength=10) / len(ev)
    np.testing.assert_allclose(recs[1]["x_10"]["member_mse"][m], ((probs - 0.1) ** 2).mean(), rtol=1e-5)
  mse = np.asarray(recs[1]["x_50"]["member_mse"])
  np.testing.assert_allclose(recs[1]["x_50"]["amplification"], qm.amplification(mse.mean(), 50, c.n_train))
  exp.train_with_history(c, x, str(tmp_path / "staged"), log=lambda s: None)
  assert len(path.read_text().splitlines()) == 2
