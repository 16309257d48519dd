"""Feature embedding (HeMix Section 3.2): E_{U,I,C} and the two behaviour sequences G and R.

Inputs are encoded features (hemix_tf.data.preprocessing): every categorical value is already the row
of its table, dense features are normalised, time gaps bucketised. List features arrive padded with
their masks (hemix_tf.data.padding, as the input pipeline gives them: XLA-compilable), or ragged /
sparse, then padded here by the same function. `table_sizes` come from the
preprocessor (hash buckets, or vocabulary sizes of the Transform graph). Tables are shared by name
(`preprocessing.tables`): the `item_id` table also embeds the sequences' item ids.

  E_{U,I,C}: concat of the user / item / context feature embeddings, per-group widths  -> [B, d_NS]
             (dense features enter as they are; multi-valued ones as the mean embedding)
  G, R:      per event, concat of the side-info embeddings (item id, behaviour, side info, time-gap
             bucket) -> [B, L_G, d_I], [B, L_R, d_I], with masks [B, L_G], [B, L_R] (1 = real event)
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES, TIME_GAP, sequence_feature, sequence_fields
from hemix_tf.data.feature_config import FeatureConfig, FeatureKind
from hemix_tf.data.padding import MULTI_VALUED_LENGTH, padded, sequence_length
from hemix_tf.data.preprocessing import tables
from hemix_tf.model.config import InputConfig


class FeatureEmbedding(keras.layers.Layer):
  """Encoded features -> (E_{U,I,C} [B, d_NS], {sequence: (events [B, L, d_I], mask [B, L])})."""

  def __init__(self, feature_config: FeatureConfig, config: InputConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(**kwargs)
    self.feature_config, self.config = feature_config, config
    dims = config.embedding_dim
    widths = {f.name: dims[f.group.value] for f in feature_config.features if f.kind != FeatureKind.DENSE}
    self.table_of = {**{member: table for table, members in tables(feature_config).items() for member in members},
                     **{sequence_feature(s, TIME_GAP): TIME_GAP for s in SEQUENCES}}
    def initializer():  # a new one per table: a reused unseeded initializer repeats its values
      return ("uniform" if config.embedding_init_stddev is None
              else keras.initializers.RandomNormal(stddev=config.embedding_init_stddev))
    self.tables = {name: keras.layers.Embedding(table_sizes[name], widths.get(name, dims["sequence"]),
                                                embeddings_initializer=initializer(), name=f"emb_{name}")
                   for name in table_sizes}
    self.dense_names = [f.name for f in feature_config.features if f.kind == FeatureKind.DENSE]

  def _lookup(self, feature: str, rows) -> tf.Tensor:
    return self.tables[self.table_of[feature]](rows)

  def non_sequential(self, features: dict) -> tf.Tensor:
    """E_{U,I,C} [B, d_NS]: the concatenated `fields`."""
    return tf.concat(self.fields(features), axis=-1)

  def field_widths(self) -> tuple[int, ...]:
    """The widths of `fields`, in their order (E_{U,I,C}'s columns)."""
    return tuple(1 if f.kind == FeatureKind.DENSE else self.tables[self.table_of[f.name]].output_dim
                 for f in self.feature_config.features)

  def fields(self, features: dict) -> list[tf.Tensor]:
    """One embedding per non-sequential feature, in config order: [B, width of its group] ([B, 1] dense)."""
    parts = []
    for f in self.feature_config.features:
      value = features[f.name]
      if f.kind == FeatureKind.DENSE:
        parts.append(tf.cast(value, tf.float32)[:, None])
      elif f.kind == FeatureKind.MULTI_VALUED:
        ids, mask = padded(features, f.name, MULTI_VALUED_LENGTH)
        emb = self._lookup(f.name, ids) * mask[..., None]
        parts.append(tf.math.divide_no_nan(tf.reduce_sum(emb, axis=1), tf.reduce_sum(mask, axis=1, keepdims=True)))
      else:
        parts.append(self._lookup(f.name, value))
    return parts

  def sequence_lookups(self, features: dict, sequence: str) -> tuple[tuple[tf.Tensor, ...], tf.Tensor]:
    """The gathers of one sequence: per event field [B, L, width] (most recent first), and mask [B, L]."""
    length = sequence_length(self.feature_config, sequence)
    parts, mask = [], None
    for name in sequence_fields(self.feature_config):
      feature = sequence_feature(sequence, name)
      ids, mask = padded(features, feature, length)
      parts.append(self._lookup(feature, ids))
    return tuple(parts), mask

  def sequence(self, features: dict, sequence: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Padded events [B, L, d_I] (most recent first) and mask [B, L]."""
    parts, mask = self.sequence_lookups(features, sequence)
    return events(parts, mask), mask

  def call(self, features: dict):
    """The gathers only, for a caller that assembles them where it computes (`HeMix.interaction` under
    XLA): (`fields`, {sequence: `sequence_lookups`})."""
    return self.fields(features), {s: self.sequence_lookups(features, s) for s in SEQUENCES}


def events(parts, mask: tf.Tensor) -> tf.Tensor:
  """A sequence's per-field embeddings [B, L, width] and mask [B, L] -> events [B, L, d_I]. Padding
  positions are exactly zero, whatever the embeddings: they never reach attention."""
  return tf.concat(parts, axis=-1) * mask[..., None]
