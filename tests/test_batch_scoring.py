"""Beam batch scoring: the scores written equal the SavedModel's own; malformed records are rejected with
their reason and counted; raw logs are scored through the sequence job's transforms."""
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from hemix_tf.data.cli import build
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.io import read_log
from hemix_tf.data.contract import DataContractError, LogKind
from hemix_tf.model.config import preset
from hemix_tf.model.export import export_saved_model
from hemix_tf.model.training import hashing_preprocessor
from pipelines.batch_scoring import BatchScoringConfig, run

from job_runs import IN_MEMORY, run_job
from model_inputs import hemix

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("scoring")
  build("synthetic", str(root / "raw"), num_impressions=600)
  outputs = run_job(root / "raw", root / "examples", "synthetic-lbs")["outputs"]
  model = export_saved_model(hemix(FC, SMALL), hashing_preprocessor(FC, SMALL), FC, str(root / "model"))
  return root, outputs, model


def _records(pattern):
  return list(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").as_numpy_iterator())


def _scores(summary) -> dict:
  table = pq.read_table(tf.io.gfile.glob(summary["scores"])).to_pylist()
  return {row["request_id"]: row for row in table}


def test_scores_equal_the_saved_models_and_bad_records_are_rejected(setup, tmp_path):
  root, outputs, model = setup
  good = _records(outputs["eval"]) + _records(outputs["train"])[:100]
  example = tf.train.Example.FromString(good[0])
  no_request = tf.train.Example()
  no_request.CopyFrom(example)
  del no_request.features.feature["request_id"]
  wrong_type = tf.train.Example()
  wrong_type.CopyFrom(example)
  wrong_type.features.feature["item_id"].Clear()
  wrong_type.features.feature["item_id"].bytes_list.value.append(b"not-an-int")
  keys_only = tf.train.Example()  # request, user and item ids but no feature the model reads
  for key in ("request_id", "user_id", "item_id"):
    keys_only.features.feature[key].CopyFrom(example.features.feature[key])
  examples_dir = tmp_path / "in"
  examples_dir.mkdir()
  with tf.io.TFRecordWriter(str(examples_dir / "good.tfrecord.gz"), "GZIP") as w:
    for r in good:
      w.write(r)
  with tf.io.TFRecordWriter(str(examples_dir / "bad.tfrecord")) as w:
    for r in (b"\x00garbage", no_request.SerializeToString(), wrong_type.SerializeToString(),
              keys_only.SerializeToString()):
      w.write(r)
  summary = run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out"),
                                   examples=str(examples_dir / "*"), feature_config="synthetic-lbs",
                                   batch_size=64), IN_MEMORY)
  assert summary["counters"] == {"records_in": len(good) + 4, "scored": len(good), "rejected": 4}
  rejected = [json.loads(line) for f in tf.io.gfile.glob(summary["rejected"]) for line in open(f)]
  reasons = sorted(r["reason"].split(":")[0].split(" is ")[0] for r in rejected)
  assert reasons == ["item_id", "missing request_id", "none of the model's features (it would be scored as an empty "
                     "example)", "not a tf.Example"]
  assert {r["index"] for r in rejected} == {0, 1, 2, 3} and all(r["source"].endswith("bad.tfrecord") for r in rejected)

  scores = _scores(summary)
  expected = tf.saved_model.load(model).signatures["serving_default"](examples=tf.constant(good))
  parsed = [tf.train.Example.FromString(r).features.feature for r in good]
  assert len(scores) == len(good)
  for i, f in enumerate(parsed):
    row = scores[f["request_id"].bytes_list.value[0].decode()]
    assert row["user_id"] == f["user_id"].int64_list.value[0] and row["item_id"] == f["item_id"].int64_list.value[0]
    for task in SMALL.tasks:
      assert row[task] == pytest.approx(float(expected[task][i]), abs=1e-6)
  schema = pq.read_schema(tf.io.gfile.glob(summary["scores"])[0])
  assert schema.names == ["request_id", "user_id", "item_id", "click", "conversion"]
  gz = (examples_dir / "good.tfrecord.gz").read_bytes()
  truncated = tmp_path / "truncated"
  truncated.mkdir()
  (truncated / "t.tfrecord.gz").write_bytes(gz[: len(gz) // 2])
  with pytest.raises(DataContractError, match=r"t.tfrecord.gz: corrupt or truncated after \d+ records"):
    run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out2"), examples=str(truncated / "*"),
                           feature_config="synthetic-lbs"), IN_MEMORY)
  assert not (tmp_path / "out2").exists()
  with pytest.raises(FileExistsError, match="is not empty: pass --overwrite"):  # a rerun never mixes outputs
    run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out"), examples=str(examples_dir / "*"),
                           feature_config="synthetic-lbs"), IN_MEMORY)


@pytest.mark.slow
def test_raw_logs_are_scored_through_the_sequence_transforms(setup, tmp_path):
  root, outputs, model = setup
  summary = run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out"),
                                   impressions=str(root / "raw" / "impressions"),
                                   events=str(root / "raw" / "events"), feature_config="synthetic-lbs"), IN_MEMORY)
  impressions = read_log(root / "raw" / "impressions", LogKind.IMPRESSIONS, FC)
  assert summary["counters"]["scored"] == impressions.num_rows and summary["counters"]["rejected"] == 0
  scores = _scores(summary)
  assert set(scores) == set(impressions["request_id"].to_pylist())
  # The same impression scored from the sequence job's example: the same probability.
  good = _records(outputs["eval"])[:20]
  expected = tf.saved_model.load(model).signatures["serving_default"](examples=tf.constant(good))["click"].numpy()
  ids = [tf.train.Example.FromString(r).features.feature["request_id"].bytes_list.value[0].decode() for r in good]
  np.testing.assert_allclose([scores[i]["click"] for i in ids], expected, atol=1e-6)

  # Two malformed raw lines: in rejected/ and in the summary's counts (before: rejected 0).
  shutil.copytree(root / "raw", tmp_path / "raw")
  header = ",".join(read_log(root / "raw" / "events", LogKind.EVENTS, FC).column_names)
  (tmp_path / "raw" / "events" / "bad.csv").write_text(header + "\n1,2,3\n1,2,-5,click,3,4\n")
  summary = run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out2"),
                                   impressions=str(tmp_path / "raw" / "impressions"),
                                   events=str(tmp_path / "raw" / "events"), feature_config="synthetic-lbs"), IN_MEMORY)
  counters = summary["counters"]
  assert counters["rejected"] == 2 and counters["scored"] == impressions.num_rows
  assert counters["records_in"] == counters["scored"] + counters["rejected"]
  assert sum(1 for f in (tmp_path / "out2" / "rejected").iterdir() for _ in open(f)) == 2


def test_examples_of_another_feature_config_than_the_models_are_refused(setup, tmp_path):
  """Before: the features whose names overlap passed validation and every record was scored."""
  root, outputs, model = setup
  shutil.copytree(root / "examples" / "eval", tmp_path / "examples" / "eval")
  summary = json.loads((root / "examples" / "job_summary.json").read_text())
  summary["config"]["feature_config"] = "movielens"
  (tmp_path / "examples" / "job_summary.json").write_text(json.dumps(summary))
  with pytest.raises(DataContractError, match="built with feature config 'movielens'.*trained on 'synthetic-lbs'"):
    run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / "out"), feature_config="synthetic-lbs",
                           examples=str(tmp_path / "examples" / "eval" / "part-*")), IN_MEMORY)
  assert not (tmp_path / "out").exists()
