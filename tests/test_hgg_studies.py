"""The paper's studies as experiments: the S = 1/10/100 fluctuation study on the tiny preset."""

import importlib.util
import json
import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("hgg_studies", os.path.join(REPO, "experiments", "hgg_studies.py"))
studies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(studies)


def test_fluctuation_window():
  f = studies.fluctuation(np.array([10.0, 9.0, 1.0, 2.0, 3.0, 4.0]), tail_fraction=0.5)
  assert f["n"] == 3 and f["mean"] == 3.0 and np.isclose(f["std"], 1.0)


def test_samples_study_records_each_s(tmp_path):
  s = studies.run_study("samples", "test", str(tmp_path),
                        overrides={"metric.history_samples": (1, 3), "output.validation": False},
                        sampling_keys=8)
  e = s["variants"]["S1-10-100"]
  assert len(e["val_nll_S1"]) == len(e["val_nll_S3"]) == len(e["epochs"]) == 2
  assert np.all(np.isfinite(e["val_nll_S1"])) and e["val_nll_S1"] != e["val_nll_S3"]
  assert "std_ratio_S1_over_Smax" in s
  # One fixed generator, 8 latent keys (the tiny test generator misses every real bin, so its metric does
  # not move with the key: the fall with S is tested in test_hgg_metric.py).
  spread = s["sampling_spread"]
  assert spread["S1"]["n_keys"] == 8 and np.isfinite(spread["S3"]["mean"])
  assert json.load(open(tmp_path / "samples" / "summary.json"))["study"] == "samples"
  assert os.path.exists(tmp_path / "samples" / "samples.png")


def test_label_noise_study_is_one_vmapped_program(tmp_path, monkeypatch):
  monkeypatch.setitem(studies.STUDIES, "label_noise", studies.STUDIES["label_noise"][::2])  # eps 0 and 0.15
  s = studies.run_study("label_noise", "test", str(tmp_path), overrides={"output.validation": False})
  assert s["vmapped"] and list(s["variants"]) == ["eps0", "eps0.15"]
  members = json.load(open(tmp_path / "label_noise" / "members" / "members.json"))["members"]
  assert [m["label_noise"] for m in members] == [0.0, 0.15]
  for e in s["variants"].values():
    assert len(e["val_nll"]) == 2 and np.isfinite(e["best_val_nll"])
  assert os.path.exists(tmp_path / "label_noise" / "label_noise.png")
