"""Faults: damaged checkpoints, a second run on one workdir, stale locks, orphaned temporaries, bad flags.

On the GANplifying test preset (the fastest method); every method reaches these through the engine's driver
and ganjax.io."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, load_config

from ganjax import engine, io
from ganjax.engine import driver
from ganjax.engine.errors import BadInputError, InterruptedError_, TrainingDivergedError
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


@pytest.fixture(scope="module")
def straight(ens, tmp_path_factory):
  return _run(ens, tmp_path_factory.mktemp("straight"))


def _flip_64_bytes(step_dir):
  victim = _largest_file(step_dir)
  data = bytearray(open(victim, "rb").read())
  data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
  open(victim, "wb").write(bytes(data))


def _truncate(step_dir):
  victim = _largest_file(step_dir)
  with open(victim, "r+b") as f:
    f.truncate(os.path.getsize(victim) // 2)


def _delete_manifests(step_dir):
  for r, _, fs in os.walk(step_dir):
    for f in fs:
      if f in ("_CHECKPOINT_METADATA", "manifest.ocdbt"):
        os.remove(os.path.join(r, f))


def _delete_tree(step_dir):  # the pytree's item folder (what older orbax layouts call `default`)
  import shutil
  shutil.rmtree(os.path.join(step_dir, "tree"))


@pytest.mark.parametrize("damage,why", [
    (_flip_64_bytes, "file(s) differ from their checksums"),
    (_truncate, "file(s) differ from their checksums"),
    (_delete_manifests, "_CHECKPOINT_METADATA"),
    (_delete_tree, "tree/"),
])
def test_damaged_latest_falls_back_and_ends_identical(ens, straight, tmp_path, capfd, damage, why):
  """Bytes flipped, a file truncated, the manifests or the data folder deleted: one warning line naming the
  damage (no orbax log lines, no traceback), the previous checkpoint used, the result bit-identical."""
  _run(ens, tmp_path, epochs=2)  # two latest checkpoints kept: epochs 1 and 2
  spe = ens[2].train.spec.sampler.steps_per_epoch
  capfd.readouterr()
  damage(tmp_path / "checkpoints" / "latest" / str(2 * spe))
  resumed = _run(ens, tmp_path)
  err = [line for line in capfd.readouterr().err.splitlines() if line.strip() and not line.startswith("[")]
  assert len(err) == 1, err
  assert f"checkpoint latest/{2 * spe} is damaged" in err[0] and f"falling back to latest/{spe}" in err[0]
  assert why in err[0]
  assert resumed.resumed_from == spe
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), straight.state, resumed.state)


@pytest.mark.parametrize("epochs", [1, 2])
def test_save_cut_before_its_checksums_is_replayed(ens, straight, tmp_path, capfd, epochs):
  """kill -9 between orbax's commit of a checkpoint and the checksums beside it: the unverified checkpoint is
  removed and its segment replayed (from the previous checkpoint, or from the beginning), never exit 2."""
  _run(ens, tmp_path, epochs=epochs)
  spe = ens[2].train.spec.sampler.steps_per_epoch
  os.remove(tmp_path / "checkpoints" / "latest" / f"{epochs * spe}.sha256.json")
  capfd.readouterr()
  resumed = _run(ens, tmp_path)
  err = [line for line in capfd.readouterr().err.splitlines() if line.strip() and not line.startswith("[")]
  then = f"falling back to latest/{spe}" if epochs == 2 else "starting from the beginning"
  assert err == [f"ganjax: warning: checkpoint latest/{epochs * spe} is incomplete (the run stopped while saving "
                 f"it); {then}"], err
  assert resumed.resumed_from == (epochs - 1) * spe
  jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v), straight.state, resumed.state)


def test_every_latest_damaged_is_bad_input(ens, tmp_path):
  _run(ens, tmp_path, epochs=2)
  latest = tmp_path / "checkpoints" / "latest"
  for step in [d for d in os.listdir(latest) if d.isdigit()]:
    with open(_largest_file(latest / step), "r+b") as f:
      f.truncate(10)
  with pytest.raises(BadInputError, match="every checkpoint in .* is damaged; remove"):
    _run(ens, tmp_path)


def test_damaged_best_is_rebuilt_from_latest(ens, tmp_path, capfd):
  """best/ truncated: detected before training goes on, rebuilt from the kept models in latest, one line."""
  _run(ens, tmp_path, epochs=2, evaluate=_score)
  best = tmp_path / "checkpoints" / "best"
  _truncate(best / next(d for d in os.listdir(best) if d.isdigit()))
  capfd.readouterr()
  again = _run(ens, tmp_path, epochs=3, evaluate=_score)
  err = [line for line in capfd.readouterr().err.splitlines() if line.strip() and not line.startswith("[")]
  assert len(err) == 1 and "checkpoints/best is damaged (best/" in err[0], err
  assert "rebuilt from the kept models in latest" in err[0]
  spe = ens[2].train.spec.sampler.steps_per_epoch
  scores = np.asarray([_score(None, e * spe)["score"] for e in (1, 2, 3)])
  np.testing.assert_array_equal(again.best_step, (np.argmin(scores, 0) + 1) * spe)
  from ganjax.engine.checkpoints import Checkpoints
  ckpt = Checkpoints(str(tmp_path))
  try:
    assert ckpt.restore_best({"best": again.best, "aux": None}) is not None and not ckpt.best_damage
  finally:
    ckpt.close()


def test_missing_best_is_rebuilt_from_latest(ens, tmp_path, capfd):
  first = _run(ens, tmp_path, epochs=2, evaluate=_score)
  import shutil
  shutil.rmtree(tmp_path / "checkpoints" / "best")
  again = _run(ens, tmp_path, epochs=3, evaluate=_score)
  err = capfd.readouterr().err
  assert "checkpoints/best is missing or older than latest; rebuilt from the kept models in latest" in err
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
    (["--config=configs/ganplify.py:test", "--config.train.optimizer=adamw"],
     "config.train.optimizer is a group of settings, not a value; set one of its keys"),
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
  """python -m ganjax.main on the amplification test preset writes its outputs; SIGKILL at seeded random
  moments of a run (setup, compile, training, saves, outputs), then the same command again: metrics.json
  equals an uninterrupted run's. The long version with 20 kills per method and damaged checkpoints is
  benchmarks/faults.py (docs/reliability.md)."""
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
    rc, lines, _ = faults.finish(config, work)
    assert rc == 0, lines
    assert faults.metrics(work) == faults.metrics(str(tmp_path / "ref"))


def test_nan_at_epoch_1_claims_no_best_checkpoint(ens, tmp_path):
  """Every member diverges in the first segment: exit status 1, the epoch and the values named, and no claim
  of a best checkpoint that is not there (best/ is empty)."""
  c, x, members = ens
  spe = members.train.spec.sampler.steps_per_epoch
  loop = driver.Loop(members, x * np.nan, total_steps=3 * spe, segment_steps=spe, keep=lambda s: s.params["g"],
                     evaluate=_score, select="score")
  with pytest.raises(TrainingDivergedError) as e:
    driver.run(loop, members.init(engine.member_keys(c.seed, c.n_members)), str(tmp_path))
  msg = str(e.value)
  assert e.value.exit_code == 1 and "\n" not in msg
  assert "loss became NaN/inf at epoch 1" in msg and "no model was kept" in msg and "-1" not in msg
  assert not [d for d in os.listdir(tmp_path / "checkpoints" / "best") if d.isdigit()]


def test_nan_later_names_the_best_checkpoint_on_disk(ens, tmp_path):
  """Divergence after a selection: the message names the epoch of the kept best models, which are on disk."""
  c, x, members = ens
  spe = members.train.spec.sampler.steps_per_epoch
  init = members.init(engine.member_keys(c.seed, c.n_members))
  loop = lambda data, epochs: driver.Loop(members, data, total_steps=epochs * spe, segment_steps=spe,
                                          keep=lambda s: s.params["g"], evaluate=_score, select="score")
  driver.run(loop(x, 1), init, str(tmp_path))
  with pytest.raises(TrainingDivergedError) as e:  # resumed at epoch 1, then the data turn NaN
    driver.run(loop(x * np.nan, 3), init, str(tmp_path))
  assert "at epoch 2" in str(e.value)
  assert f"the best models (from epoch 1) are kept in {tmp_path}/checkpoints/best" in str(e.value)
  assert [d for d in os.listdir(tmp_path / "checkpoints" / "best") if d.isdigit()] == [str(spe)]


@pytest.fixture()
def fake_method(monkeypatch):
  """ganjax.main.run_experiment on a method whose run() does what a test asks (no training)."""
  import types

  from ganjax import main as cli
  module = types.ModuleType("ganjax_fake_method")
  monkeypatch.setitem(sys.modules, "ganjax_fake_method", module)
  monkeypatch.setitem(cli.EXPERIMENTS, "fake", "ganjax_fake_method")
  config = load_config("ganplify:test")
  config.unlock()
  config.experiment = "fake"
  return cli, module, config


def _stop_with(what):
  def run(config, workdir):
    if what == "sigterm":
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(5)  # the handler raises before this ends
    raise what
  return run


@pytest.mark.parametrize("what,status,message", [
    (TrainingDivergedError("loss became NaN/inf at epoch 3 (...)"), 1, "ganjax: training stopped: loss became"),
    (BadInputError("x.csv: column 'a' is missing"), 2, "ganjax: error: x.csv: column 'a' is missing"),
    (InterruptedError_("SIGTERM received: state saved at epoch 2"), 130, "ganjax: interrupted: SIGTERM received"),
    ("sigterm", 130, "ganjax: interrupted: SIGTERM received outside training; nothing is lost: rerun with"),
    (KeyboardInterrupt(), 130, "ganjax: interrupted: Ctrl-C received outside training"),
    (IndexError("index 3 is out of bounds"), 3, "ganjax: internal error: IndexError: index 3 is out of bounds "
                                                 "(traceback in"),
])
def test_every_ending_is_one_line_with_its_status(fake_method, tmp_path, capfd, what, status, message):
  cli, module, config = fake_method
  module.run = _stop_with(what)
  assert cli.run_experiment(config, str(tmp_path)) == status
  err = capfd.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(message), err
  assert os.path.exists(tmp_path / "error.log") == (status == 3)
  assert signal.getsignal(signal.SIGTERM) is not cli._interrupt  # the previous handler is back


@pytest.mark.parametrize("workdir,message", [
    ("file", "--workdir={w} exists and is not a directory"),
    ("file/run", "--workdir={w}: {p} is a file, not a directory"),
    pytest.param("readonly/run", "--workdir={w} is not writable", marks=pytest.mark.skipif(
        os.geteuid() == 0, reason="root may write into a read-only directory")),
])
def test_unusable_workdir_is_one_line_with_status_2(tmp_path, capfd, workdir, message):
  """The run checks its input, then claims the workdir: a file, a path inside a file or a read-only
  directory is refused before any compute (the ganplify test preset's check needs no training)."""
  from ganjax import main as cli
  (tmp_path / "file").write_text("x")
  (tmp_path / "readonly").mkdir(mode=0o555)
  w = str(tmp_path / workdir)
  try:
    assert cli.run_experiment(load_config("ganplify:test"), w) == 2
  finally:
    os.chmod(tmp_path / "readonly", 0o755)
  err = capfd.readouterr().err.strip().splitlines()
  assert err == ["ganjax: error: " + message.format(w=w, p=str(tmp_path / "file"))], err


HGG_SPE = 4  # steps per epoch of the hgg test preset (512 training events in batches of 128)
HGG_OVERRIDES = {"output.validation": False, "train.epochs": 8}  # four 2-epoch segments: room for a kill


def _hgg_cli(source, workdir, cache):
  """python -m ganjax.main on the hgg test preset reading `source`, with the JAX compilation cache `cache`."""
  args = [f"--config.data.source={source}", *(f"--config.{k}={v}" for k, v in HGG_OVERRIDES.items())]
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1", PYTHONPATH=ROOT,
             JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  return subprocess.Popen([sys.executable, "-m", "ganjax.main", "--config=configs/hgg.py:test",
                           f"--workdir={workdir}", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


@pytest.fixture()
def compile_cache(tmp_path):
  """A JAX persistent compilation cache for this test's runs, in-process and in its subprocesses (each program
  of the main job is compiled once instead of four times); the process's settings are restored after."""
  from jax.experimental.compilation_cache import compilation_cache as cc
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  before = {n: getattr(jax.config, n) for n in names}
  path = str(tmp_path / "jax-cache")
  for n, v in zip(names, (path, 0.0, -1)):
    jax.config.update(n, v)
  cc.reset_cache()
  try:
    yield path
  finally:
    for n, v in before.items():
      jax.config.update(n, v)
    cc.reset_cache()


def test_hgg_bad_source_sigterms_and_kill_9_then_rerun_is_identical(tmp_path, monkeypatch, capfd, compile_cache):
  """The main job through ganjax.main, one workdir, as a user would meet faults in a row:
  1. the source file has NaN: exit 2 naming the file and the column, config.json not written;
  2. the source corrected, SIGTERM during the data setup: exit 130 with its message;
  3. kill -9 at a seeded random moment of the training (after a seeded number of saved segments);
  4. the rerun resumes and gets SIGTERM while writing its outputs: exit 130, some outputs but no metrics.json;
  5. the rerun redoes the outputs: exit 0; metrics.json and the tables equal an uninterrupted run's."""
  import random

  from ganjax import main as cli
  from ganjax.data import gjets
  hgg_run = __import__("importlib").import_module("ganjax.hgg.run")
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import faults

  rng, cache = random.Random(15), compile_cache
  source, workdir = str(tmp_path / "events.parquet"), tmp_path / "run"
  config = load_config("hgg:test", **{"data.source": source, **HGG_OVERRIDES})
  events = {k: v for k, v in gjets.simulate(6_000, seed=0).items() if k != "is_sr"}
  broken = dict(events, jet_pt=np.where(np.arange(6_000) % 1000 == 7, np.nan, events["jet_pt"]))
  io.write_parquet(source, broken)
  capfd.readouterr()

  assert cli.run_experiment(config, str(workdir)) == 2, capfd.readouterr().err[-3000:]  # 1.
  err = capfd.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "events.parquet" in err[0] and "'jet_pt' has 6 NaN/inf value(s)" in err[0], err
  assert not (workdir / "config.json").exists()

  io.write_parquet(source, events)  # 2.
  real_load = hgg_run.load_regions

  def sigterm_then_load(config):
    os.kill(os.getpid(), signal.SIGTERM)
    return real_load(config)
  monkeypatch.setattr(hgg_run, "load_regions", sigterm_then_load)
  assert cli.run_experiment(config, str(workdir)) == 130, capfd.readouterr().err[-3000:]
  err = capfd.readouterr().err.strip().splitlines()
  assert err == [f"ganjax: interrupted: SIGTERM received outside training; nothing is lost: rerun with "
                 f"--workdir={workdir} to finish (metrics.json is written last, so a run without it is redone from "
                 "its checkpoints)"], err
  monkeypatch.undo()

  proc = _hgg_cli(source, workdir, cache)  # 3.
  latest, saved = workdir / "checkpoints" / "latest", rng.choice([1, 2, 3]) * 2 * HGG_SPE
  deadline = time.time() + 600
  while not (latest.is_dir() and any(d.isdigit() and int(d) >= saved for d in os.listdir(latest))):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
    time.sleep(0.02)
  time.sleep(rng.uniform(0.0, 0.5))
  proc.kill()
  proc.communicate()
  assert not (workdir / "metrics.json").exists()

  real_write, calls = io.write_parquet, []  # 4.

  def write_then_sigterm(path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 2:  # ganed_cr written, mc_sr_test not yet
      os.kill(os.getpid(), signal.SIGTERM)
    return real_write(path, *args, **kwargs)
  monkeypatch.setattr(io, "write_parquet", write_then_sigterm)
  assert cli.run_experiment(config, str(workdir)) == 130, capfd.readouterr().err[-3000:]
  err = capfd.readouterr().err
  assert "ganjax: interrupted: SIGTERM received outside training" in err, err[-3000:]
  assert "taking over the stale lock of pid" in err  # the killed run's lock
  assert (workdir / "ganed_cr.parquet").exists() and not (workdir / "metrics.json").exists()
  monkeypatch.undo()

  assert cli.run_experiment(config, str(workdir)) == 0, capfd.readouterr().err[-3000:]  # 5.
  assert not [f for _, _, fs in os.walk(workdir) for f in fs if f.startswith(".tmp-")]
  from ganjax import hgg
  hgg.run(config, str(tmp_path / "reference"))  # uninterrupted (its programs come from the cache)
  assert faults.metrics(str(workdir)) == faults.metrics(str(tmp_path / "reference"))
  for name in ("ganed_cr.parquet", "mc_sr_test.parquet"):
    got, want = io.read_parquet(str(workdir / name))[0], io.read_parquet(str(tmp_path / "reference" / name))[0]
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got), name
