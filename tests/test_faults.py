"""Faults: damaged checkpoints, a second run on one workdir, stale locks, orphaned temporaries, bad flags.

On the GANplifying test preset (the fastest method); every method reaches these through the engine's driver
and ganjax.io."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, load_config

from ganjax import engine, io
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError
from ganjax.ganplify.train import make_members


@pytest.fixture(scope="module")
def ens():
  c = load_config("ganplify:test")
  from ganjax.data import toys
  x = toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), c.n_members, c.data.n_train)
  return c, x, make_members(c, c.n_members, 1, devices=jax.devices()[:1])


def _run(ens, workdir, epochs=3, evaluate=None):
  c, x, members = ens
  spe = members.train.spec.sampler.steps_per_epoch
  loop = driver.Loop(members, x, total_steps=epochs * spe, segment_steps=spe, keep=lambda s: s.params["g"],
                     evaluate=evaluate, select="score" if evaluate else None)
  return driver.run(loop, members.init(engine.member_keys(c.seed, c.n_members)), str(workdir))


def _largest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  return max(files, key=os.path.getsize)


def _score(state, step):
  return {"score": np.asarray([float(step % 3), float((step + 1) % 3)])}


def test_damaged_latest_falls_back_and_ends_identical(ens, tmp_path, capfd):
  straight = _run(ens, tmp_path / "a")
  _run(ens, tmp_path / "b", epochs=2)  # two latest checkpoints kept: epochs 1 and 2
  spe = ens[2].train.spec.sampler.steps_per_epoch
  victim = _largest_file(tmp_path / "b" / "checkpoints" / "latest" / str(2 * spe))
  data = bytearray(open(victim, "rb").read())
  data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # 64 silently changed bytes
  open(victim, "wb").write(bytes(data))
  resumed = _run(ens, tmp_path / "b")
  err = capfd.readouterr().err
  assert f"checkpoint latest/{2 * spe} is damaged" in err and f"falling back to latest/{spe}" in err
  assert resumed.resumed_from == spe
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), straight.state, resumed.state)


def test_every_latest_damaged_is_bad_input(ens, tmp_path):
  _run(ens, tmp_path, epochs=2)
  latest = tmp_path / "checkpoints" / "latest"
  for step in [d for d in os.listdir(latest) if d.isdigit()]:
    with open(_largest_file(latest / step), "r+b") as f:
      f.truncate(10)
  with pytest.raises(BadInputError, match="every checkpoint in .* is damaged; remove"):
    _run(ens, tmp_path)


def test_missing_best_is_rebuilt_from_latest(ens, tmp_path, capfd):
  first = _run(ens, tmp_path, epochs=2, evaluate=_score)
  import shutil
  shutil.rmtree(tmp_path / "checkpoints" / "best")
  again = _run(ens, tmp_path, epochs=3, evaluate=_score)
  assert "checkpoints/best is damaged or missing; rebuilt from latest" in capfd.readouterr().err
  spe = ens[2].train.spec.sampler.steps_per_epoch
  scores = np.asarray([_score(None, s * spe)["score"] for s in (1, 2, 3)])
  np.testing.assert_array_equal(first.best_step, (np.argmin(scores[:2], 0) + 1) * spe)
  np.testing.assert_array_equal(again.best_step, (np.argmin(scores, 0) + 1) * spe)
  assert os.listdir(tmp_path / "checkpoints" / "best")


def test_second_run_on_a_workdir_is_refused_and_stale_lock_taken_over(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ganjax import io; "
                             f"io.lock_workdir({str(tmp_path)!r}); print('locked', flush=True); time.sleep(60)"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    assert holder.stdout.readline().strip() == "locked"
    r = subprocess.run([sys.executable, "-m", "ganjax.main", "--config=configs/ganplify.py:test",
                        f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"is in use by another run (pid {holder.pid}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
  finally:
    holder.kill()
    holder.wait()
  io.lock_workdir(str(tmp_path))  # the holder is dead: taken over
  assert json.loads((tmp_path / io.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_orphaned_temporaries_removed_and_outputs_readable(tmp_path):
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / ".tmp-abcmetrics.json").write_text("{")
  io.claim_workdir(str(tmp_path), load_config("ganplify:test"))
  assert not (tmp_path / "sub" / ".tmp-abcmetrics.json").exists()
  io.write_json(str(tmp_path / "m.json"), {"a": 1})
  mask = os.umask(0)
  os.umask(mask)
  assert (os.stat(tmp_path / "m.json").st_mode & 0o777) == 0o666 & ~mask


@pytest.mark.parametrize("args,message", [
    (["--config=configs/ganplify.py:test", "--config.train.epoch=3"], "no config key 'epoch'"),
    (["--config=configs/ganplify.py:nopreset"], "unknown preset 'nopreset'"),
    (["--config=configs/nofile.py"], "No such file or directory"),
    (["--config=configs/ganplify.py:test", "--config.train.optimizer.name=adamx"], "train.optimizer.name='adamx'"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, args, message):
  r = subprocess.run([sys.executable, "-m", "ganjax.main", *args, f"--workdir={tmp_path / 'w'}"], cwd=ROOT,
                     capture_output=True, text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
  assert len(r.stderr.strip().splitlines()) == 1, r.stderr
  assert not (tmp_path / "w" / "config.json").exists()


def test_workdir_that_is_a_file_is_bad_input(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(BadInputError, match="is not a directory"):
    io.claim_workdir(str(tmp_path / "f"), load_config("ganplify:test"))
  with pytest.raises(BadInputError, match="is a file, not a directory"):
    io.claim_workdir(str(tmp_path / "f" / "w"), load_config("ganplify:test"))


@pytest.fixture(scope="module")
def hgg_regions():
  from ganjax.data import gjets
  return gjets.split_regions(gjets.simulate(6_000, seed=0))


def _bad_regions(sr, cr, case):
  sr, cr = dict(sr), dict(cr)
  if case == "string":
    cr["fake_pt"] = np.array(["abc"] * len(cr["fake_pt"]), dtype=object)
  elif case == "ragged":
    cr["fake_pt"] = cr["fake_pt"][:-3]
  elif case == "2d":
    cr["fake_pt"] = np.stack([cr["fake_pt"], cr["fake_pt"]], 1)
  elif case == "one_event_cr":
    cr = {k: v[:1] for k, v in cr.items()}
  elif case == "nan":
    sr["jet_pt"] = sr["jet_pt"].copy()
    sr["jet_pt"][:5] = np.nan
  return sr, cr


@pytest.mark.parametrize("case,message", [
    ("string", "column 'fake_pt' is not numeric (e.g. the value 'abc')"),
    ("ragged", "column 'fake_pt' has"),
    ("2d", "column 'fake_pt' has shape"),
    ("one_event_cr", "the CR has 1 events; the validation needs at least 40"),
    ("nan", "non-finite values (NaN/inf) in 1 column(s)"),
])
def test_library_tables_are_checked_like_files(hgg_regions, tmp_path, case, message):
  from ganjax import hgg
  sr, cr = _bad_regions(*hgg_regions, case)
  with pytest.raises(BadInputError) as e:
    hgg.setup(load_config("hgg:test"), str(tmp_path), regions=(sr, cr, "tables"))
  assert message in str(e.value) and "\n" not in str(e.value)
  assert not (tmp_path / "config.json").exists()  # refused before the workdir is claimed


def test_numeric_strings_become_numbers_not_string_columns():
  from ganjax.hgg.checks import numeric_table
  t = numeric_table({"n_jets": np.array(["2", "3.0", "0"]), "pt": np.array(["1.5", "2", "3"])}, "t")
  assert t["n_jets"].dtype == np.int64 and t["n_jets"].tolist() == [2, 3, 0]
  assert t["pt"].dtype == np.float64 and t["pt"].tolist() == [1.5, 2.0, 3.0]


def test_kill_9_at_random_moments_then_rerun_is_identical(tmp_path):
  """python -m ganjax.main on the amplification test preset writes its outputs; SIGKILL at seeded random moments of a run (setup, compile, training, saves, outputs), then the same
  command again: metrics.json equals an uninterrupted run's. The long version with 20 kills per method and
  damaged checkpoints is benchmarks/faults.py (docs/reliability.md)."""
  import random
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import faults

  config = faults.CONFIGS["ganplify"]
  rc, err, wall = faults.run_main(config, str(tmp_path / "ref"))
  assert rc == 0, err[-2000:]
  m = json.loads((tmp_path / "ref" / "metrics.json").read_text())  # the amplification run through ganjax.main
  assert set(m["amplification"]) == {"x_10", "x_20", "x_50"}
  assert os.listdir(tmp_path / "ref" / "tb") and (tmp_path / "ref" / "mse.png").exists()
  rng = random.Random(1)
  for k in range(1):
    work = str(tmp_path / f"kill{k}")
    faults.run_main(config, work, kill_after=rng.uniform(0.5, wall))
    rc, lines = faults.finish(config, work)
    assert rc == 0, lines
    assert faults.metrics(work) == faults.metrics(str(tmp_path / "ref"))
