"""Feature batches for model tests, with random ragged sequences (no pipeline needed): raw parsed
features, their hashed encoding, and models sized for it."""
import numpy as np
import tensorflow as tf

from hemix_tf.data.examples import parse_spec
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.training import hashing_preprocessor


def random_features(feature_config, batch: int, seed: int = 0, max_lengths=None) -> dict:
  rng = np.random.default_rng(seed)
  max_lengths = max_lengths or {"global": feature_config.sequence.global_length,
                                "realtime": feature_config.sequence.realtime_length}
  lengths = {s: rng.integers(0, n + 1, batch) for s, n in max_lengths.items()}
  features = {}
  for name, spec in parse_spec(feature_config).items():
    seq = name.split("_")[0]
    if isinstance(spec, tf.io.RaggedFeature):
      row_lengths = lengths[seq] if seq in lengths else rng.integers(0, 3, batch)
      total = int(row_lengths.sum())
      values = (rng.integers(1, 50, total) if spec.dtype == tf.int64 else
                rng.choice(["a", "b", "c"], total) if spec.dtype == tf.string else rng.random(total))
      features[name] = tf.RaggedTensor.from_row_lengths(tf.constant(values, spec.dtype), row_lengths)
    elif spec.dtype == tf.string:
      features[name] = tf.constant(rng.choice(["a", "b", "c"], batch))
    elif spec.dtype == tf.int64:
      features[name] = tf.constant(rng.integers(0, 2 if name in ("click", "conversion") else 50, batch),
                                   tf.int64)
    else:
      features[name] = tf.constant(rng.random(batch) * 10, tf.float32)
  return features


def replace(features: dict, **columns) -> dict:
  return {**features, **columns}


def encoded(feature_config, features: dict, model_config) -> dict:
  return hashing_preprocessor(feature_config, model_config)(features)


def hemix(feature_config, model_config) -> HeMix:
  return HeMix(feature_config, model_config, hashing_preprocessor(feature_config, model_config).table_sizes)


def rows(features: dict) -> list[dict]:
  """A raw batch -> one {name: numpy 1-D array} per example (a scalar is a one-element list)."""
  batch = len(next(iter(features.values())))
  return [{name: np.atleast_1d(value[i].numpy()) for name, value in features.items()} for i in range(batch)]


def serialize_row(row: dict) -> bytes:
  feature = {}
  for name, values in row.items():
    if values.dtype.kind in "iu":
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))
    elif values.dtype.kind == "f":
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
    else:
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def serialize(features: dict) -> list[bytes]:
  return [serialize_row(row) for row in rows(features)]
