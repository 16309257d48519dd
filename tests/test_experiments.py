"""The experiment harness: a grid runs, aggregates (Rela.Imp, t-test, GAUC) and resumes after a kill."""
import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from browser import rendered
from hemix_tf.data.examples import read_timestamps
from hemix_tf.experiments import harness
from hemix_tf.experiments.harness import ExperimentConfig, run_grid
from hemix_tf.experiments.report import grid_report, scaling_figure
from hemix_tf.metrics import between_group_auc, group_auc, rela_imp
from sklearn.metrics import roc_auc_score


def test_group_auc_and_rela_imp():
  labels = np.array([1, 0, 1, 0, 1, 1])
  preds = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.6])
  groups = np.array([1, 1, 2, 2, 3, 3])  # user 3 has one class only: left out
  assert group_auc(labels, preds, groups) == pytest.approx((1.0 * 2 + 0.0 * 2) / 4)
  assert rela_imp(0.7350, 0.7312) == pytest.approx(1.64, abs=0.01)  # HeMix Table 2: HeMix-Small vs DLRM
  assert np.isnan(rela_imp(0.6, 0.5))  # a base at chance: undefined, not a crash of the aggregation
  assert group_auc(labels, preds, np.array([3, 3, 3, 3, 3, 3])) == pytest.approx(roc_auc_score(labels, preds))
  assert group_auc(np.array([1, 1]), np.array([0.2, 0.3]), np.array([1, 1])) is None


def test_group_auc_is_the_mean_of_each_users_roc_auc_score_ties_included():
  """The vectorised GAUC against sklearn's AUC per group, weighted by the group's size, on users of
  every size, predictions with many ties, string ids and groups of one class."""
  rng = np.random.default_rng(0)
  groups = rng.choice([f"u{i}" for i in range(300)], size=5000)
  labels = (rng.random(5000) < 0.3).astype(np.float32)
  preds = np.round(rng.random(5000) * 20) / 20  # 21 distinct values: ties within most users
  total = weight = 0.0
  for g in np.unique(groups):
    y, p = labels[groups == g], preds[groups == g]
    if 0 < y.sum() < len(y):
      total += roc_auc_score(y, p) * len(y)
      weight += len(y)
  assert group_auc(labels, preds, groups) == pytest.approx(total / weight, abs=1e-12)


def test_between_user_auc_ranks_the_users_and_gauc_the_items_within_each():
  """Two users, one lenient (3 of 4 clicked), one harsh (1 of 4). A model that orders each user's items
  perfectly but scores both users alike: GAUC 1, between-user AUC 0.5. One that scores the lenient user
  higher but orders the items at random within each: between-user AUC above 0.5 (its AUC = the users'
  order alone), GAUC below 1."""
  users = np.array(["a"] * 4 + ["b"] * 4)
  labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
  items_only = np.array([0.8, 0.6, 0.3, 0.2, 0.8, 0.6, 0.3, 0.2])  # the same scores for each user
  assert group_auc(labels, items_only, users) == 1.0
  assert between_group_auc(labels, items_only, users) == 0.5  # both users' mean logits tie
  users_only = np.array([0.7, 0.6, 0.8, 0.9, 0.3, 0.4, 0.2, 0.1])
  assert group_auc(labels, users_only, users) < 1.0
  assert between_group_auc(labels, users_only, users) == pytest.approx(roc_auc_score(labels, [1] * 4 + [0] * 4))
  assert between_group_auc(np.ones(4), np.full(4, 0.5), users[:4]) is None


# Runs of 3 steps test the harness, not the step: uncompiled, they skip XLA's compile time (the
# default xla="interaction" is tested in test_model and, through the Trainer, in test_pipeline).
SYNTHETIC = {"dataset": "synthetic", "synthetic_impressions": 1500, "train_steps": 3, "xla": "off"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The synthetic dataset and its examples, made once; each test copies them into its output_dir."""
  out = tmp_path_factory.mktemp("experiments")
  harness.prepare_examples(ExperimentConfig(suite="table4", output_dir=str(out), **SYNTHETIC))
  return out / "synthetic" / "data"


def _output_dir(prepared, tmp_path) -> str:
  shutil.copytree(prepared, tmp_path / "synthetic" / "data")
  return str(tmp_path)


@pytest.mark.slow
def test_grid_runs_aggregates_and_resumes(prepared, tmp_path, monkeypatch, capsys):
  cfg = ExperimentConfig(suite="table4", output_dir=_output_dir(prepared, tmp_path), seeds=2,
                         models=("HeteroMixer", "RankMixer"), **SYNTHETIC)
  counted = []  # the FLOP count (seconds of profiling) runs once per model config, not per seed
  count = harness.forward_flops
  monkeypatch.setattr(harness, "forward_flops", lambda model, fc: counted.append(model.name) or count(model, fc))
  monkeypatch.setattr(harness, "_FORWARD_GFLOPS", {})
  first = run_grid(cfg)
  assert len(counted) == 2
  assert set(first["models"]) == {"HeteroMixer", "RankMixer"}
  row = first["models"]["HeteroMixer"]
  assert row["seeds"] == 2 and len(row["click"]["auc"]["values"]) == 2
  assert row["click"]["rela_imp_pct"] == pytest.approx(0.0)  # the reference itself
  assert 0.5 < row["oracle_auc"] <= 1.0 and row["click"]["gauc"]["mean"] is not None
  assert first["t_test"]["proposed"] == "HeteroMixer" and 0.0 <= first["t_test"]["p"] <= 1.0
  assert first["learning_rate"] == 1e-3 and first["tuning"] is None
  table = (tmp_path / "synthetic" / "table4" / "results.md").read_text()
  assert "| RankMixer |" in table and "t-test" in table and "not tuned" in table
  shown = rendered(first["report"])  # the grid's page, in a real browser
  assert shown["headings"] == ["Results", "Curves", "Warm and cold users"]
  assert [alt for alt, width in shown["images"] if width > 0] == ["click_auc", "curves"]
  assert set(first["heuristics"]) == {"item CTR", "user CTR", "category match", "item in history"}
  assert "Untrained heuristics' CTR AUC" in table

  # A "killed" grid: one run missing. Only that run trains again; the others are read back.
  (tmp_path / "synthetic" / "table4" / "runs" / "bs256-lr0.001-3steps" / "RankMixer" / "seed1.json").unlink()
  calls = []
  real = harness.run_one
  monkeypatch.setattr(harness, "run_one", lambda *a: calls.append(a[1:3]) or real(*a))
  capsys.readouterr()
  second = run_grid(cfg)
  assert calls == [("RankMixer", 1)]
  assert "3/4 [" in capsys.readouterr().err  # the progress bar starts at the finished runs
  log = tmp_path / "synthetic" / "table4" / "runs" / "bs256-lr0.001-3steps" / "RankMixer" / "seed1.log"
  assert [line.split()[:2] for line in log.read_text().splitlines()] == [["step", "1/3"], ["step", "2/3"],
                                                                        ["step", "3/3"]]
  assert second["models"]["HeteroMixer"] == json.loads(json.dumps(first["models"]["HeteroMixer"]))

  # The same model config, seed and protocol in another suite is copied, not trained again.
  calls.clear()
  reused = run_grid(ExperimentConfig(suite="table3", output_dir=cfg.output_dir, seeds=2, models=("HeMix",),
                                     **SYNTHETIC))
  assert calls == []
  assert reused["models"]["HeMix"]["click"] == second["models"]["HeteroMixer"]["click"]
  copy = json.loads((tmp_path / "synthetic" / "table3" / "runs" / "bs256-lr0.001-3steps" / "HeMix" /
                     "seed1.json").read_text())
  assert copy["model"] == "HeMix" and copy["reused_from"].endswith("table4/runs/bs256-lr0.001-3steps/HeteroMixer/seed1.json")

  # A finished run of another model config (the suite changed since) is refused, not mixed in.
  stored = tmp_path / "synthetic" / "table4" / "runs" / "bs256-lr0.001-3steps" / "RankMixer" / "seed0.json"
  run = json.loads(stored.read_text())
  stored.write_text(json.dumps({**run, "config": {**run["config"], "d_t": run["config"]["d_t"] * 2}}))
  with pytest.raises(ValueError, match="another config of 'RankMixer'"):
    run_grid(cfg)


def test_a_run_another_grid_finished_meanwhile_is_not_trained_again(tmp_path):
  """Two grids on one directory (e.g. a benchmark started while the suite ran): a run that the other
  finishes after this grid listed its pending runs is read back, not trained a second time."""
  cfg = ExperimentConfig(suite="table4", output_dir=str(tmp_path), models=("HeteroMixer", "RankMixer"), **SYNTHETIC)
  directory = tmp_path / "synthetic" / "table4" / "runs" / "bs256-lr0.001-3steps"

  def result(name):
    return {"model": name, "seed": 0, "split": "eval", "metrics": {"click": {"auc": 0.6}}, "train_seconds": 1.0,
            "config": harness._as_json(cfg.model_config(name))}

  calls = []

  def run(name, seed, log):
    calls.append(name)
    other = directory / "RankMixer" / "seed0.json"  # the other grid finishes its run meanwhile
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(json.dumps(result("RankMixer")))
    return result(name)

  runs = harness._run_all(cfg, [("HeteroMixer", 0), ("RankMixer", 0)], directory, "test", run)
  assert calls == ["HeteroMixer"]
  assert [r["model"] for r in runs] == ["HeteroMixer", "RankMixer"]


def test_validation_split_is_the_end_of_train(prepared):
  job = json.loads((prepared / "examples" / "job_summary.json").read_text())
  timestamps = read_timestamps(job["outputs"]["train"])
  split = harness.validation_split(job, 0.2)
  cut = split.eval_timestamps[0]
  assert split.train_timestamps == (None, cut) and split.eval_files == job["outputs"]["train"]
  assert split.train_examples == (timestamps < cut).sum()
  assert 0.75 <= split.train_examples / len(timestamps) <= 0.8  # ties at the cut go to validation
  assert timestamps.max() < json.loads((prepared / "raw" / "manifest.json").read_text())["eval_start_timestamp"]


def _request_ids_by_file(pattern: str) -> list[list[bytes]]:
  spec = {"request_id": tf.io.FixedLenFeature([], tf.string)}
  return [[tf.io.parse_single_example(r, spec)["request_id"].numpy()
           for r in tf.data.TFRecordDataset(f, compression_type="GZIP")] for f in sorted(tf.io.gfile.glob(pattern))]


def test_a_rebuilt_dataset_is_read_in_the_same_order(prepared, tmp_path, capsys):
  """The examples built again from the same logs are the same files in the same order, so every seed
  trains on the same stream (before, each build put the examples in other files and in another order
  within them, and a model's AUC moved by up to 0.003: docs/ARCHITECTURE.md, finding 43). Each step says
  when it starts and ends (on a million impressions they take minutes)."""
  shutil.copytree(prepared / "raw", tmp_path / "synthetic" / "data" / "raw")
  _, job = harness.prepare_examples(ExperimentConfig(suite="table4", output_dir=str(tmp_path), **SYNTHETIC))
  steps = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hemix-experiment: ")]
  assert [line.endswith(" ...") for line in steps] == [True, False, True, False]
  assert "the sequence job" in steps[0] and "canonical order" in steps[2] and "done in" in steps[3]
  first = json.loads((prepared / "examples" / "job_summary.json").read_text())
  for split in ("train", "eval"):
    again, before = _request_ids_by_file(job["outputs"][split]), _request_ids_by_file(first["outputs"][split])
    assert len(again) > 1 and again == before


@pytest.mark.slow
def test_learning_rate_is_chosen_on_validation_never_on_eval(prepared, tmp_path):
  cfg = ExperimentConfig(suite="table4", output_dir=_output_dir(prepared, tmp_path), seeds=1,
                         models=("HeteroMixer", "RankMixer"), learning_rates=(1e-4, 3e-2), **SYNTHETIC)
  results = run_grid(cfg)
  job = json.loads((tmp_path / "synthetic" / "data" / "examples" / "job_summary.json").read_text())
  cut = results["tuning"]["validation_from_timestamp"]
  validation = (read_timestamps(job["outputs"]["train"]) >= cut).sum()
  mean = {}
  for lr in cfg.learning_rates:
    runs = [json.loads(p.read_text()) for p in (tmp_path / "synthetic" / "table4" / "tuning" / cfg.protocol(lr)).glob("*/seed0.json")]
    assert len(runs) == 2 and all(r["split"] == "validation" and r["learning_rate"] == lr for r in runs)
    assert all(r["metrics"]["click"]["examples"] == validation for r in runs)  # scored on validation only
    mean[lr] = np.mean([r["metrics"]["click"]["auc"] for r in runs])
  assert results["learning_rate"] == max(mean, key=mean.get)
  final = [json.loads(p.read_text()) for p in
           (tmp_path / "synthetic" / "table4" / "runs" / cfg.protocol(results["learning_rate"])).glob("*/seed0.json")]
  assert len(final) == 2 and all(r["split"] == "eval" and r["learning_rate"] == results["learning_rate"] for r in final)
  assert all(r["metrics"]["click"]["examples"] == job["counters"]["eval_examples"] for r in final)
  assert "chosen by the mean validation CTR AUC" in (tmp_path / "synthetic" / "table4" / "results.md").read_text()


def _scaling_results(oracle=None, train_steps=0):
  rows = {f"{family} {size}": {"dense_params": size * 1000, "gflops": size / 1e3,
                               "click": {"auc": {"mean": 0.7 + size / 1e4, "std": 0.001}},
                               **({"oracle_auc": oracle} if oracle else {})}
          for family in ("HeMix", "RankMixer") for size in (16, 32, 64, 128)}
  return {"models": rows, "dataset": "x", "config": {"seeds": 3, "train_steps": train_steps, "batch_size": 256}}


def test_the_scaling_suites_report_carries_its_figure(tmp_path):
  results = {**_scaling_results(), "protocol": "p", "split": "eval", "learning_rate": 1e-3, "heuristics": None}
  results["config"]["suite"] = "scaling"
  for row in results["models"].values():
    row["click"].update(logloss={"mean": 0.3}, gauc={"mean": None})
  path = grid_report(results, []).write(str(tmp_path / "report"))
  assert [alt for alt, width in rendered(path)["images"] if width > 0] == ["click_auc", "scaling"]
  assert (tmp_path / "report" / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_plot_marks_the_oracle_and_the_training_length():
  def oracle_lines(fig):
    return [[line.get_ydata()[0] for line in ax.get_lines() if line.get_label().startswith("oracle")]
            for ax in fig.axes]

  plain = scaling_figure(_scaling_results())
  assert oracle_lines(plain) == [[], []] and "one epoch per run" in plain._suptitle.get_text()
  synthetic = scaling_figure(_scaling_results(oracle=0.8619, train_steps=1000))
  assert oracle_lines(synthetic) == [[0.8619], [0.8619]]  # both panels, params and GFLOPs
  assert "1000 steps of 256 per run" in synthetic._suptitle.get_text()


def test_one_seed_is_reported_without_a_spread():
  cfg = ExperimentConfig(suite="table4", dataset="synthetic", seeds=1)
  runs = [{"model": name, "metrics": {"click": {"auc": auc, "logloss": 0.3, "gauc": None}},
           "dense_params": 1, "embedding_params": 1, "gflops": 0.001, "train_seconds": 1.0}
          for name, auc in (("HeteroMixer", 0.7652), ("RankMixer", 0.75))]
  table = harness.markdown({**harness.aggregate(cfg, runs), "learning_rate": 1e-3})
  assert "| HeteroMixer | 0.7652 | +0.00% | 0.3000 | – |" in table and "±" not in table
  assert "One seed only (no spread): HeteroMixer, RankMixer." in table


def test_a_run_stored_before_an_option_existed_still_matches_its_default():
  """A run's JSON lacks the fields added to the config class after it ran; they are read at their
  defaults (a new option's default keeps the old behaviour), any other difference is another config."""
  from hemix_tf.experiments.harness import _as_json, _matches
  from hemix_tf.experiments.suites import PAPER
  stored = _as_json(PAPER)
  del stored["pooling"]
  assert _matches(stored, PAPER)
  assert not _matches(stored, dataclasses.replace(PAPER, pooling="flatten"))
  assert not _matches({**stored, "d_t": 64}, PAPER)
  assert not _matches({**stored, "no_such_option": 1}, PAPER)


def test_a_run_stored_with_a_renamed_option_is_a_run_of_the_model_it_trained():
  """A grid stored before `heads_read` replaced `heads_read_embeddings` stopped with "run with another
  config" on resume, for the very model the suite names today."""
  from hemix_tf.experiments.harness import _as_json, _matches
  from hemix_tf.data.feature_config import FeatureGroup
  from hemix_tf.model.config import preset
  default = preset("cpu-small")
  stored = {k: v for k, v in _as_json(default).items() if k != "heads_read"}
  assert _matches({**stored, "heads_read_embeddings": True}, default)
  assert not _matches({**stored, "heads_read_embeddings": False}, default)
  assert default.heads_read == tuple(g.value for g in FeatureGroup)


def test_a_fixed_protocol_sets_epochs_sequence_lengths_and_embedding_width(prepared, tmp_path):
  """The MovieLens protocol's flags: N full passes (the model after the last step is scored), every
  model reads the most recent L_G / L_R events and embeds at one width, and the protocol names the runs."""
  common = {**SYNTHETIC, "train_steps": 0}
  cfg = ExperimentConfig(suite="table4", output_dir=_output_dir(prepared, tmp_path), seeds=1, models=("HeteroMixer",),
                         epochs=2, sequence_lengths=(8, 2), embedding_dim=8, **common)
  manifest, job = harness.prepare_examples(cfg)
  fc = cfg.feature_config(manifest)
  assert (fc.sequence.global_length, fc.sequence.realtime_length) == (8, 2)
  with pytest.raises(ValueError, match="exceed the examples"):
    dataclasses.replace(cfg, sequence_lengths=(8, 10_000)).feature_config(manifest)
  with pytest.raises(ValueError, match="epochs must be >= 1, and 1 with train_steps"):
    ExperimentConfig(suite="table4", epochs=2, **SYNTHETIC)

  results = run_grid(cfg)
  protocol = "bs256-lr0.001-2epochs-L8x2-emb8"
  run = json.loads((tmp_path / "synthetic" / "table4" / "runs" / protocol / "HeteroMixer" / "seed0.json").read_text())
  assert run["steps"] == 2 * -(-job["counters"]["train_examples"] // 256)
  assert set(run["config"]["embedding_dim"].values()) == {8}
  assert results["protocol"] == protocol and f"Protocol {protocol}" in harness.markdown(results)
  # Eval after every epoch; the run's metrics are the last epoch's, and each epoch's split warm / cold users.
  assert [c["epoch"] for c in run["curve"]] == [1, 2] and run["curve"][-1]["metrics"] == run["metrics"]
  assert run["curve"][0]["metrics"]["click"]["auc"] != run["curve"][1]["metrics"]["click"]["auc"]
  slices = run["metrics"]["click"]["slices"]
  assert set(slices) <= {"warm", "cold"} and sum(s["examples"] for s in slices.values()) == \
      run["metrics"]["click"]["examples"]
  assert all({"gauc", "between_auc"} <= set(s) for s in slices.values())  # the AUC's two parts per slice
  for s in slices.values():  # each slice split again by whether the example has a global event
    assert set(s["by_history"]) <= {"history", "no history"}
    assert sum(part["examples"] for part in s["by_history"].values()) == s["examples"]
  norms = run["curve"][-1]["embedding_norms"]
  assert set(norms) >= {"item_id", "user_id", "time_gap"} and all(n["last"] >= 0 for n in norms.values())


def test_runs_encode_ids_as_the_pipelines_transform_unless_hashing_is_asked(prepared, tmp_path):
  """The default encoding is the train split's vocabularies (the shipped model's tables: one row per value
  seen twice, plus the out-of-vocabulary row); hashing is a named option whose collision rates are logged."""
  cfg = ExperimentConfig(suite="table4", output_dir=_output_dir(prepared, tmp_path), seeds=1,
                         models=("HeteroMixer",), **SYNTHETIC)
  manifest, job = harness.prepare_examples(cfg)
  split = harness.eval_split(job)
  config = cfg.model_config("HeteroMixer")
  analysis = harness.split_analysis(cfg, manifest, split, config.time_gap_buckets)
  fc = cfg.feature_config(manifest)
  with open(tmp_path / "log", "w") as out:
    vocabulary = harness.encoder_for(cfg, fc, config, analysis, out)
    hashed = harness.encoder_for(dataclasses.replace(cfg, id_encoding="hashing"), fc, config, analysis, out)
  items = analysis.counts["item_id"]
  assert vocabulary.table_sizes["item_id"] == sum(c >= 2 for c in items.values()) + 1 < config.hash_buckets
  assert hashed.table_sizes["item_id"] == config.hash_buckets
  logged = (tmp_path / "log").read_text()
  assert "hashing item_id: " in logged and "share a row" in logged
  assert dataclasses.replace(cfg, id_encoding="hashing").protocol(1e-3) == "bs256-lr0.001-3steps-hashed"
  with pytest.raises(ValueError, match="id_encoding"):
    dataclasses.replace(cfg, id_encoding="murmur")


def test_hash_collisions_count_the_values_that_share_a_row():
  from hemix_tf.data.analysis import Analysis
  values = [str(i) for i in range(1000)]
  rates = Analysis({"item_id": dict.fromkeys(values, 1)}, {}, ()).hash_collisions(1000)
  # 1,000 values in 1,000 rows: about 1 - (1 - 1/1000)^999 ~ 63% of them share their row.
  assert 0.55 < rates["item_id"] < 0.72
  assert Analysis({"item_id": dict.fromkeys(values, 1)}, {}, ()).hash_collisions(10**9)["item_id"] == 0.0


def test_an_embedding_start_for_every_model_is_part_of_the_protocol():
  cfg = ExperimentConfig(suite="table2", dataset="ml-100k", embedding_init="1e-4")
  assert cfg.protocol(1e-3) == "bs256-lr0.001-1epoch-init1e-4"
  assert {cfg.model_config(n).embedding_init_stddev for n in ("HeMix", "DLRM", "HeMix (paper)")} == {1e-4}
  uniform = dataclasses.replace(cfg, embedding_init="uniform")
  assert uniform.model_config("DIN").embedding_init_stddev is None
  with pytest.raises(ValueError, match="embedding_init"):
    dataclasses.replace(cfg, embedding_init="-1")


def test_a_screen_overrides_the_models_configs_and_is_stored_apart():
  """--set: the screened fields replace the suite's in every selected model, the runs get their own
  directory (never mixed with, nor reused as, the suite's), and a bad override fails before training."""
  cfg = ExperimentConfig(suite="table2", dataset="ml-100k", models=("HeMix", "DIN"),
                         overrides=("oov_dropout_tables=[user_id, item_id]",))
  assert {cfg.model_config(n).oov_dropout_tables for n in ("HeMix", "DIN")} == {("user_id", "item_id")}
  assert cfg.protocol(1e-3) == "bs256-lr0.001-1epoch-oov_dropout_tables=[user_id,item_id]"
  hemix = ExperimentConfig(suite="table2", dataset="ml-100k", models=("HeMix",), overrides=("d_t=16", "num_blocks=1"))
  assert (hemix.model_config("HeMix").d_t, hemix.model_config("HeMix").num_blocks) == (16, 1)
  assert hemix.protocol(1e-3) == "bs256-lr0.001-1epoch-d_t=16-num_blocks=1"
  assert ExperimentConfig(suite="table2", dataset="ml-100k").model_config("HeMix").d_t == 32  # the suite's
  with pytest.raises(ValueError, match=r"unknown BaselineConfig hyper-parameter\(s\) \['d_t'\]"):
    ExperimentConfig(suite="table2", dataset="ml-100k", models=("DIN",), overrides=("d_t=16",))
  with pytest.raises(ValueError, match="expected name=value"):
    ExperimentConfig(suite="table2", dataset="ml-100k", models=("HeMix",), overrides=("d_t",))


def test_a_warmup_is_part_of_the_protocol():
  """Runs with and without a warm-up never share a directory (nor are reused for one another)."""
  cfg = ExperimentConfig(suite="table4", dataset="synthetic", warmup_steps=100)
  assert cfg.protocol(1e-3) == "bs256-lr0.001-warmup100-1epoch"
  assert dataclasses.replace(cfg, warmup_steps=0).protocol(1e-3) == "bs256-lr0.001-1epoch"
  with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
    dataclasses.replace(cfg, warmup_steps=-1)


def test_every_model_name_can_be_selected_with_models():
  """--models is a comma-separated list: a suite's model name with a comma could never be selected."""
  from hemix_tf.experiments.suites import SUITES
  assert [name for suite in SUITES.values() for name in suite if "," in name] == []


def test_an_exported_split_holds_the_examples_as_the_models_read_them(prepared, tmp_path):
  """The CSV another library trains on (hemix_tf/experiments/export.py): every example of each side in
  file order, its labels and features, each sequence cut to the protocol's length, most recent first."""
  import csv
  import tensorflow as tf
  from hemix_tf.data.examples import parse_spec
  from hemix_tf.experiments.export import export_split, time_gap_bucket
  cfg = ExperimentConfig(suite="table4", output_dir=_output_dir(prepared, tmp_path), sequence_lengths=(5, 3),
                         **SYNTHETIC)
  manifest, job = harness.prepare_examples(cfg)
  split = harness.validation_split(job, 0.2)
  fc = cfg.feature_config(manifest)
  rows = export_split(split.train_files, split.eval_files, fc, tmp_path / "exported",
                      split.train_timestamps, split.eval_timestamps)
  roles = json.loads((tmp_path / "exported" / "columns.json").read_text())
  assert roles["sequences"]["global_item_id"] == {"max_len": 5, "shares": "item_id"}
  assert roles["sequences"]["realtime_behavior"] == {"max_len": 3, "shares": "global_behavior"}
  assert roles["dense"] and set(roles["dense"]).isdisjoint(roles["categorical"])

  stamps = read_timestamps(split.train_files)
  cut = split.eval_timestamps[0]
  assert rows == {"train": int((stamps < cut).sum()), "eval": int((stamps >= cut).sum())}
  spec = parse_spec(fc)
  records = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(
      sorted(tf.io.gfile.glob(split.train_files)), compression_type="GZIP")]
  records = [r for r in records if int(r["timestamp"]) >= cut]
  written = list(csv.DictReader((tmp_path / "exported" / "eval.csv").open()))
  assert len(written) == len(records)
  for example, row in zip(records, written):
    assert row["click"] == str(int(example["click"])) and row["user_id"] == str(int(example["user_id"]))
    items = [str(v) for v in example["global_item_id"].numpy()[:5]]
    assert row["global_item_id"] == "^".join(items)
    gaps = time_gap_bucket(example["realtime_time_gap"].numpy()[:3])
    assert row["realtime_time_gap"] == "^".join(str(g) for g in gaps)
  assert any(len(example["global_item_id"]) > 5 for example in records)  # the cut was exercised


def test_each_slice_splits_again_by_a_second_feature_into_parts_scored_alone():
  """evaluate(within_slice_key=...) splits each slice's examples by another feature's values (e.g. the
  cold users on their first day and those with a history): each part's figures are its examples' alone."""
  import tensorflow as tf
  from hemix_tf.trainer import evaluate
  labels = np.array([1, 0, 1, 0, 1, 0, 0, 1], np.float32)
  scores = np.array([.9, .1, .4, .6, .8, .7, .3, .2], np.float32)
  users = np.array([b"warm"] * 4 + [b"cold"] * 4)
  history = np.array([b"history", b"history", b"no history", b"no history"] * 2)
  batches = tf.data.Dataset.from_tensor_slices(
      {"click": labels, "score": scores, "users": users, "history": history}).batch(3)
  def model(features, training):
    return {"click": features["score"]}

  click = evaluate(model, batches, ("click",), slice_key="users", within_slice_key="history")["click"]
  cold, warm = click["slices"]["cold"], click["slices"]["warm"]
  assert cold["auc"] == 0.5 and cold["examples"] == 4  # pairs (.8, .7) (.8, .3) right, (.2, .7) (.2, .3) wrong
  assert {w: part["auc"] for w, part in cold["by_history"].items()} == {"history": 1.0, "no history": 0.0}
  assert {w: part["auc"] for w, part in warm["by_history"].items()} == {"history": 1.0, "no history": 0.0}
  no_history = cold["by_history"]["no history"]
  assert no_history["examples"] == 2 and no_history["mean_label"] == 0.5 and no_history["mean_prediction"] == pytest.approx(0.25)
  # Without the second key a slice has no such split.
  assert "by_history" not in evaluate(model, batches, ("click",), slice_key="users")["click"]["slices"]["cold"]
