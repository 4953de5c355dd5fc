"""Fault injection: kill -9 at random moments and damaged checkpoints, each followed by a rerun that must end
with the same results as an uninterrupted run.

  python benchmarks/faults.py --methods=ganplify,hgg --kills=20 --out=runs/faults.json
  python benchmarks/faults.py --methods=dctr,zmumu --kills=5 --out=runs/faults_dctr_zmumu.json

For each method (its `test` preset through `python -m ganjax.main`): one uninterrupted reference run (and,
with the shared compilation cache, the same again from the cache: equal results, and the wall time over
which the kills are spread); then each damage case of DAMAGE on a copy of the finished reference run (bytes
flipped, a file truncated, manifests, data or whole checkpoints deleted, best/ damaged or deleted), its
metrics.json removed so that the rerun redoes the outputs from the checkpoints; then `--kills` runs, each
killed with SIGKILL after a seeded random delay (uniform over the cached run's wall time, so kills land in
setup, compilation, training, checkpoint saves, evaluation and output writing) and rerun with the same
command until it exits. A case
"held" when the rerun exits 0 and metrics.json equals the reference's in every number except timings. Also
recorded: what the user saw (the stderr lines of the rerun that are not progress lines) and the longest
traceback on stderr (0: none). Results go to --out as JSON, written after every case.
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


COMPILE_CACHE = {}  # JAX_COMPILATION_CACHE_DIR etc. for the runs (main: --compile_cache)


def run_main(config: str, workdir: str, kill_after: float | None = None, extra=()) -> tuple[int, str, float]:
  """python -m ganjax.main on `config` into workdir; SIGKILL after kill_after seconds if still running."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1", **COMPILE_CACHE)
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


def traceback_lines(stderr: str) -> int:
  """Length of the longest Python traceback on stderr (0: none)."""
  lines, longest = stderr.splitlines(), 0
  for i, line in enumerate(lines):
    if line.startswith("Traceback (most recent call last)"):
      j = i + 1
      while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
        j += 1
      longest = max(longest, j - i + 1)
  return longest


def metrics(workdir: str):
  with open(os.path.join(workdir, "metrics.json")) as f:
    return strip_timings(json.load(f))


def first_difference(a, b, path="") -> str:
  """Where two metrics documents first differ (for the log of a case that did not hold)."""
  if isinstance(a, dict) and isinstance(b, dict):
    for k in sorted(set(a) | set(b)):
      if k not in a or k not in b:
        return f"{path}/{k} only in one"
      d = first_difference(a[k], b[k], f"{path}/{k}")
      if d:
        return d
    return ""
  if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
    for i, (u, v) in enumerate(zip(a, b)):
      d = first_difference(u, v, f"{path}[{i}]")
      if d:
        return d
    return ""
  return "" if a == b else f"{path}: {str(a)[:80]} != {str(b)[:80]}"


def finish(config: str, workdir: str, extra=()) -> tuple[int, list[str], int]:
  """Rerun until the run exits with something other than a kill (at most 3 times): (exit status, what the
  user saw, the longest traceback on stderr)."""
  for _ in range(3):
    rc, err, _ = run_main(config, workdir, extra=extra)
    if rc != -signal.SIGKILL:
      break
  return rc, user_lines(err), traceback_lines(err)


def _files(step_dir: str) -> list[str]:
  return sorted(os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs)


def _flip(path: str, rng: random.Random) -> None:
  data = bytearray(open(path, "rb").read())
  at = rng.randrange(max(1, len(data) - 64))
  data[at:at + 64] = bytes((b ^ 0xFF) for b in data[at:at + 64])
  open(path, "wb").write(bytes(data))


DAMAGE = {  # case -> what is done to a finished run's checkpoints before the rerun
    "flip_bytes": "64 bytes flipped in the largest file of the newest latest checkpoint",
    "truncate": "the largest file of the newest latest checkpoint truncated to half",
    "delete_manifest": "the newest latest checkpoint's manifests deleted (_CHECKPOINT_METADATA, manifest.ocdbt)",
    "delete_data": "the newest latest checkpoint's tree/ folder deleted",
    "delete_newest": "the newest latest checkpoint deleted",
    "delete_latest": "checkpoints/latest deleted",
    "flip_best": "64 bytes flipped in the largest file of best",
    "delete_best": "checkpoints/best deleted",
}


def damage(workdir: str, how: str, rng: random.Random) -> str:
  ckpts = os.path.join(workdir, "checkpoints")
  latest = os.path.join(ckpts, "latest")
  steps = sorted((d for d in os.listdir(latest) if d.isdigit()), key=int)
  step_dir = os.path.join(latest, steps[-1])
  files = _files(step_dir)
  if how == "flip_bytes":
    path = max(files, key=os.path.getsize)
    _flip(path, rng)
  elif how == "truncate":
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif how == "delete_manifest":
    gone = [f for f in files if os.path.basename(f) in ("_CHECKPOINT_METADATA", "manifest.ocdbt")]
    for f in gone:
      os.remove(f)
    path = step_dir
  elif how == "delete_data":
    path = os.path.join(step_dir, "tree")
    shutil.rmtree(path)
  elif how == "delete_newest":
    path = step_dir
    shutil.rmtree(path)
  elif how == "delete_latest":
    path = latest
    shutil.rmtree(path)
  elif how == "flip_best":
    best = os.path.join(ckpts, "best")
    files = _files(best) if os.path.isdir(best) else []
    if not files:
      return "(no best/ kept by this method)"
    path = max(files, key=os.path.getsize)
    _flip(path, rng)
  elif how == "delete_best":
    path = os.path.join(ckpts, "best")
    shutil.rmtree(path, ignore_errors=True)
  return os.path.relpath(path, workdir)


def _seen(seen: dict, lines: list[str], workdir: str) -> None:
  """Count what the user saw, with paths and pids made generic so that equal messages group."""
  import re
  text = " / ".join(lines) or "(nothing)"
  text = re.sub(r"pid \d+", "pid N", text.replace(workdir, "WORKDIR"))
  seen[text] = seen.get(text, 0) + 1


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--methods", default="ganplify,hgg")
  ap.add_argument("--kills", type=int, default=20)
  ap.add_argument("--damage", default=",".join(DAMAGE), help="damage cases to run (comma-separated; '' for none)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default="faults.json")
  ap.add_argument("--compile_cache", type=int, default=1,
                  help="1: the runs share a JAX persistent compilation cache, filled by each method's reference "
                       "run (a killed run then only reads it); halves the CPU time of a rerun")
  a = ap.parse_args()
  rng = random.Random(a.seed)
  rows = []
  tmp = tempfile.mkdtemp(prefix="ganjax-faults-")
  if a.compile_cache:
    COMPILE_CACHE.update(JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, "jax-cache"),
                         JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                         JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")

  def save():
    with open(a.out, "w") as f:
      json.dump({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "rows": rows}, f, indent=1)

  for method in a.methods.split(","):
    config = CONFIGS[method]
    ref_dir = os.path.join(tmp, f"{method}-ref")
    rc, err, wall = run_main(config, ref_dir)
    assert rc == 0, err[-2000:]
    ref = metrics(ref_dir)
    print(f"{method}: reference run {wall:.1f} s", flush=True)
    if a.compile_cache:  # once more from the filled cache: its wall time spreads the kills; equal results
      again = os.path.join(tmp, f"{method}-ref-cached")
      rc, err, wall = run_main(config, again)
      assert rc == 0 and metrics(again) == ref, (rc, err[-2000:])
      print(f"{method}: the same from the compilation cache {wall:.1f} s, identical", flush=True)
      shutil.rmtree(again)
    for how in [h for h in a.damage.split(",") if h]:
      work = os.path.join(tmp, f"{method}-{how}")
      shutil.copytree(ref_dir, work)
      what = damage(work, how, rng)
      os.remove(os.path.join(work, "metrics.json"))  # the rerun must redo the outputs from the checkpoints
      rc, lines, tb = finish(config, work)
      got = metrics(work) if rc == 0 else None
      ok = got == ref
      seen = {}
      _seen(seen, lines, work)
      rows.append({"method": method, "case": how, "what": DAMAGE[how], "damaged": what, "tried": 1,
                   "held": int(ok), "status": rc, "user_sees": seen, "longest_traceback": tb})
      print(f"{method} {how} ({what}): rc {rc}, "
            f"{'identical' if ok else 'DIFFERENT ' + (first_difference(got, ref) if got else '')}; {lines}",
            flush=True)
      shutil.rmtree(work)
      save()
    held, seen, first_rc, longest, delays = 0, {}, {}, 0, []
    row = {"method": method, "case": "kill -9 at a random moment, rerun", "tried": 0, "held": 0,
           "user_sees": seen, "first_run_status": first_rc, "longest_traceback": 0, "delays_s": [],
           "reference_wall_s": wall}
    if a.kills:
      rows.append(row)
    for k in range(a.kills):
      work = os.path.join(tmp, f"{method}-kill{k}")
      delay = rng.uniform(0.5, wall)
      rc1, _, _ = run_main(config, work, kill_after=delay)
      rc2, lines, tb = finish(config, work)
      got = metrics(work) if rc2 == 0 else None
      ok = got == ref
      held += ok
      delays.append(delay)
      first_rc[str(rc1)] = first_rc.get(str(rc1), 0) + 1
      longest = max(longest, tb)
      _seen(seen, lines, work)
      print(f"{method} kill {k}: after {delay:.1f} s (first run rc {rc1}) -> rerun rc {rc2}, "
            f"{'identical' if ok else 'DIFFERENT ' + (first_difference(got, ref) if got else str(lines))}",
            flush=True)
      shutil.rmtree(work)
      row.update(tried=k + 1, held=held, longest_traceback=longest, delays_s=[min(delays), max(delays)])
      save()
  shutil.rmtree(tmp, ignore_errors=True)
  save()
  for r in rows:
    print(f"{r['method']:>9} | {r['case']} | {r['held']}/{r['tried']} | tb {r['longest_traceback']} | "
          f"{r['user_sees']}")


if __name__ == "__main__":
  main()
