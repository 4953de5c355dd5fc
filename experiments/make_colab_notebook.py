"""Writes experiments/colab_tpu.ipynb (nbformat 4) from the cells below: edit here, then run

  python experiments/make_colab_notebook.py

tests/test_colab_notebook.py checks that the notebook on disk is what this script writes, that every code
cell compiles, that every ganjax name it uses exists, and runs its light cells at test size.
Cell tags: "setup" (clone + pip; Colab only) and "long" (training, display) are skipped by that test.
"""

from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "colab_tpu.ipynb")

CELLS = [
    ("markdown", [], """\
# ganjax on a Colab TPU: the 100-member amplification ensemble and the main job

1. installs ganjax from a clone (or an uploaded zip) of the repository,
2. shows the TPU cores and the `Mesh` the ensemble's member axis is sharded over,
3. trains the GANplifying ensemble of `configs/ganplify.py` (the paper's 1D camel, 100 GANs, each on its own
   100 training points) as **one** jitted, vmapped program with the member axis sharded over all TPU cores,
   measures the amplification factor and draws the paper's figures,
4. runs the main job (conditional GAN background for H->gamma gamma, `configs/hgg.py:quick`) and shows its figures.

*Runtime > Change runtime type > TPU.* A TPU v2-8 has 8 cores; a v5e-1 / v6e-1 runtime has 1 chip. The member
axis needs a multiple of the device count, so 100 members become 104 on 8 cores (13 per core).
Set `SMALL = True` below to run everything at test size first (about a minute)."""),
    ("code", ["parameters"], """\
SMALL = False  # True: test-size configs, to check the setup in about a minute

REPO_URL = "https://github.com/<you>/ganjax"  # <- the URL of YOUR ganjax repository (there is no public one yet)
ZIP_PATH = "/content/ganjax.zip"  # or upload `git archive -o ganjax.zip HEAD` here: used when it exists
REPO_DIR = "/content/ganjax"
WORKDIR = "/content/runs"         # checkpoints and outputs; rerunning a cell resumes from its checkpoints

GANPLIFY_PRESET = "test" if SMALL else "1d"   # configs/ganplify.py presets: 1d, 2d, 5d (paper), cpu1d, test
GANPLIFY_EPOCHS = None                        # None: the preset's (10,000 for 1d); fewer for a first look
HGG_PRESET = "test" if SMALL else "quick"     # configs/hgg.py presets: "" (paper recipe), quick, test"""),
    ("markdown", [], """\
## (a) Install

Colab's TPU runtimes come with `jax[tpu]`; this installs ganjax and its other dependencies (`.[hep]` adds
mplhep for the HEP plot style) from the repository. The cell clones `REPO_URL`, or unpacks `ZIP_PATH` if
you uploaded one (Files panel on the left). If pip replaces the preinstalled jax, restart the runtime
(*Runtime > Restart session*) and run the notebook again; the install is then skipped."""),
    ("code", ["setup"], """\
import os
import subprocess
import sys

if not os.path.exists(os.path.join(REPO_DIR, "pyproject.toml")):
  if os.path.exists(ZIP_PATH):
    subprocess.run(["unzip", "-q", ZIP_PATH, "-d", REPO_DIR], check=True)
  else:
    subprocess.run(["git", "clone", "-q", REPO_URL, REPO_DIR], check=True)
%cd {REPO_DIR}
!pip install -q -e ".[hep]"
sys.path.insert(0, REPO_DIR)  # the editable install is seen by new kernels; this one imports from the clone"""),
    ("markdown", [], """\
## (b) Devices and the mesh

`ganjax.engine.member_sharding(n_members)` puts all local devices on a 1D `Mesh` with axis
`"member"` and returns the `NamedSharding` that splits the leading (member) axis of every state array over
it. Training data, parameters and optimizer states of member m live on device m // (members per device);
the members never communicate, so XLA inserts no collectives and the ensemble scales with the cores."""),
    ("code", [], """\
import glob
import importlib.util
import json
import os

import jax
import numpy as np

from ganjax import engine
from ganjax.ganplify import run as run_ganplify


def load_file(path: str):
  \"\"\"Import a file of the repository by path (configs/ and experiments/ are scripts, not a package).\"\"\"
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


devices = jax.local_devices()
print(f"{jax.default_backend()}: {len(devices)} local devices ({devices[0].device_kind})")
for d in devices:
  print(" ", d)"""),
    ("code", [], """\
gconfig = load_file("configs/ganplify.py")

config = gconfig.get_config(GANPLIFY_PRESET)
n_dev = len(devices)
config.n_members = -(-config.n_members // n_dev) * n_dev  # a multiple of the device count: 100 -> 104 on 8
if GANPLIFY_EPOCHS:
  config.train.epochs = GANPLIFY_EPOCHS
sharding = engine.member_sharding(config.n_members)
print(sharding.mesh)
print(f"{config.n_members} members ({config.n_members // n_dev} per device), {config.train.epochs} epochs of "
      f"{config.data.n_train // config.train.batch_size} steps, segments of {config.train.eval_every} epochs")"""),
    ("markdown", [], """\
## (c) The amplification ensemble

`ganjax.ganplify.run` draws each member's training sample, trains the ensemble with the engine's driver
(the whole ensemble is `jit(vmap(train_segment))`, the member axis sharded as above, an orbax checkpoint
after every segment, one progress line with rate and ETA per segment), then computes the quantile-MSE curves
of every member's GAN and of truth samples, the amplification factors, writes `metrics.json` and the
figures. Interrupted (or timed-out) sessions resume from the last segment."""),
    ("code", ["long"], """\
ens_dir = os.path.join(WORKDIR, f"ganplify_{GANPLIFY_PRESET}")
res = run_ganplify(config, ens_dir)
print(json.dumps(res["runtime"], indent=1))"""),
    ("code", ["long"], """\
from IPython.display import Image, display

for name, a in res["amplification"].items():
  print(f"{name}: amplification {a['amplification']:.2f} (ensemble band {a['amplification_lo']:.2f} .. "
        f"{a['amplification_hi'] or float('inf'):.2f})")
for path in sorted(glob.glob(os.path.join(ens_dir, "*.png"))):
  print(path)
  display(Image(path))"""),
    ("markdown", [], """\
## (d) The main job

The conditional GAN of the H->gamma gamma background estimate, in this process (a second process could not
open the TPU this kernel holds; on a GPU/CPU runtime the command line is
`python -m ganjax.main --config=configs/hgg.py:quick --workdir=runs/colab_quick`). Outputs go to the
workdir: `metrics.json`, the GANed control region, `plots/`, `validation/` and TensorBoard logs in `tb/`."""),
    ("code", ["long"], """\
from ganjax import hgg

hgg_config = load_file("configs/hgg.py")
hconfig = hgg_config.get_config(HGG_PRESET)
hgg_dir = os.path.join(WORKDIR, f"hgg_{HGG_PRESET or 'paper'}")
metrics = hgg.run(hconfig, hgg_dir)
print({k: metrics[k] for k in ("best_epoch", "best_val_nll", "test_nll", "s2_fake_pt_ratio")})"""),
    ("code", ["long"], """\
for path in sorted(glob.glob(os.path.join(hgg_dir, "**", "*.png"), recursive=True)):
  print(path)
  display(Image(path))"""),
]


def cell(kind: str, tags: list[str], text: str) -> dict:
  lines = text.splitlines(keepends=True)
  c = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}, "source": lines}
  if kind == "code":
    c.update(execution_count=None, outputs=[])
  return c


def notebook() -> dict:
  return {
      "nbformat": 4, "nbformat_minor": 5,
      "metadata": {"accelerator": "TPU", "colab": {"provenance": []},
                   "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}},
      "cells": [dict(cell(k, t, s), id=f"cell-{i}") for i, (k, t, s) in enumerate(CELLS)],
  }


def render() -> str:
  return json.dumps(notebook(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
  with open(PATH, "w") as f:
    f.write(render())
  print(f"wrote {PATH}")
