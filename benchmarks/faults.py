"""Fault injection: kill -9 at random moments and damaged checkpoints, each followed by a rerun that must end
with the same results as an uninterrupted run.

  python benchmarks/faults.py --methods=ganplify,hgg --kills=20 --out=runs/faults.json

For each method (its `test` preset through `python -m ganjax.main`): one uninterrupted reference run; then
`--kills` runs, each killed with SIGKILL after a seeded random delay (uniform over the reference's wall
time, so kills land in setup, compilation, training, checkpoint saves, evaluation and output writing) and
rerun with the same command until it exits 0; then damage cases on a finished run's checkpoints (flipped
bytes, truncated files, a deleted manifest, a deleted best/) followed by a longer rerun. A case "held" when
the rerun exits 0 and metrics.json equals the reference's in every number except timings. Also recorded:
what the user saw (exit status and the stderr lines of the rerun that are not progress lines).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"ganplify": "configs/ganplify.py:test", "hgg": "configs/hgg.py:test", "dctr": "configs/dctr_toys.py:test",
           "zmumu": "configs/zmumu.py:test"}
_TIMING = ("second", "runtime", "per_s", "device", "resumed", "date", "fit_s")


def strip_timings(obj):
  """metrics.json without wall times, rates and device names (which differ between identical runs)."""
  if isinstance(obj, dict):
    return {k: strip_timings(v) for k, v in obj.items() if not any(t in k for t in _TIMING)}
  if isinstance(obj, list):
    return [strip_timings(v) for v in obj]
  return obj


def run_main(config: str, workdir: str, kill_after: float | None = None, extra=()) -> tuple[int, str, float]:
  """python -m ganjax.main on `config` into workdir; SIGKILL after kill_after seconds if still running."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  t0 = time.time()
  p = subprocess.Popen([sys.executable, "-m", "ganjax.main", f"--config={config}", f"--workdir={workdir}", *extra],
                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    _, err = p.communicate(timeout=kill_after)
  except subprocess.TimeoutExpired:
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate()
  return p.returncode, err, time.time() - t0


def user_lines(stderr: str) -> list[str]:
  """What a user reads on stderr besides progress lines."""
  return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


def metrics(workdir: str):
  with open(os.path.join(workdir, "metrics.json")) as f:
    return strip_timings(json.load(f))


def finish(config: str, workdir: str, extra=()) -> tuple[int, list[str]]:
  """Rerun until the run exits with something other than a kill (at most 3 times)."""
  for _ in range(3):
    rc, err, _ = run_main(config, workdir, extra=extra)
    if rc != -signal.SIGKILL:
      return rc, user_lines(err)
  return rc, user_lines(err)


def damage(workdir: str, how: str, rng: random.Random) -> str:
  latest = os.path.join(workdir, "checkpoints", "latest")
  steps = sorted((d for d in os.listdir(latest) if d.isdigit()), key=int)
  step_dir = os.path.join(latest, steps[-1])
  files = sorted(os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs)
  if how == "flip_bytes":
    path = max(files, key=os.path.getsize)
    data = bytearray(open(path, "rb").read())
    at = rng.randrange(max(1, len(data) - 64))
    data[at:at + 64] = bytes((b ^ 0xFF) for b in data[at:at + 64])
    open(path, "wb").write(bytes(data))
  elif how == "truncate":
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif how == "delete_manifest":
    path = next((f for f in files if "manifest" in os.path.basename(f).lower() or f.endswith("_METADATA")), files[0])
    os.remove(path)
  elif how == "delete_best":
    path = os.path.join(workdir, "checkpoints", "best")
    shutil.rmtree(path)
  return os.path.relpath(path, workdir)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--methods", default="ganplify,hgg")
  ap.add_argument("--kills", type=int, default=20)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="faults.json")
  a = ap.parse_args()
  rng = random.Random(a.seed)
  rows = []
  tmp = tempfile.mkdtemp(prefix="ganjax-faults-")
  for method in a.methods.split(","):
    config = CONFIGS[method]
    ref_dir = os.path.join(tmp, f"{method}-ref")
    rc, err, wall = run_main(config, ref_dir)
    assert rc == 0, err[-2000:]
    ref = metrics(ref_dir)
    held, seen = 0, {}
    for k in range(a.kills):
      work = os.path.join(tmp, f"{method}-kill{k}")
      delay = rng.uniform(0.5, wall)
      rc1, _, _ = run_main(config, work, kill_after=delay)
      rc2, lines = finish(config, work)
      ok = rc2 == 0 and metrics(work) == ref
      held += ok
      seen.setdefault(" / ".join(lines) or "(nothing)", 0)
      seen[" / ".join(lines) or "(nothing)"] += 1
      print(f"{method} kill {k}: after {delay:.1f} s (first run rc {rc1}) -> rerun rc {rc2}, "
            f"{'identical' if ok else 'DIFFERENT'}", flush=True)
      shutil.rmtree(work)
    rows.append({"method": method, "case": "kill -9 at a random moment, rerun", "tried": a.kills, "held": held,
                 "user_sees": seen, "reference_wall_s": wall})
    for how in ("flip_bytes", "truncate", "delete_manifest", "delete_best"):
      work = os.path.join(tmp, f"{method}-{how}")
      shutil.copytree(ref_dir, work)
      os.remove(os.path.join(work, ".ganjax.lock")) if os.path.exists(os.path.join(work, ".ganjax.lock")) else None
      what = damage(work, how, rng)
      os.remove(os.path.join(work, "metrics.json"))  # the rerun must redo the outputs from the checkpoints
      rc, lines = finish(config, work)
      ok = rc == 0 and metrics(work) == ref
      rows.append({"method": method, "case": f"{how} ({what}), rerun", "tried": 1, "held": int(ok),
                   "user_sees": {" / ".join(lines) or "(nothing)": 1}})
      print(f"{method} {how} {what}: rc {rc}, {'identical' if ok else 'DIFFERENT'}; {lines}", flush=True)
      shutil.rmtree(work)
  shutil.rmtree(tmp, ignore_errors=True)
  with open(a.out, "w") as f:
    json.dump({"date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)
  for r in rows:
    print(f"{r['method']:>9} | {r['case']} | {r['held']}/{r['tried']} | {r['user_sees']}")


if __name__ == "__main__":
  main()
