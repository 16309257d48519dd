"""Parameter and FLOP accounting of a model (HeMix Table 2's "#Param" and "GFLOPs", Eq. 24).

* dense parameters: every trainable weight outside the embedding tables; embedding parameters: the tables;
* forward FLOPs per example: TensorFlow's own profiler (tf.compat.v1.profiler, float_operation) on the
  traced graph of one example with full-length sequences. TensorFlow registers no FLOP statistic for
  Einsum, so we register one: 2 x the product of all index sizes of a two-operand contraction (the same
  multiply-add convention TensorFlow uses for MatMul; an ellipsis counts the dimensions it stands for);
* Eq. 24: #Param ≈ 2 k L N d_T^2.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import graph_util, ops

from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.examples import parse_spec
from hemix_tf.data.preprocessing import HashingEncoder, encode


@ops.RegisterStatistics("Einsum", "flops")
def _einsum_flops(graph, node):
  operands = node.attr["equation"].s.decode().split("->")[0].split(",")
  sizes = {}
  for labels, name in zip(operands, node.input):
    shape = graph_util.tensor_shape_from_node_def_name(graph, name)
    shape.assert_is_fully_defined()
    for label, size in zip(_einsum_labels(labels, shape.rank), shape.as_list()):
      sizes[label] = max(sizes.get(label, 1), size)  # ellipsis dimensions broadcast
  return ops.OpStats("flops", 2 * math.prod(sizes.values()) if len(operands) == 2 else 0)


def _einsum_labels(labels: str, rank: int) -> list:
  """One label per dimension of an Einsum operand; "..." stands for its leading dimensions, labelled
  by their position from the right of the ellipsis (so that they broadcast as in NumPy)."""
  if "..." not in labels:
    return list(labels)
  head, tail = labels.split("...")
  return list(head) + [("...", k) for k in range(rank - len(head) - len(tail), 0, -1)] + list(tail)


def eq24_params(config) -> int:
  """HeMix Eq. 24: 2 k L N d_T^2."""
  return 2 * config.ffn_expansion * config.num_blocks * config.num_tokens * config.d_t ** 2


def parameter_counts(model: tf.keras.Model, feature_config: FeatureConfig) -> dict:
  if not model.built:
    model(full_length_features(feature_config))
  embedding = sum(int(np.prod(w.shape)) for w in model.embedding.trainable_weights)
  total = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  return {"dense_params": total - embedding, "embedding_params": embedding}


def full_length_features(feature_config: FeatureConfig, batch: int = 1) -> dict:
  """An encoded batch with every sequence at its maximum length (for tracing and FLOPs); every id is
  row 0, valid whatever the table sizes."""
  lengths = {"global": feature_config.sequence.global_length,
             "realtime": feature_config.sequence.realtime_length}
  features = {}
  for name, spec in parse_spec(feature_config).items():
    if isinstance(spec, tf.io.RaggedFeature):
      n = lengths.get(name.split("_")[0], 2)
      values = tf.zeros([batch * n], spec.dtype) if spec.dtype != tf.string else tf.fill([batch * n], "x")
      features[name] = tf.RaggedTensor.from_uniform_row_length(values, n)
    else:
      features[name] = (tf.zeros([batch], spec.dtype) if spec.dtype != tf.string
                        else tf.fill([batch], "x"))
  return encode(features, feature_config, HashingEncoder(hash_buckets=1, time_gap_buckets=1))


def forward_flops(model: tf.keras.Model, feature_config: FeatureConfig) -> int:
  """Forward FLOPs of one example, counted by TensorFlow's profiler on the traced inference graph
  (uncompiled: `HeMix.xla_interaction` compiles the training step only, and the profiler would not
  count inside an XLA cluster)."""
  features = full_length_features(feature_config, batch=1)
  model(features)  # build
  concrete = tf.function(lambda: model(features, training=False)).get_concrete_function()
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return int(tf.compat.v1.profiler.profile(concrete.graph, options=options).total_float_ops)
