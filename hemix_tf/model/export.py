"""SavedModel export: `serving_default` takes a batch of serialized raw tf.Examples; the preprocessor
(hashing, or the Transform graph with its vocabularies) runs inside the model."""
from __future__ import annotations

import tensorflow as tf


def serving_function(model, preprocessor) -> tf.types.experimental.ConcreteFunction:
  """serialized raw tf.Examples [B] -> {task: probability [B]}."""
  spec = preprocessor.raw_spec

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve(examples):
    return model(preprocessor(tf.io.parse_example(examples, spec)))

  return serve.get_concrete_function()


def export_saved_model(model, preprocessor, path: str) -> str:
  if hasattr(preprocessor, "layer"):
    model.transform_layer = preprocessor.layer  # tracked: the Transform graph and vocabularies are saved
  tf.saved_model.save(model, path, signatures={"serving_default": serving_function(model, preprocessor)})
  return path
