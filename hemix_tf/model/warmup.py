"""TF Serving warm-up: `assets.extra/tf_serving_warmup_requests`, a TFRecord of PredictionLog protos that
the server replays when it loads a version (--enable_model_warmup), so that the first user request does
not pay for graph initialisation. One request per signature, on synthetic examples with full-length
sequences (the largest shapes); each log also holds the response computed at export, so a replay can be
checked exactly (tests/replay_warmup.py).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from hemix_tf.data.examples import SEQUENCES, sequence_feature
from hemix_tf.data.feature_config import FeatureConfig

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MODEL_NAME = "hemix"  # docker/serving/models.config


def warmup_features(config: FeatureConfig, inputs: dict, batch: int) -> dict:
  """{name: [values of example i] for i in range(batch)}: sequences at full length, other lists of 2."""
  full = {"global": config.sequence.global_length, "realtime": config.sequence.realtime_length}
  features = {}
  for name, spec in inputs.items():
    sequence = next((s for s in SEQUENCES if name.startswith(sequence_feature(s, ""))), None)
    n = (full[sequence] if sequence else 2) if isinstance(spec, tf.io.RaggedFeature) else 1
    value = {tf.int64: 1, tf.float32: 0.5, tf.string: b"warmup"}[spec.dtype]
    features[name] = [[value] * n for _ in range(batch)]
  return features


def _example(features: dict, i: int) -> bytes:
  feature = {}
  for name, rows in features.items():
    values = rows[i]
    if isinstance(values[0], bytes):
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    elif isinstance(values[0], float):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    else:
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def warmup_inputs(config: FeatureConfig, signatures, batch: int = 8) -> dict:
  """{signature: {input name: numpy array}} for `hemix_tf.model.export.Signatures`."""
  features = warmup_features(config, signatures.inputs, batch)
  examples = np.array([_example(features, i) for i in range(batch)], dtype=object)
  tensors = {}
  for name, spec in signatures.inputs.items():
    rows = features[name]
    dtype = spec.dtype.as_numpy_dtype if spec.dtype != tf.string else object
    if name in signatures.lists:
      tensors[name] = np.array([v for row in rows for v in row], dtype=dtype)
      tensors[signatures.row_lengths(name)] = np.array([len(row) for row in rows], dtype=np.int64)
    else:
      tensors[name] = np.array([row[0] for row in rows], dtype=dtype)
  return {"serving_default": {"examples": examples}, "predict_features": tensors,
          "score_candidates": {"user_example": examples[:1], "candidates": examples[None, :]}}


def write_warmup(saved_model_dir: str, config: FeatureConfig, signatures, functions: dict) -> str:
  """Writes the warm-up file of an exported model; `functions` are its signature functions."""
  path = f"{saved_model_dir}/{WARMUP_FILE}"
  tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
  with tf.io.TFRecordWriter(path) as writer:
    for name, inputs in warmup_inputs(config, signatures).items():
      request = predict_pb2.PredictRequest()
      request.model_spec.name, request.model_spec.signature_name = MODEL_NAME, name
      for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
      outputs = functions[name](**{k: tf.constant(v) for k, v in inputs.items()})
      response = predict_pb2.PredictResponse()
      response.model_spec.CopyFrom(request.model_spec)
      for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
      log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
          request=request, response=response))
      writer.write(log.SerializeToString())
  return path
