"""Throughput of the NanoAOD reader on a synthetic NanoAOD-schema file.

  python benchmarks/nanoaod_read.py [n_events]   (default 500000; writes a temporary file)

Writes Photon_{pt,eta,phi,mvaID,genPartFlav,jetIdx}, Jet_{pt,eta,phi} and PV_npvs with NanoAOD-like
multiplicities (Poisson 1.5 photons, 4 jets per event) and times read_nanoaod (file read + selection) and
the selection alone (ganjax.data.nanoaod.select on arrays in memory).
"""

import os
import sys
import tempfile
import time

import awkward as ak
import numpy as np
import uproot

from ganjax.data import nanoaod


def synthetic_file(path: str, n: int, seed: int = 0) -> None:
  rng = np.random.default_rng(seed)
  n_ph = rng.poisson(1.5, n)
  n_j = rng.poisson(4.0, n)
  m, k = int(n_ph.sum()), int(n_j.sum())
  jet_idx = np.floor(rng.uniform(-0.3, 1.0, m) * np.repeat(n_j, n_ph)).astype(np.int32)
  photon = ak.unflatten(ak.zip({
      "pt": rng.exponential(30.0, m).astype(np.float32) + 10, "eta": rng.normal(0, 1.2, m).astype(np.float32),
      "phi": rng.uniform(-np.pi, np.pi, m).astype(np.float32), "mvaID": rng.uniform(-1, 1, m).astype(np.float32),
      "genPartFlav": rng.choice(np.array([0, 1, 11], np.uint8), m), "jetIdx": jet_idx}), n_ph)
  jet = ak.unflatten(ak.zip({
      "pt": rng.exponential(40.0, k).astype(np.float32) + 15, "eta": rng.normal(0, 2.0, k).astype(np.float32),
      "phi": rng.uniform(-np.pi, np.pi, k).astype(np.float32)}), n_j)
  data = {"Photon": photon, "Jet": jet, "PV_npvs": rng.poisson(20, n).astype(np.int32)}
  with uproot.recreate(path) as f:
    f.mktree("Events", {key: (v.type if isinstance(v, ak.Array) else v.dtype) for key, v in data.items()})
    f["Events"].extend(data)


def main(n: int) -> None:
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "synthetic_nanoaod.root")
    t = time.time()
    synthetic_file(path, n)
    print(f"wrote {n} events ({os.path.getsize(path) / 1e6:.0f} MB) in {time.time() - t:.1f} s")
    for mode in ("mc", "data"):
      t = time.time()
      sr, cr, desc = nanoaod.read_nanoaod(path, mode=mode, no_jet="nearest")
      dt = time.time() - t
      print(f"read_nanoaod mode={mode}: {dt:.2f} s = {n / dt / 1e6:.2f} M events/s; SR {len(sr['pho_pt'])}, "
            f"CR {len(cr['pho_pt'])}")
    sel = nanoaod.Selection(no_jet="nearest")
    arrays = uproot.open(path)["Events"].arrays(list(sel.branches()))
    t = time.time()
    nanoaod.select(arrays, sel)
    dt = time.time() - t
    print(f"select (in memory, mode=mc): {dt:.2f} s = {n / dt / 1e6:.2f} M events/s")


if __name__ == "__main__":
  main(int(sys.argv[1]) if len(sys.argv) > 1 else 500_000)
