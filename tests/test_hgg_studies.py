"""The paper's studies as experiments: the S = 1/10/100 fluctuation study on the tiny preset."""

import importlib.util
import json
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("hgg_studies", os.path.join(REPO, "experiments", "hgg_studies.py"))
studies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(studies)


def test_fluctuation_window():
  epochs = np.arange(1, 7)
  f = studies.fluctuation(np.array([10.0, 9.0, 1.0, 2.0, 3.0, 4.0]), epochs, tail_fraction=0.5)
  assert f["n"] == 3 and f["mean"] == 3.0 and np.isclose(f["std"], 1.0) and f["epochs"] == [4, 6]
  # The paper's window: the evaluations after the lr decay ended (here epoch 3), unrecorded ones skipped.
  f = studies.fluctuation([None, None, 7.0, 1.0, None, 5.0], epochs, window_start=3)
  assert f["n"] == 2 and f["mean"] == 3.0 and np.isclose(f["std"], np.std([1.0, 5.0], ddof=1))
  assert f["epochs"] == [4, 6]
  with pytest.raises(ValueError, match="late window holds 1"):
    studies.fluctuation([1.0, 2.0, 3.0, None, None, 4.0], epochs, window_start=4)


def test_late_window_start():
  c = studies.hgg_config.get_config("test")
  assert studies.late_window_start(c) is None  # decay over all epochs: last third
  c.train.epochs, c.train.optimizer.decay_length = 12, 10
  assert studies.late_window_start(c) == 10


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


def test_samples_study_paper_window(tmp_path):
  """Fig. 2's window: training goes on after the lr reached 0 (decay_length < epochs); the extra S are
  recorded from metric.history_from on and the late std is taken over the epochs after the decay."""
  s = studies.run_study("samples", "test", str(tmp_path), sampling_keys=0, overrides={
      "metric.history_samples": (1, 3), "output.validation": False, "train.epochs": 5,
      "train.optimizer.decay_length": 2, "train.eval_every": 1, "metric.history_from": 3})
  e = s["variants"]["S1-10-100"]
  assert e["epochs"] == [1, 2, 3, 4, 5] and e["val_nll_S1"][:2] == [None, None]
  assert all(np.isfinite(e["val_nll_S1"][2:])) and all(np.isfinite(e["val_nll_S3"][2:]))
  for k in ("fluctuation_S1", "fluctuation_S3"):
    assert e[k]["n"] == 3 and e[k]["epochs"] == [3, 5]
  assert e["late_window"].startswith("epochs 3-5") and "sampling_spread" not in s
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
