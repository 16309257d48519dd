"""Checked-in TFMD schemas match the configs and TFDV enforces them; the hemix-data CLI works."""
import json
import os
import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from hemix_tf.data.contract import LogKind
from hemix_tf.data.feature_config import PACKAGED, load_feature_config
from hemix_tf.data.schemas import all_schemas, render, schema_path


@pytest.mark.parametrize("name", PACKAGED)
def test_checked_in_schemas_are_current(name):
  for stem, schema in all_schemas(load_feature_config(name)).items():
    path = schema_path(name, stem)
    assert path.read_text() == render(schema), f"{path} is stale: run `python -m hemix_tf.data.schemas`"


def _anomalies(table, name, kind):
  stats = tfdv.generate_statistics_from_dataframe(table.to_pandas())
  schema = text_format.Parse(schema_path(name, kind).read_text(), schema_pb2.Schema())
  return dict(tfdv.validate_statistics(stats, schema).anomaly_info)


def test_cli_writes_a_dataset_that_tfdv_accepts(tmp_path):
  out = tmp_path / "syn"
  proc = subprocess.run([sys.executable, "-m", "hemix_tf.data.cli", "--dataset=synthetic",
                         "--num_impressions=3000", f"--output_dir={out}"],
                        capture_output=True, text=True, check=True)
  assert "dataset written to" in proc.stdout
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["impressions"] == 3000 and manifest["feature_config"] == "synthetic-lbs"
  for kind in LogKind:
    table = pq.read_table(out / kind.value)
    assert _anomalies(table, "synthetic-lbs", kind) == {}
  imp = pq.read_table(out / "impressions")
  bad = imp.set_column(imp.column_names.index("click"), "click",
                       pc.if_else(pc.equal(imp["click"], 0), 2, imp["click"]))
  assert "click" in _anomalies(bad, "synthetic-lbs", LogKind.IMPRESSIONS)


def test_cli_refuses_to_overwrite(tmp_path):
  args = [sys.executable, "-m", "hemix_tf.data.cli", "--num_impressions=100", f"--output_dir={tmp_path}"]
  subprocess.run(args, check=True, capture_output=True)
  proc = subprocess.run(args, capture_output=True, text=True)
  assert proc.returncode != 0 and "is not empty" in proc.stderr


def test_entry_points_get_keras_2_without_the_environment_variable():
  """The console scripts run without TF_USE_LEGACY_KERAS exported: tensorflow-recommenders (imported by
  the baselines) refuses Keras 3, and TFMA / Beam load the SavedModel through tf.keras."""
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  code = ("import pipelines.batch_scoring_cli, hemix_tf.experiments.cli, tensorflow as tf, tf_keras; "
          "assert tf.keras.Model is tf_keras.Model, tf.keras.Model")
  subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
