"""SavedModel export for TF Serving: three signatures over raw features; the preprocessor (hashing, or
the Transform graph with its vocabularies) runs inside the model. docs/SERVING.md lists them.

  serving_default   examples [B] serialized raw tf.Example              -> {task: [B]}
  predict_features  raw tensors: a scalar feature [B]; a list feature as
                    <name> values [N] + <name>_row_lengths [B]          -> {task: [B]}
  score_candidates  user_example [U] (user features + both sequences),
                    candidates [U, M] (item + context features)         -> {task: [U, M]}
                    the user side (sequences, K/V, fixed-query tokens) computed once per user
and `assets.extra/tf_serving_warmup_requests` (hemix_tf/model/warmup.py).
"""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import SEQUENCES, parse_spec, sequence_feature, sequence_fields
from hemix_tf.data.padding import MASK, pad_lists
from hemix_tf.data.feature_config import ITEM_ID, USER_ID, FeatureConfig, FeatureGroup
from hemix_tf.model.warmup import write_warmup

ROW_LENGTHS = "_row_lengths"


def model_input_spec(config: FeatureConfig) -> dict:
  """The raw features the model reads (no labels, request ids, passthrough): {name: parse spec}."""
  spec = parse_spec(config)
  names = [f.name for f in config.features]
  names += [sequence_feature(s, field) for s in SEQUENCES for field in sequence_fields(config)]
  return {name: spec[name] for name in names}


def _as_parsed(value, spec):
  """A dense [B] scalar or a ragged list -> what parsing by `spec` gives (dense, ragged or sparse)."""
  if isinstance(spec, tf.io.FixedLenFeature):
    return value
  ragged = value if isinstance(value, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(value[:, None])
  return ragged if isinstance(spec, tf.io.RaggedFeature) else ragged.to_sparse()


class Signatures:
  """The serving functions of one model and its preprocessor."""

  def __init__(self, model, preprocessor, config: FeatureConfig):
    self.model, self.preprocessor, self.config = model, preprocessor, config
    self.inputs = model_input_spec(config)
    self.user_features = [f.name for f in config.features if f.group == FeatureGroup.USER]
    self.candidate_features = [f.name for f in config.features if f.group != FeatureGroup.USER]
    self.lists = {n for n, spec in self.inputs.items() if isinstance(spec, tf.io.RaggedFeature)}

  @staticmethod
  def row_lengths(name: str) -> str:
    """The predict_features input that holds the row lengths of list feature `name`."""
    return name + ROW_LENGTHS

  def _encode(self, examples: tf.Tensor, key: str, signature: str) -> dict:
    """Parsed and encoded; a request batch scoring would reject fails here, naming the record: bytes
    that are not a tf.Example with one `key` (junk parses as an example of nothing, which the model
    would score like any other), or a sequence whose event fields have unequal lengths."""
    parsed = tf.io.parse_example(examples, self.preprocessor.raw_spec)
    with tf.control_dependencies(self._checks(examples, parsed, key, signature)):
      return self.preprocessor(parsed)

  def _checks(self, examples: tf.Tensor, parsed: dict, key: str, signature: str) -> list:
    batch = tf.shape(examples, out_type=tf.int64)[0]

    def per_example(value) -> tf.Tensor:  # values per example [B] of a ragged, sparse or dense feature
      if isinstance(value, tf.RaggedTensor):
        return value.row_lengths()
      if isinstance(value, tf.SparseTensor):
        return tf.math.bincount(value.indices[:, 0], minlength=batch, maxlength=batch, dtype=tf.int64)
      return tf.ones([batch], tf.int64)

    ids = tf.io.parse_example(examples, {key: tf.io.VarLenFeature(tf.int64)})[key]
    checks = [tf.debugging.assert_equal(per_example(ids), tf.ones([batch], tf.int64), message=(
        f"{signature}: every record must be a serialized tf.Example with one {key}; the records at the "
        "indices below are not"))]
    for sequence in SEQUENCES:
      names = [sequence_feature(sequence, field) for field in sequence_fields(self.config)]
      lengths = [per_example(parsed[name]) for name in names if name in parsed]
      checks += [tf.debugging.assert_equal(other, lengths[0], message=(
          f"{signature}: the {sequence} sequence fields ({', '.join(names)}) must have one value per event each; "
          "the records at the indices below do not")) for other in lengths[1:]]
    return checks

  def serving_default(self):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
      return self.model(self._encode(examples, ITEM_ID, "serving_default"))
    return serve.get_concrete_function()

  def predict_features(self):
    specs = {}
    for name, spec in self.inputs.items():
      specs[name] = tf.TensorSpec([None], spec.dtype, name=name)
      if name in self.lists:
        specs[self.row_lengths(name)] = tf.TensorSpec([None], tf.int64, name=self.row_lengths(name))

    @tf.function
    def serve(**tensors):
      raw = {name: tf.RaggedTensor.from_row_lengths(tensors[name], tensors[self.row_lengths(name)])
             if name in self.lists else tensors[name] for name in self.inputs}
      raw_spec = self.preprocessor.raw_spec
      return self.model(self.preprocessor({n: _as_parsed(v, raw_spec[n]) for n, v in raw.items()}))
    return serve.get_concrete_function(**specs)

  def score_candidates(self):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_example"),
                                  tf.TensorSpec([None, None], tf.string, name="candidates")])
    def serve(user_example, candidates):
      check = tf.debugging.assert_equal(
          tf.shape(candidates)[0], tf.shape(user_example)[0],
          message="score_candidates: candidates must be [U, M], one row of M candidates per user_example (U)")
      with tf.control_dependencies([check]):  # else a gather on the wrong shapes may fail first
        user_example, candidates = tf.identity(user_example), tf.identity(candidates)
      per_user = tf.shape(candidates)[1]
      user = pad_lists(self._encode(user_example, USER_ID, "score_candidates (user_example)"), self.config)
      items = pad_lists(self._encode(tf.reshape(candidates, [-1]), ITEM_ID, "score_candidates (candidates)"),
                        self.config)
      owner = tf.repeat(tf.range(tf.shape(user_example)[0]), per_user)  # user-major rows
      # Each feature (and a list feature's mask) from the candidates' or the users' examples.
      features = {n: v for n, v in items.items() if n.removesuffix(MASK) in self.candidate_features}
      features.update({n: tf.gather(v, owner) for n, v in user.items() if n.removesuffix(MASK) in self.user_features})
      return self.model.score_candidates(features, self.model.user_states(user), per_user)
    return serve.get_concrete_function()

  def all(self) -> dict:
    return {"serving_default": self.serving_default(), "predict_features": self.predict_features(),
            "score_candidates": self.score_candidates()}


def serving_function(model, preprocessor, config: FeatureConfig):
  """serialized raw tf.Examples [B] -> {task: probability [B]} (`serving_default`)."""
  return Signatures(model, preprocessor, config).serving_default()


def export_saved_model(model, preprocessor, config: FeatureConfig, path: str) -> str:
  """The SavedModel with its three signatures and the TF Serving warm-up requests. Uncompiled whatever
  the training used (`xla_interaction`): a serving binary need not carry XLA."""
  model.xla_interaction = False
  if hasattr(preprocessor, "layer"):
    model.transform_layer = preprocessor.layer  # tracked: the Transform graph and vocabularies are saved
  signatures = Signatures(model, preprocessor, config)
  functions = signatures.all()
  tf.saved_model.save(model, path, signatures=functions)
  write_warmup(path, config, signatures, functions)
  return path
