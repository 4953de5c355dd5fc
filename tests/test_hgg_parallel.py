"""Data-parallel main job (issue 7, Part 4): the batch split over 8 forced CPU devices gives the single-device
results within float tolerance (gradient all-reduce changes only the summation order)."""

import json
import os
import subprocess
import sys

import pytest

from configs import hgg as hgg_config
from ganjax import hgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_disable_most_optimizations", True)
import numpy as np
from configs import hgg as hgg_config
from ganjax import hgg
from ganjax.data import gjets

assert len(jax.devices()) == 8, jax.devices()
events = gjets.simulate(6_000, seed=0)
sr, cr = gjets.split_regions(events)
out = {}
for n_dev in (1, 8):
  c = hgg_config.get_config("test")
  c.train.devices = n_dev
  c.output.validation = False
  m = hgg.train_and_evaluate(c, f"{sys.argv[1]}/dev{n_dev}", regions=(sr, cr, "sim"))
  out[n_dev] = {"history": m["history"], "test_nll": m["test_nll"], "best_epoch": m["best_epoch"]}
  cols = __import__("ganjax.io", fromlist=["read_parquet"]).read_parquet(f"{sys.argv[1]}/dev{n_dev}/ganed_cr.parquet")[0]
  out[n_dev]["gan_fake_pt"] = np.asarray(cols["gan_fake_pt"], float).tolist()
# The 8-device program is really data-parallel: gradients are all-reduced across the batch split.
from ganjax.parallel import data_mesh, replicate
from ganjax.train.gan import make_train
mesh = data_mesh(8)
fns = make_train(c, 5, 4, 512, mesh=mesh)
st = replicate(fns.init(jax.random.PRNGKey(0)), mesh)
d = replicate({"gen": np.zeros((512, 4), np.float32), "cond": np.zeros((512, 5), np.float32)}, mesh)
hlo = jax.jit(fns.train_segment, static_argnums=3).lower(st, jax.random.PRNGKey(1), d, 1).compile().as_text()
out["all_reduce"] = "all-reduce" in hlo
print("RESULT" + json.dumps(out))
"""


def test_sharded_equals_unsharded(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
             PYTHONPATH=REPO)
  r = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                     cwd=REPO, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.split("RESULT", 1)[1])
  assert res.pop("all_reduce")
  one, eight = res["1"], res["8"]
  for k in ("loss_d", "loss_g", "train_nll", "val_nll"):
    assert one["history"][k] == pytest.approx(eight["history"][k], rel=1e-3), k
  assert one["best_epoch"] == eight["best_epoch"]
  for s in one["test_nll"]:
    assert one["test_nll"][s] == pytest.approx(eight["test_nll"][s], rel=1e-3)
  assert one["gan_fake_pt"] == pytest.approx(eight["gan_fake_pt"], rel=1e-3, abs=1e-3)


def test_batch_not_divisible_by_devices_is_refused():
  c = hgg_config.get_config("test")
  c.train.devices = 5  # more than the single test device
  with pytest.raises(hgg.BadInputError, match="train.devices"):
    hgg.check_config(c)
