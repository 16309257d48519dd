"""Fixed shapes for the model: every list feature padded or truncated to a static length, with a mask.

XLA compiles no ragged ops, so the whole training step can only be compiled (`xla="step"`) on dense inputs:
the input pipeline pads (`pad_lists`, in tf.data) and the model receives

  <sequence>_<field>   [B, L_s] ids (L_s = L_G or L_R; the first L_s values, i.e. the most recent events)
  <multi-valued>       [B, MULTI_VALUED_LENGTH] ids (the first values)
  <name>_mask          [B, length] float32, 1 for a real value, 0 for padding (whose id is 0)

A model given ragged / sparse lists (serving signatures, tests) pads them itself with the same function,
so both paths give the same numbers.
"""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import SEQUENCES, sequence_feature, sequence_fields
from hemix_tf.data.feature_config import FeatureConfig, FeatureKind

MULTI_VALUED_LENGTH = 16  # values kept of a multi-valued feature (its embedding is their mean)
MASK = "_mask"


def list_lengths(config: FeatureConfig) -> dict[str, int]:
  """{list feature: its padded length}."""
  lengths = {f.name: MULTI_VALUED_LENGTH for f in config.features if f.kind == FeatureKind.MULTI_VALUED}
  for s in SEQUENCES:
    lengths.update({sequence_feature(s, field): sequence_length(config, s) for field in sequence_fields(config)})
  return lengths


def sequence_length(config: FeatureConfig, sequence: str) -> int:
  """L_G or L_R."""
  return config.sequence.global_length if sequence == "global" else config.sequence.realtime_length


def pad(value, length: int) -> tuple[tf.Tensor, tf.Tensor]:
  """A ragged [B, (n)] or sparse [B, n] list -> (ids [B, length], mask [B, length] float32)."""
  ragged = tf.RaggedTensor.from_sparse(value) if isinstance(value, tf.SparseTensor) else value
  ragged = ragged[:, :length]
  mask = tf.sequence_mask(ragged.row_lengths(), length, dtype=tf.float32)
  return ragged.to_tensor(default_value=tf.zeros([], ragged.dtype), shape=[None, length]), mask


def padded(features: dict, name: str, length: int) -> tuple[tf.Tensor, tf.Tensor]:
  """(ids [B, length], mask [B, length]) of a list feature, padded already (with its mask) or not."""
  if name + MASK in features:
    return features[name], features[name + MASK]
  return pad(features[name], length)


def pad_lists(features: dict, config: FeatureConfig) -> dict:
  """Every list feature of an encoded batch padded, with its mask; the other features unchanged."""
  out = dict(features)
  for name, length in list_lengths(config).items():
    if name in features:
      out[name], out[name + MASK] = padded(features, name, length)
  return out
