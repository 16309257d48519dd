"""The experiment harness: a grid runs, aggregates (Rela.Imp, t-test, GAUC) and resumes after a kill."""
import json

import pytest

from hemix_tf.experiments import harness
from hemix_tf.experiments.harness import ExperimentConfig, run_grid
from hemix_tf.metrics import group_auc, rela_imp


def test_group_auc_and_rela_imp():
  import numpy as np
  labels = np.array([1, 0, 1, 0, 1, 1])
  preds = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.6])
  groups = np.array([1, 1, 2, 2, 3, 3])  # user 3 has one class only: left out
  assert group_auc(labels, preds, groups) == pytest.approx((1.0 * 2 + 0.0 * 2) / 4)
  assert rela_imp(0.7350, 0.7312) == pytest.approx(1.64, abs=0.01)  # HeMix Table 2: HeMix-Small vs DLRM


@pytest.mark.slow
def test_grid_runs_aggregates_and_resumes(tmp_path, monkeypatch):
  cfg = ExperimentConfig(suite="table4", dataset="synthetic", output_dir=str(tmp_path), seeds=2, train_steps=3,
                         synthetic_impressions=1500)
  first = run_grid(cfg)
  assert set(first["models"]) == {"HeteroMixer", "RankMixer", "Transformer"}
  row = first["models"]["HeteroMixer"]
  assert row["seeds"] == 2 and len(row["click"]["auc"]["values"]) == 2
  assert row["click"]["rela_imp_pct"] == pytest.approx(0.0)  # the reference itself
  assert 0.5 < row["oracle_auc"] <= 1.0 and row["click"]["gauc"]["mean"] is not None
  assert first["t_test"]["proposed"] == "HeteroMixer" and 0.0 <= first["t_test"]["p"] <= 1.0
  table = (tmp_path / "synthetic" / "table4" / "results.md").read_text()
  assert "| RankMixer |" in table and "t-test" in table

  # A "killed" grid: one run missing. Only that run trains again; the others are read back.
  (tmp_path / "synthetic" / "table4" / "runs" / "Transformer" / "seed1.json").unlink()
  calls = []
  real = harness.run_one
  monkeypatch.setattr(harness, "run_one", lambda *a: calls.append(a[1:3]) or real(*a))
  second = run_grid(cfg)
  assert calls == [("Transformer", 1)]
  assert second["models"]["HeteroMixer"] == json.loads(json.dumps(first["models"]["HeteroMixer"]))


def test_scaling_plot_is_written(tmp_path):
  rows = {f"{family} {size}": {"dense_params": size * 1000, "gflops": size / 1e3,
                               "click": {"auc": {"mean": 0.7 + size / 1e4, "std": 0.001}}}
          for family in ("HeMix", "RankMixer") for size in (16, 32, 64, 128)}
  harness.scaling_plot({"models": rows, "dataset": "x", "config": {"seeds": 3}}, tmp_path / "s.png")
  assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
