"""Training speed of the one engine against the pre-engine code, in one run: member-steps/s and compile time.

  python benchmarks/engine_vs_old.py                       # every method, old rev f943c38, 3 rounds
  python benchmarks/engine_vs_old.py --methods ganplify --rounds 5

For each method the same training (same config, sizes and members) is built by the old code (a checkout of
--old-rev, made with `git worktree add` into a temporary folder) and by the current tree, each in its own
subprocess (PYTHONPATH decides which code runs): the segment is compiled ahead of time (lower + compile,
timed), run once to warm up, then `reps` segments are timed. Old and new alternate for --rounds rounds, and
the best (fastest) round of each is reported, so a load spike on a shared machine does not decide the ratio.
Targets: member-steps/s new/old >= 0.95, compile time new/old <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PRELUDE = textwrap.dedent("""
    import json, sys, time
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, ".")
    def timed(fn_compiled, args, reps):
      out = fn_compiled(*args); jax.block_until_ready(out)
      t0 = time.perf_counter()
      for _ in range(reps):
        out = fn_compiled(*args)
      jax.block_until_ready(out)
      return time.perf_counter() - t0
    def aot(jitted, *args):
      t0 = time.perf_counter(); c = jitted.lower(*args).compile(); return c, time.perf_counter() - t0
""")

# Each method: (old snippet, new snippet). A snippet defines `compiled`, `args`, `member_steps` (per call) and
# `compile_s`, then the common epilogue times it. The training is the method's CPU-sized preset.
METHODS = {
    "ganplify": (
        """
from configs import ganplify as gc
from ganjax.data import toys
from ganjax.train import ganplify as gt
c = gc.get_config("cpu1d"); M = c.n_members
ens = gt.make_ensemble(c, M, devices=jax.devices()[:1])
x = jax.device_put(toys.training_samples(toys.get_toy(c.toy), jax.random.PRNGKey(1), M, c.n_train), ens.sharding)
state = ens.init(gt.member_keys(0, M))
compiled, compile_s = aot(ens.segment_jit, state, x, 20)
args, member_steps = (state, x), M * 20 * ens.trainer.steps_per_epoch
""",
        """
from configs import ganplify as gc
from ganjax import engine
from ganjax.data import toys
from ganjax.ganplify.train import make_members
c = gc.get_config("cpu1d"); M = c.n_members
ens = make_members(c, M, 1, devices=jax.devices()[:1]); spe = ens.train.spec.sampler.steps_per_epoch
x = jax.device_put(toys.training_samples(toys.get_toy(c.data.toy), jax.random.PRNGKey(1), M, c.data.n_train),
                   ens.sharding)
state = ens.init(engine.member_keys(0, M))
compiled, compile_s = aot(ens.segment_jit, state, x, 20 * spe)
args, member_steps = (state, x), M * 20 * spe
"""),
    "hgg": (
        """
from configs import hgg as hc
from ganjax import hgg
from ganjax.data import gjets
import tempfile
c = hc.get_config("quick"); c.train.devices = 1
ev = gjets.simulate(c.data.n_events, seed=0, params=hgg.region_params(c)); sr, cr = gjets.split_regions(ev)
run = hgg.setup_run(c, tempfile.mkdtemp(), regions=(sr, cr, "sim"))
seg = jax.jit(run.fns.train_segment, static_argnums=3)
state, key = run.fns.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)
compiled, compile_s = aot(seg, state, key, run.data, 2)
args, member_steps = (state, key, run.data), 2 * run.fns.steps_per_epoch
""",
        """
from configs import hgg as hc
from ganjax import hgg
from ganjax.data import gjets
import tempfile
c = hc.get_config("quick"); c.train.devices = 1
ev = gjets.simulate(c.data.n_events, seed=0, params=hgg.region_params(c)); sr, cr = gjets.split_regions(ev)
st = hgg.setup(c, tempfile.mkdtemp(), regions=(sr, cr, "sim"))
spe = st.train.spec.sampler.steps_per_epoch
seg = jax.jit(st.train.train_segment, static_argnums=2)
state = st.train.init(jax.random.PRNGKey(0))
compiled, compile_s = aot(seg, state, st.data, 2 * spe)
args, member_steps = (state, st.data), 2 * spe
"""),
    "dctr": (
        """
from configs import dctr_toys as dc
from ganjax.data.dctr_toys import get_toy
from ganjax.train.small_gan import make_train
c = dc.get_config("grid")
init, seg, _ = make_train(c.gan)
x = get_toy(c.toy).sample(jax.random.PRNGKey(0), c.n_truth)
state = init(jax.random.PRNGKey(1), x)
compiled, compile_s = aot(seg, state, jax.random.PRNGKey(2), x, 1000)
args, member_steps = (state, jax.random.PRNGKey(2), x), 1000
""",
        """
from configs import dctr_toys as dc
from ganjax import engine
from ganjax.data.dctr_toys import get_toy
from ganjax.dctr import gan
c = dc.get_config("grid")
x = get_toy(c.data.toy).sample(jax.random.PRNGKey(0), c.data.n_truth)
shift, scale = gan.standardization(x, bool(c.gan.model.standardize))
train = engine.make_train(gan.make_spec(c.gan, x.shape[1], shift, scale))
state = jax.jit(train.init)(gan.init_keys(jax.random.PRNGKey(1), jax.random.PRNGKey(2)))
seg = jax.jit(train.train_segment, static_argnums=2)
compiled, compile_s = aot(seg, state, x, 1000)
args, member_steps = (state, x), 1000
"""),
    "zmumu": (
        """
from configs import zmumu as zc
from ganjax.train import asg
c = zc.get_config("reduced")
mod = asg.analysis_module(c.analysis); table = mod.load(c)
split = asg.split_table(table, c.val_frac, c.test_frac, c.seed)
data = asg.make_data(c, split.train, mod.DERIVED); tr = asg.make_train(c, mod.DERIVED)
M = c.n_members
state = jax.jit(jax.vmap(tr.init))(jax.random.split(jax.random.PRNGKey(0), M))
seg = jax.jit(jax.vmap(tr.train_segment, in_axes=(0, None)))
compiled, compile_s = aot(seg, state, data)
args, member_steps = (state, data), M * c.segment_steps
""",
        """
from configs import zmumu as zc
from ganjax.asg.data import analysis_module, make_data, split_table
from ganjax.asg.train import make_members
c = zc.get_config("reduced")
mod = analysis_module(c.analysis); table = mod.load(c)
split = split_table(table, c.data.val_frac, c.data.test_frac, c.seed)
data = make_data(c, split.train, mod.DERIVED)
members = make_members(c, mod.DERIVED)
M = c.n_members
state = members.init(jax.random.split(jax.random.PRNGKey(0), M))
compiled, compile_s = aot(members.segment_jit, state, data, 500)
args, member_steps = (state, data), M * 500
"""),
}

_EPILOGUE = textwrap.dedent("""
    run_s = timed(compiled, args, REPS)
    print(json.dumps({"compile_s": compile_s, "member_steps_per_s": REPS * member_steps / run_s}))
""")


def measure(code_root: str, snippet: str, reps: int) -> dict:
  env = dict(os.environ, PYTHONPATH=code_root, JAX_PLATFORMS="cpu")
  src = _PRELUDE + textwrap.dedent(snippet) + f"\nREPS = {reps}\n" + _EPILOGUE
  r = subprocess.run([sys.executable, "-c", src], cwd=code_root, env=env, capture_output=True, text=True)
  if r.returncode:
    raise RuntimeError(f"{code_root}: {r.stderr[-3000:]}")
  return json.loads(r.stdout.strip().splitlines()[-1])


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--old-rev", default="f943c38", help="the pre-engine commit")
  ap.add_argument("--methods", default=",".join(METHODS))
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--reps", type=int, default=3, help="timed segments per measurement")
  ap.add_argument("--json", default="", help="write the table as JSON here")
  args = ap.parse_args()
  import jax
  with tempfile.TemporaryDirectory() as tmp:
    old = os.path.join(tmp, "old")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", old, args.old_rev], check=True,
                   capture_output=True)
    try:
      rows = []
      for name in args.methods.split(","):
        snippet_old, snippet_new = METHODS[name]
        best = {"old": None, "new": None}
        for _ in range(args.rounds):
          for side, root, snip in (("old", old, snippet_old), ("new", ROOT, snippet_new)):
            r = measure(root, snip, args.reps)
            b = best[side]
            best[side] = r if b is None else {"compile_s": min(b["compile_s"], r["compile_s"]),
                                              "member_steps_per_s": max(b["member_steps_per_s"],
                                                                        r["member_steps_per_s"])}
        row = {"method": name, **{f"{s}_{k}": v for s in ("old", "new") for k, v in best[s].items()}}
        row["speed_ratio"] = row["new_member_steps_per_s"] / row["old_member_steps_per_s"]
        row["compile_ratio"] = row["new_compile_s"] / row["old_compile_s"]
        rows.append(row)
        print(f"{name:>9}: member-steps/s old {row['old_member_steps_per_s']:,.0f} new "
              f"{row['new_member_steps_per_s']:,.0f} (x{row['speed_ratio']:.3f}); compile old "
              f"{row['old_compile_s']:.2f} s new {row['new_compile_s']:.2f} s (x{row['compile_ratio']:.3f})",
              flush=True)
    finally:
      subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old], capture_output=True)
  print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} cores")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
