"""SavedModel export: `serving_default` takes a batch of serialized tf.Examples (raw features)."""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import parse_spec
from hemix_tf.data.feature_config import FeatureConfig


def serving_function(model, feature_config: FeatureConfig) -> tf.types.experimental.ConcreteFunction:
  spec = parse_spec(feature_config)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve(examples):
    return model(tf.io.parse_example(examples, spec))

  return serve.get_concrete_function()


def export_saved_model(model, feature_config: FeatureConfig, path: str) -> str:
  tf.saved_model.save(model, path, signatures={"serving_default": serving_function(model, feature_config)})
  return path
