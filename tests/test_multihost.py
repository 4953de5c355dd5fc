"""Multi-host main job: two processes x 4 forced CPU devices joined by
jax.distributed (gloo) give the single-process result, and only process 0 writes outputs.

Opt-in (two full main-job runs, ~1-4 min on 2 cores): GANJAX_MULTIHOST_TEST=1 pytest tests/test_multihost.py
"""

import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(os.environ.get("GANJAX_MULTIHOST_TEST") != "1",
                                reason="opt-in: set GANJAX_MULTIHOST_TEST=1 (spawns 3 main-job processes)")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
  base = [sys.executable, "-m", "ganjax.main", "--config=configs/hgg.py:test", "--config.output.validation=False"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  port = _free_port()
  multi = [subprocess.Popen(base + [f"--workdir={tmp_path / 'multi'}", "--distributed",
                                    f"--coordinator_address=localhost:{port}", "--num_processes=2",
                                    f"--process_id={i}"],
                            env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  single = subprocess.run(base + [f"--workdir={tmp_path / 'single'}"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
  outs = [p.communicate(timeout=900)[0] for p in multi]
  assert single.returncode == 0, single.stderr[-2000:]
  assert all(p.returncode == 0 for p in multi), outs[0][-2000:] + outs[1][-2000:]
  a = json.load(open(tmp_path / "multi" / "metrics.json"))
  b = json.load(open(tmp_path / "single" / "metrics.json"))
  assert len(a["devices"]) == 8 and len(b["devices"]) == 1
  for k in ("loss_d", "loss_g", "train_nll", "val_nll"):
    assert a["history"][k] == pytest.approx(b["history"][k], rel=1e-3), k
  assert a["test_nll"] == pytest.approx(b["test_nll"], rel=1e-3)
  assert len(os.listdir(tmp_path / "multi" / "tb")) == 1  # one event file: process 0 only
