"""Serving signatures: the raw-tensor and the decoupled candidate-scoring signatures agree with
`serving_default`; warm-up requests; the TF Serving config files."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from hemix_tf.data.feature_config import FeatureGroup, load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.export import ROW_LENGTHS, Signatures, export_saved_model, model_input_spec
from hemix_tf.model.warmup import WARMUP_FILE
from hemix_tf.model.training import hashing_preprocessor

from model_inputs import hemix, random_features, rows, serialize, serialize_row

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")
USER = {f.name for f in FC.features if f.group == FeatureGroup.USER}
CANDIDATE = {f.name for f in FC.features if f.group != FeatureGroup.USER}


def _signatures(config) -> dict:
  return Signatures(hemix(FC, config), hashing_preprocessor(FC, config), FC).all()


@pytest.fixture(scope="module")
def signatures():
  return _signatures(SMALL)


@pytest.mark.parametrize("search", ["default", "none", "global"])
def test_score_candidates_equals_per_example_scores(search, signatures):
  assert SMALL.global_search and SMALL.realtime_search  # the module's signatures search both sequences
  if search != "default":
    signatures = _signatures(dataclasses.replace(SMALL, global_search=search == "global", realtime_search=False))
  users, per_user = 3, 7
  user_rows = rows(random_features(FC, users, seed=1, max_lengths={"global": 40, "realtime": 6}))
  item_rows = rows(random_features(FC, users * per_user, seed=2))
  for i, row in enumerate(item_rows):  # a candidate's category in its user's history (the search finds it)
    history = user_rows[i // per_user]["global_category" if i % 4 == 1 else "realtime_category"]
    if i % 2 and len(history):
      row["category"] = history[:1]
  user_side = [{k: v for k, v in r.items() if k not in CANDIDATE} for r in user_rows]
  candidates = [{k: v for k, v in r.items() if k in CANDIDATE} for r in item_rows]
  joined = [serialize_row({**user_side[i // per_user], **c}) for i, c in enumerate(candidates)]
  expected = signatures["serving_default"](examples=tf.constant(joined))
  got = signatures["score_candidates"](
      user_example=tf.constant([serialize_row(u) for u in user_side]),
      candidates=tf.reshape(tf.constant([serialize_row(c) for c in candidates]), [users, per_user]))
  for task in SMALL.tasks:
    assert got[task].shape == (users, per_user)
    np.testing.assert_allclose(got[task].numpy().reshape(-1), expected[task].numpy(), atol=1e-5)
  # The candidates matter (different scores), and a user's scores do not depend on the other users.
  assert np.std(got["click"].numpy()) > 1e-4
  alone = signatures["score_candidates"](user_example=tf.constant([serialize_row(user_side[1])]),
                                         candidates=tf.constant([[serialize_row(c) for c in candidates[7:14]]]))
  np.testing.assert_allclose(alone["click"].numpy()[0], got["click"].numpy()[1], atol=1e-5)


def test_score_candidates_names_a_shape_mismatch(signatures):
  user_rows = rows(random_features(FC, 2, seed=1, max_lengths={"global": 5, "realtime": 2}))
  users = [serialize_row({k: v for k, v in r.items() if k not in CANDIDATE}) for r in user_rows]
  candidate = serialize_row({k: v for k, v in user_rows[0].items() if k in CANDIDATE})
  for _ in range(20):  # the check must fail before any op on the wrong shapes does, on every call
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row of M candidates per user_example"):
      signatures["score_candidates"](user_example=tf.constant(users), candidates=tf.constant([[candidate] * 3]))


def test_predict_features_equals_serving_default(signatures):
  raw = random_features(FC, 6, seed=4)
  expected = signatures["serving_default"](examples=tf.constant(serialize(raw)))
  tensors = {}
  for name in model_input_spec(FC):
    value = raw[name]
    if isinstance(value, tf.RaggedTensor):
      tensors[name], tensors[name + ROW_LENGTHS] = value.flat_values, value.row_lengths()
    else:
      tensors[name] = value
  got = signatures["predict_features"](**tensors)
  for task in SMALL.tasks:
    np.testing.assert_allclose(got[task].numpy(), expected[task].numpy(), atol=1e-6)


def test_exported_model_answers_its_warmup_requests_in_a_fresh_process(tmp_path):
  """The SavedModel loads in a new process (no hemix_tf model code needed) and replays the warm-up
  file exactly; the file holds PredictionLogs for the three signatures, as TF Serving reads them."""
  model = hemix(FC, SMALL)
  path = export_saved_model(model, hashing_preprocessor(FC, SMALL), FC, str(tmp_path / "1"))
  logs = [prediction_log_pb2.PredictionLog.FromString(r)
          for r in tf.data.TFRecordDataset(f"{path}/{WARMUP_FILE}").as_numpy_iterator()]
  assert {log.predict_log.request.model_spec.signature_name for log in logs} == {
      "serving_default", "predict_features", "score_candidates"}
  assert all(log.predict_log.request.model_spec.name == "hemix" for log in logs)
  done = subprocess.run([sys.executable, str(Path(__file__).parent / "replay_warmup.py"), path],
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert json.loads(done.stdout.strip().splitlines()[-1]) == {
      "serving_default": 8, "predict_features": 8, "score_candidates": 8}


def test_tf_serving_config_files_parse():
  from google.protobuf import text_format
  from tensorflow_serving.config import model_server_config_pb2
  root = Path(__file__).resolve().parents[1] / "docker" / "serving"
  config = text_format.Parse((root / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
  (model,) = config.model_config_list.config
  assert (model.name, model.base_path, model.model_platform) == ("hemix", "/models/hemix", "tensorflow")
  batching = text_format.Parse((root / "batching_parameters.txt").read_text(), batching_parameters_proto()())
  assert batching.max_batch_size.value >= 256 and batching.num_batch_threads.value >= 1
  dockerfile = (root.parent / "serving.Dockerfile").read_text()
  assert "FROM tensorflow/serving:2.21.0" in dockerfile  # pinned to the exporting TensorFlow
  assert "/config/models.config" in dockerfile and "--enable_model_warmup=true" in dockerfile


def batching_parameters_proto():
  """tensorflow.serving.BatchingParameters (session_bundle_config.proto), which tensorflow-serving-api
  does not ship: the same field names, numbers and wrapper types, built here to parse the text file."""
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
  file = descriptor_pb2.FileDescriptorProto(name="hemix_batching_parameters.proto", package="hemix.test",
                                            dependency=["google/protobuf/wrappers.proto"])
  message = file.message_type.add(name="BatchingParameters")
  field = descriptor_pb2.FieldDescriptorProto
  for number, name in ((1, "max_batch_size"), (2, "batch_timeout_micros"), (3, "max_enqueued_batches"),
                       (4, "num_batch_threads")):
    message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                      type_name=".google.protobuf.Int64Value")
  message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
  message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                    label=field.LABEL_OPTIONAL)
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  pool.Add(file)
  return message_factory.GetMessageClass(pool.FindMessageTypeByName("hemix.test.BatchingParameters"))
