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
import tf_keras as keras
from tensorflow_serving.apis import prediction_log_pb2

from hemix_tf.data.feature_config import FeatureGroup, load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.export import ROW_LENGTHS, Signatures, export_saved_model, model_input_spec
from hemix_tf.model.warmup import WARMUP_FILE
from hemix_tf.model.training import hashing_preprocessor

from model_inputs import encoded, hemix, random_features, rows, serialize, serialize_row

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")
USER = {f.name for f in FC.features if f.group == FeatureGroup.USER}
CANDIDATE = {f.name for f in FC.features if f.group != FeatureGroup.USER}


def _signatures(config) -> dict:
  return Signatures(hemix(FC, config), hashing_preprocessor(FC, config), FC).all()


@pytest.fixture(scope="module")
def signatures():
  return _signatures(SMALL)


def _candidates(users: int, per_user: int) -> tuple[list, list]:
  """`users` users' rows (user features, both sequences) and users x per_user candidates' rows, every
  other candidate's category taken from its user's history (the search finds it)."""
  user_rows = rows(random_features(FC, users, seed=1, max_lengths={"global": 40, "realtime": 6}))
  item_rows = rows(random_features(FC, users * per_user, seed=2))
  for i, row in enumerate(item_rows):
    history = user_rows[i // per_user]["global_category" if i % 4 == 1 else "realtime_category"]
    if i % 2 and len(history):
      row["category"] = history[:1]
  return ([{k: v for k, v in r.items() if k not in CANDIDATE} for r in user_rows],
          [{k: v for k, v in r.items() if k in CANDIDATE} for r in item_rows])


def _joined_and_decoupled(signatures, users: int = 3, per_user: int = 7) -> tuple[dict, dict]:
  """The scores of the same candidates by serving_default (joined examples, [U·M]) and by
  score_candidates ([U, M])."""
  user_side, candidates = _candidates(users, per_user)
  joined = [serialize_row({**user_side[i // per_user], **c}) for i, c in enumerate(candidates)]
  expected = signatures["serving_default"](examples=tf.constant(joined))
  got = signatures["score_candidates"](
      user_example=tf.constant([serialize_row(u) for u in user_side]),
      candidates=tf.reshape(tf.constant([serialize_row(c) for c in candidates]), [users, per_user]))
  return {t: p.numpy() for t, p in expected.items()}, {t: p.numpy() for t, p in got.items()}


@pytest.mark.parametrize("search", ["default", "none", "global"])
def test_score_candidates_equals_per_example_scores(search, signatures):
  assert SMALL.global_search and SMALL.realtime_search  # the module's signatures search both sequences
  if search != "default":
    signatures = _signatures(dataclasses.replace(SMALL, global_search=search == "global", realtime_search=False))
  users, per_user = 3, 7
  expected, got = _joined_and_decoupled(signatures, users, per_user)
  for task in SMALL.tasks:
    assert got[task].shape == (users, per_user)
    np.testing.assert_allclose(got[task].reshape(-1), expected[task], atol=1e-5)
  # The candidates matter (different scores), and a user's scores do not depend on the other users.
  assert np.std(got["click"]) > 1e-4
  user_side, candidates = _candidates(users, per_user)
  alone = signatures["score_candidates"](user_example=tf.constant([serialize_row(user_side[1])]),
                                         candidates=tf.constant([[serialize_row(c) for c in candidates[7:14]]]))
  np.testing.assert_allclose(alone["click"].numpy()[0], got["click"][1], atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"attention_normalization": "sink"},
                                     {"attention_normalization": "sigmoid", "event_norm": True},
                                     {"heads_read": ("user", "item")}],
                         ids=["paper", "sink", "sigmoid_event_norm", "heads_read"])
def test_score_candidates_equals_per_example_scores_when_the_joined_path_reads_the_events(options):
  """Without QK-norm the joined examples' attention reads the events, (q W_K^T) E^T and (Att E) W_V, where
  score_candidates keeps each user's K̃, Ṽ for its candidates: the two orders give the same scores."""
  config = dataclasses.replace(preset("paper"), **options)
  model = hemix(FC, config)
  expected, got = _joined_and_decoupled(Signatures(model, hashing_preprocessor(FC, config), FC).all())
  assert all(x.attention.reads_events(x.n_dynamic + x.n_fixed, length, x.attention.w_k.shape[0])
             for x, length in zip(model.extractors.values(), (256, 32)))
  for task in config.tasks:
    np.testing.assert_allclose(got[task].reshape(-1), expected[task], atol=1e-5)
  assert np.std(got["click"]) > 1e-4


def test_mixed_bfloat16_serves_both_signatures_near_float32(signatures):
  """HeMixConfig.precision="mixed_bfloat16" with the float32 model's weights: both signatures trace,
  return float32 probabilities, and agree with float32 to bfloat16's precision (not exactly: it does
  compute in bfloat16, including on the decoupled path, whose methods run outside Keras' __call__)."""
  mixed = dataclasses.replace(SMALL, precision="mixed_bfloat16")
  model, reference = hemix(FC, mixed), hemix(FC, SMALL)
  batch = encoded(FC, random_features(FC, 2), SMALL)
  model(batch), reference(batch)
  model.set_weights(reference.get_weights())
  assert all(v.dtype == tf.float32 for v in model.variables)  # float32 weights, bfloat16 compute:
  def dtypes(module) -> dict:
    return {layer.name: layer.compute_dtype for layer in module.submodules if isinstance(layer, keras.layers.Layer)}
  lookups = dtypes(model.embedding)
  assert len(lookups) > 10 and set(lookups.values()) == {"float32"}  # the lookups and their sparse gradients
  interaction = {name: dtype for name, dtype in dtypes(model).items() if name not in lookups and name != "embedding"}
  assert interaction["w_o"] == interaction["event_norm"] == interaction["ln_ffn"] == "bfloat16"  # built in build()
  assert set(interaction.values()) == {"bfloat16"}
  expected_f32, got_f32 = _joined_and_decoupled(Signatures(reference, hashing_preprocessor(FC, SMALL), FC).all())
  expected, got = _joined_and_decoupled(Signatures(model, hashing_preprocessor(FC, mixed), FC).all())
  for task in SMALL.tasks:
    assert expected[task].dtype == got[task].dtype == np.float32
    np.testing.assert_allclose(expected[task], expected_f32[task], atol=0.02)
    np.testing.assert_allclose(got[task], got_f32[task], atol=0.02)
    assert np.abs(got[task] - got_f32[task]).max() > 1e-5  # it is not float32 in disguise


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


def test_serving_rejects_what_batch_scoring_rejects_naming_the_signature(signatures):
  """Before: b"junk" parsed as an example of nothing and was scored like one; an event with a behaviour
  but no item id was scored."""
  good = serialize(random_features(FC, 2, seed=5))
  with pytest.raises(tf.errors.InvalidArgumentError, match="serving_default: every record must be a serialized "
                                                           "tf.Example with one item_id"):
    signatures["serving_default"](examples=tf.constant([good[0], b"junk"]))
  row = rows(random_features(FC, 1, seed=6, max_lengths={"global": 4, "realtime": 2}))[0]
  row["global_behavior"] = np.append(row["global_behavior"], row["global_behavior"][:1])  # one value more
  with pytest.raises(tf.errors.InvalidArgumentError, match="serving_default: the global sequence fields"):
    signatures["serving_default"](examples=tf.constant([good[0], serialize_row(row)]))
  assert signatures["serving_default"](examples=tf.constant(good))["click"].shape == (2,)
