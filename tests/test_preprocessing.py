"""Preprocessing: the Transform component's preprocessing_fn (vocabularies shared by table, OOV,
z-scores, quantile time-gap buckets), the hashing path, and a model serving raw tf.Examples through the
transform graph it carries."""
import functools
import shutil

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.public import tfxio

from hemix_tf.data.cli import build
from hemix_tf.data.analysis import analyze
from hemix_tf.data.examples import parse_spec
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.preprocessing import (OOV_BUCKETS, AnalyzedPreprocessor, HashingPreprocessor, TransformGraph,
                                         preprocessing_fn, tables)
from hemix_tf.data.schemas import schema_path
from hemix_tf.model.config import preset
from hemix_tf.model.export import export_saved_model
from hemix_tf.model.hemix import HeMix

from job_runs import IN_MEMORY, run_job

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
  root = tmp_path_factory.mktemp("pre")
  build("synthetic", str(root / "raw"), num_impressions=1500)
  return run_job(root / "raw", root / "examples", "synthetic-lbs")["outputs"]


def records(pattern) -> list[bytes]:
  return list(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").as_numpy_iterator())


@pytest.fixture(scope="module")
def transform_output(examples, tmp_path_factory):
  """tf.Transform's analysis of the train split with the curated schema, as the TFX Transform runs it."""
  out = str(tmp_path_factory.mktemp("transform"))
  schema = text_format.Parse(schema_path("synthetic-lbs", "examples").read_text(), schema_pb2.Schema())
  source = tfxio.TFExampleRecord(file_pattern=examples["train"], schema=schema)
  fn = functools.partial(preprocessing_fn, custom_config={
      "feature_config": "synthetic-lbs", "time_gap_buckets": SMALL.time_gap_buckets, "vocabulary_min_count": 2})
  with beam.Pipeline(argv=IN_MEMORY) as p, tft_beam.Context(temp_dir=f"{out}/tmp"):
    transform_fn = ((p | source.BeamSource(), source.TensorAdapterConfig())
                    | tft_beam.AnalyzeDataset(fn))
    _ = transform_fn | tft_beam.WriteTransformFn(out)
  # As TFX's Transform does: the raw schema beside the graph (serving parses raw examples by it).
  metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema), f"{out}/metadata")
  return out


def raw_batch(pattern, spec):
  return tf.io.parse_example(records(pattern), spec)


def test_vocabularies_are_shared_by_table_and_rare_ids_are_oov(examples, transform_output):
  graph = TransformGraph(transform_output, FC, SMALL.time_gap_buckets)
  raw = raw_batch(examples["train"], graph.raw_spec)
  encoded = graph(raw)
  # One vocabulary per table: the same raw item id has the same row as a candidate and in a sequence.
  item = tf.sparse.to_dense(raw["item_id"]).numpy()[:, 0]
  seq_item = raw["global_item_id"].values.numpy()
  rows = dict(zip(item, encoded["item_id"].numpy()))
  seq_rows = dict(zip(seq_item, encoded["global_item_id"].values.numpy()))
  shared = set(rows) & set(seq_rows)
  assert len(shared) > 50 and all(rows[i] == seq_rows[i] for i in shared)
  # Train ids seen once are below vocabulary_min_count: the out-of-vocabulary row, the table's last.
  counts = {}
  for v in np.concatenate([item, seq_item, raw["realtime_item_id"].values.numpy()]):
    counts[v] = counts.get(v, 0) + 1
  size = graph.table_sizes["item_id"]
  assert size == graph.output.vocabulary_size_by_name("vocab_item_id") + OOV_BUCKETS
  for value, row in rows.items():
    assert (row == size - 1) == (counts[value] < 2), value
  # Every table's rows are within its size.
  for table, members in tables(FC).items():
    for m in members:
      values = encoded[m].values if isinstance(encoded[m], tf.SparseTensor) else encoded[m]
      assert 0 <= int(tf.reduce_min(values)) and int(tf.reduce_max(values)) < graph.table_sizes[table], m


def test_dense_features_are_z_scored_and_gaps_bucketised(examples, transform_output):
  graph = TransformGraph(transform_output, FC, SMALL.time_gap_buckets)
  encoded = graph(raw_batch(examples["train"], graph.raw_spec))
  for name in ("item_rating", "distance_km"):
    x = encoded[name].numpy()
    assert x.shape == (len(x),) and abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-2, name
  gaps = np.concatenate([encoded[f"{s}_time_gap"].values.numpy() for s in ("global", "realtime")])
  assert gaps.min() >= 0 and gaps.max() < SMALL.time_gap_buckets
  # Quantile buckets: roughly uniform occupancy, unlike the log2 buckets of the hashing path.
  occupancy = np.bincount(gaps, minlength=SMALL.time_gap_buckets) / len(gaps)
  assert occupancy.max() < 3 / SMALL.time_gap_buckets
  np.testing.assert_array_equal(encoded["click"].numpy(), raw_batch(examples["train"], parse_spec(FC))["click"])


def test_exported_model_serves_raw_examples_through_the_transform_graph(examples, transform_output, tmp_path):
  graph = TransformGraph(transform_output, FC, SMALL.time_gap_buckets)
  model = HeMix(FC, SMALL, graph.table_sizes)
  serialized = records(examples["eval"])[:64]
  expected = model(graph(raw_batch(examples["eval"], graph.raw_spec)))
  export_saved_model(model, graph, FC, str(tmp_path / "model"))
  moved = shutil.copytree(transform_output, tmp_path / "elsewhere")
  shutil.rmtree(transform_output)  # the SavedModel must carry the graph and its vocabularies
  try:
    served = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"](
        examples=tf.constant(serialized))
  finally:
    shutil.copytree(moved, transform_output)
  for task in SMALL.tasks:
    np.testing.assert_allclose(served[task].numpy(), expected[task].numpy()[:64], atol=1e-6)


def test_hashing_preprocessor_rows_and_buckets():
  pre = HashingPreprocessor(FC, hash_buckets=97, time_gap_buckets=8)
  gaps = tf.ragged.constant([[1, 2, 3, 1 << 40], []], tf.int64)
  raw = {name: tf.constant([-1, -1], spec.dtype) if spec.dtype != tf.string else tf.constant(["", ""])
         for name, spec in pre.raw_spec.items() if isinstance(spec, tf.io.FixedLenFeature)}
  ragged = {name: tf.ragged.constant([[], []], spec.dtype)
            for name, spec in pre.raw_spec.items() if isinstance(spec, tf.io.RaggedFeature)}
  encoded = pre({**raw, **ragged, "global_time_gap": gaps})
  # floor(log2(1 + gap)), clipped to the last bucket.
  assert encoded["global_time_gap"].to_list() == [[1, 1, 2, 7], []]
  assert pre.table_sizes["item_id"] == 97 and pre.table_sizes["time_gap"] == 8
  # Ints and strings hash by their string form: the item's and the sequences' item ids agree.
  ids = tf.constant([5, 17], tf.int64)
  out = pre({**raw, **ragged, "item_id": ids, "global_item_id": tf.RaggedTensor.from_row_lengths(ids, [1, 1])})
  np.testing.assert_array_equal(out["item_id"].numpy(), out["global_item_id"].flat_values.numpy())


def test_the_analysed_encoding_is_the_transform_components(examples, transform_output):
  """The harness's encoding (statistics without Beam) gives the rows the Transform graph gives: the same
  vocabularies in the same order, out-of-vocabulary ids on the last row, and nearly the same z-scores and
  time-gap buckets (TFT's quantiles are approximate too)."""
  graph = TransformGraph(transform_output, FC, SMALL.time_gap_buckets)
  analysed = AnalyzedPreprocessor(FC, analyze(examples["train"], FC, SMALL.time_gap_buckets),
                                  SMALL.time_gap_buckets)
  assert analysed.table_sizes == graph.table_sizes
  for split in ("train", "eval"):
    raw = raw_batch(examples[split], graph.raw_spec)
    expected = graph(raw)
    got = analysed(raw_batch(examples[split], analysed.raw_spec))
    for table, members in tables(FC).items():
      for m in members:
        rows = [x.values if isinstance(x, tf.SparseTensor) else x.flat_values if isinstance(x, tf.RaggedTensor)
                else x for x in (expected[m], got[m])]
        np.testing.assert_array_equal(rows[1].numpy(), rows[0].numpy(), err_msg=f"{split} {m}")
    for name in ("item_rating", "distance_km"):
      np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), atol=1e-3, err_msg=name)
    for s in ("global", "realtime"):
      gaps = [x.values if isinstance(x, tf.SparseTensor) else x.flat_values for x in
              (expected[f"{s}_time_gap"], got[f"{s}_time_gap"])]
      assert np.mean(np.abs(gaps[0].numpy() - gaps[1].numpy()) <= 1) > 0.99, s
