"""Feature embedding (HeMix Section 3.2): E_{U,I,C} and the two behaviour sequences G and R.

Inputs are the parsed training example (hemix_tf.data.examples.parse_spec): dense scalars and ragged
lists. Every categorical value is hashed into `hash_buckets` rows of its feature's table (no vocabulary
to ship with the model). Tables are shared by name: the item's `item_id` table also embeds the
sequences' `item_id`, the item `category` table the events' `category`.

  E_{U,I,C}: concat of the user / item / context feature embeddings, per-group widths  -> [B, d_NS]
             (dense features enter as sign(x) log(1 + |x|); multi-valued ones as the mean embedding)
  G, R:      per event, concat of the side-info embeddings (item id, behaviour, side info, time-gap
             bucket) -> [B, L_G, d_I], [B, L_R, d_I], with masks [B, L_G], [B, L_R] (1 = real event)
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES, TIME_GAP, sequence_feature, sequence_fields
from hemix_tf.data.feature_config import FeatureConfig, FeatureKind
from hemix_tf.model.config import HeMixConfig


def hash_ids(values: tf.Tensor, buckets: int) -> tf.Tensor:
  """The same hash for int64 and string ids, in training and serving."""
  if values.dtype != tf.string:
    values = tf.strings.as_string(values)
  return tf.strings.to_hash_bucket_fast(values, buckets)


def time_gap_bucket(gap_seconds: tf.Tensor, buckets: int) -> tf.Tensor:
  """floor(log2(1 + gap)), clipped to [0, buckets - 1]: seconds to ~years on a log scale."""
  gap = tf.cast(tf.maximum(gap_seconds, 0), tf.float32)
  return tf.clip_by_value(tf.cast(tf.math.floor(tf.math.log1p(gap) / tf.math.log(2.0)), tf.int64),
                          0, buckets - 1)


class FeatureEmbedding(keras.layers.Layer):
  """Parsed features -> (E_{U,I,C} [B, d_NS], {sequence: (events [B, L, d_I], mask [B, L])})."""

  def __init__(self, feature_config: FeatureConfig, config: HeMixConfig, **kwargs):
    super().__init__(**kwargs)
    self.feature_config, self.config = feature_config, config
    dims = config.embedding_dim
    self.tables = {}
    for f in feature_config.features:
      if f.kind != FeatureKind.DENSE:
        self.tables[f.name] = self._table(f.name, dims[f.group.value])
    seq_dim = dims["sequence"]
    for name in sequence_fields(feature_config):
      if name == TIME_GAP:
        self.tables[TIME_GAP] = keras.layers.Embedding(config.time_gap_buckets, seq_dim, name="emb_time_gap")
      elif name not in self.tables:
        self.tables[name] = self._table(name, seq_dim)
    self.dense_names = [f.name for f in feature_config.features if f.kind == FeatureKind.DENSE]
    self.lengths = {"global": feature_config.sequence.global_length,
                    "realtime": feature_config.sequence.realtime_length}

  def _table(self, name: str, dim: int) -> keras.layers.Embedding:
    return keras.layers.Embedding(self.config.hash_buckets, dim, name=f"emb_{name}")

  def _lookup(self, name: str, values) -> tf.Tensor:
    table = self.tables[name]
    if name == TIME_GAP:
      return table(time_gap_bucket(values, self.config.time_gap_buckets))
    return table(hash_ids(values, self.config.hash_buckets))

  def non_sequential(self, features: dict) -> tf.Tensor:
    parts = []
    for f in self.feature_config.features:
      value = features[f.name]
      if f.kind == FeatureKind.DENSE:
        x = tf.cast(value, tf.float32)[:, None]
        parts.append(tf.sign(x) * tf.math.log1p(tf.abs(x)))
      elif f.kind == FeatureKind.MULTI_VALUED:
        emb = tf.ragged.map_flat_values(self._lookup, f.name, value)
        parts.append(tf.math.divide_no_nan(tf.reduce_sum(emb, axis=1),
                                           tf.cast(value.row_lengths(), tf.float32)[:, None]))
      else:
        parts.append(self._lookup(f.name, value))
    return tf.concat(parts, axis=-1)

  def sequence(self, features: dict, sequence: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Padded events [B, L, d_I] (most recent first) and mask [B, L]."""
    length = self.lengths[sequence]
    parts, mask = [], None
    for name in sequence_fields(self.feature_config):
      ragged = features[sequence_feature(sequence, name)]
      if mask is None:
        mask = tf.sequence_mask(tf.minimum(ragged.row_lengths(), length), length, dtype=tf.float32)
      emb = tf.ragged.map_flat_values(self._lookup, name, ragged)
      parts.append(emb.to_tensor(shape=[None, length, emb.flat_values.shape[-1]]))
    # Padding positions are exactly zero, whatever the embeddings: they never reach attention.
    events = tf.concat(parts, axis=-1) * mask[..., None]
    return events, mask

  def call(self, features: dict):
    return self.non_sequential(features), {s: self.sequence(features, s) for s in SEQUENCES}

  @property
  def d_i(self) -> int:
    """Width of one sequence event: the sum of its side-info embedding widths."""
    return sum(self.tables[n].output_dim for n in sequence_fields(self.feature_config))

