"""Feature preprocessing: a parsed raw example -> the model's encoded inputs.

One recipe (`encode`), three encoders:
  * `TransformEncoder` -- TF Transform analyzers, for the pipeline's Transform component
    (`preprocessing_fn`): a vocabulary per table over the train split (values seen fewer than
    `vocabulary_min_count` times share the out-of-vocabulary row), z-scores, quantile buckets of the
    time gaps. The transform graph is applied inside the exported model.
  * `AnalyzedEncoder` -- the same encoding from the same statistics computed without Beam
    (hemix_tf.data.analysis): the experiment harness trains the model the pipeline ships.
  * `HashingEncoder` -- stateless, no analysis pass (tests, unbounded vocabularies): ids hashed into
    `hash_buckets` rows, dense features signed-log, time gaps in floor(log2(1 + seconds)) buckets.

Encoded features keep their raw names:
  categorical / multi-valued ids and sequence side info -> int64 row of their table, [B] or ragged /
    sparse [B, None]. A table is shared by name: `item_id` embeds the item and both sequences' item ids,
    `category` the item's and the events' category (`tables`).
  dense -> float32 [B];  <sequence>_time_gap -> int64 bucket in [0, time_gap_buckets), [B, None]
  labels, passthrough columns and the activity bucket -> unchanged, [B].
Scalars may arrive dense [B] (our parse spec) or as SparseTensor [B, <=1] (TF Transform's inputs
under a schema without shapes); a missing scalar becomes -1 / "" / 0.0, as in `parse_spec`.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import tensorflow as tf

from hemix_tf.data.examples import (SEQUENCES, TIME_GAP, USER_ACTIVITY, parse_spec, sequence_feature,
                                    sequence_fields)
from hemix_tf.data.feature_config import (LABELS, VOCABULARY_MIN_COUNT, FeatureConfig, FeatureKind,
                                          load_feature_config)

OOV_BUCKETS = 1  # rows for values outside a Transform vocabulary


def tables(config: FeatureConfig) -> dict[str, list[str]]:
  """{embedding table: the encoded features whose values are its row ids} (time gaps excluded)."""
  members: dict[str, list[str]] = {}
  for f in config.features:
    if f.kind != FeatureKind.DENSE:
      members.setdefault(f.name, []).append(f.name)
  for field in sequence_fields(config):
    if field != TIME_GAP:
      members.setdefault(field, []).extend(sequence_feature(s, field) for s in SEQUENCES)
  return members


def vocabulary_name(table: str) -> str:
  return f"vocab_{table}"


def signed_log(x: tf.Tensor) -> tf.Tensor:
  return tf.sign(x) * tf.math.log1p(tf.abs(x))


def _ids_as_strings(values: tf.Tensor) -> tf.Tensor:
  return values if values.dtype == tf.string else tf.strings.as_string(values)


class Encoder(Protocol):
  def ids(self, table: str, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """1-D values of every member of one table -> their rows (one vocabulary for all members)."""

  def dense(self, name: str, x: tf.Tensor) -> tf.Tensor:
    """Dense feature `name`, float32 [B] -> float32 [B]."""

  def time_gaps(self, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """1-D seconds of every sequence -> their buckets (one set of boundaries for all)."""


@dataclasses.dataclass(frozen=True)
class HashingEncoder:
  hash_buckets: int
  time_gap_buckets: int

  def ids(self, table, values):
    return [tf.strings.to_hash_bucket_fast(_ids_as_strings(v), self.hash_buckets) for v in values]

  def dense(self, name, x):
    return signed_log(x)

  def time_gaps(self, values):
    def bucket(gap):
      log2 = tf.math.log1p(tf.cast(tf.maximum(gap, 0), tf.float32)) / tf.math.log(2.0)
      return tf.clip_by_value(tf.cast(tf.math.floor(log2), tf.int64), 0, self.time_gap_buckets - 1)
    return [bucket(v) for v in values]


@dataclasses.dataclass(frozen=True)
class TransformEncoder:
  time_gap_buckets: int
  vocabulary_min_count: int

  def ids(self, table, values):
    import tensorflow_transform as tft
    strings = [_ids_as_strings(v) for v in values]
    ids = tf.concat(strings, axis=0)
    # Weights of 1 count the same frequencies (the same vocabulary files), but TF Transform then reduces each
    # batch to its unique ids before Beam; unweighted, every occurrence of an id is a Beam element: the
    # analysis was 3.3x slower (benchmarks/transform_analysis.py).
    vocabulary = tft.vocabulary(ids, frequency_threshold=self.vocabulary_min_count,
                                weights=tf.ones_like(ids, tf.float32), vocab_filename=vocabulary_name(table))
    return [tft.apply_vocabulary(s, vocabulary, num_oov_buckets=OOV_BUCKETS) for s in strings]

  def dense(self, name, x):
    import tensorflow_transform as tft
    return tft.scale_to_z_score(signed_log(x))  # signed log first: counts and distances are heavy-tailed

  def time_gaps(self, values):
    import tensorflow_transform as tft
    logs = [tf.math.log1p(tf.cast(tf.maximum(v, 0), tf.float32)) for v in values]
    boundaries = tft.quantiles(tf.concat(logs, axis=0), self.time_gap_buckets, epsilon=0.01)
    return [tft.apply_buckets(x, boundaries) for x in logs]


@dataclasses.dataclass(frozen=True)
class AnalyzedEncoder:
  """TransformEncoder's encoding with its statistics given (an `analysis.Analysis`): lookups in the train
  vocabularies (the last row out of vocabulary), z-scores, quantile buckets of log1p(gap)."""
  vocabularies: dict  # {table: tf.lookup.StaticHashTable: value string -> row}
  dense_moments: dict  # {feature: (mean, std)}
  time_gap_boundaries: tuple[float, ...]

  def ids(self, table, values):
    return [self.vocabularies[table].lookup(_ids_as_strings(v)) for v in values]

  def dense(self, name, x):  # as tft.scale_to_z_score: a constant feature is only centred
    mean, std = self.dense_moments[name]
    centred = signed_log(x) - mean
    return centred / std if std > 0 else centred

  def time_gaps(self, values):
    boundaries = list(self.time_gap_boundaries)
    return [tf.cast(tf.raw_ops.Bucketize(input=tf.math.log1p(tf.cast(tf.maximum(v, 0), tf.float32)),
                                         boundaries=boundaries), tf.int64) for v in values]


_DEFAULTS = {tf.int64: -1, tf.float32: 0.0, tf.string: ""}


def _scalar(x) -> tf.Tensor:
  """Dense [B] from dense [B] / [B, 1] or a SparseTensor [B, <=1] (missing -> the parse default)."""
  if isinstance(x, tf.SparseTensor):
    x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
                           default_value=_DEFAULTS[x.dtype])
  return tf.reshape(x, [-1])


def _flat(x) -> tf.Tensor:
  return x.values if isinstance(x, tf.SparseTensor) else x.flat_values


def _with_flat(x, values: tf.Tensor):
  if isinstance(x, tf.SparseTensor):
    return tf.SparseTensor(x.indices, values, x.dense_shape)
  return x.with_flat_values(values)


def encode(raw: dict, config: FeatureConfig, encoder: Encoder) -> dict:
  """Parsed raw features -> encoded features (module docstring). Absent labels are simply not output."""
  kinds = {f.name: f.kind for f in config.features}
  lists = {name for name, kind in kinds.items() if kind == FeatureKind.MULTI_VALUED}
  lists |= {sequence_feature(s, field) for s in SEQUENCES for field in sequence_fields(config)}
  inputs = {name: value if name in lists else _scalar(value) for name, value in raw.items()}
  out = {name: inputs[name] for name in (*LABELS, *config.passthrough, USER_ACTIVITY) if name in inputs}
  for table, members in tables(config).items():
    rows = encoder.ids(table, [_flat(inputs[m]) if m in lists else inputs[m] for m in members])
    out.update({m: _with_flat(inputs[m], r) if m in lists else r for m, r in zip(members, rows)})
  for name, kind in kinds.items():
    if kind == FeatureKind.DENSE:
      out[name] = encoder.dense(name, tf.cast(inputs[name], tf.float32))
  gaps = [sequence_feature(s, TIME_GAP) for s in SEQUENCES]
  buckets = encoder.time_gaps([_flat(inputs[g]) for g in gaps])
  out.update({g: _with_flat(inputs[g], b) for g, b in zip(gaps, buckets)})
  return out


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
  """The TFX Transform component's entry point. custom_config: feature_config, time_gap_buckets,
  vocabulary_min_count."""
  config = load_feature_config(custom_config["feature_config"])
  return encode(inputs, config, TransformEncoder(int(custom_config["time_gap_buckets"]),
                                                 int(custom_config["vocabulary_min_count"])))


class HashingPreprocessor:
  """Raw parsed features -> encoded, with no analysis pass (`HashingEncoder`)."""

  def __init__(self, config: FeatureConfig, hash_buckets: int, time_gap_buckets: int):
    self.config = config
    self.encoder = HashingEncoder(hash_buckets, time_gap_buckets)
    self.raw_spec = parse_spec(config)
    self.table_sizes = {table: hash_buckets for table in tables(config)} | {TIME_GAP: time_gap_buckets}

  def __call__(self, raw: dict) -> dict:
    return encode(raw, self.config, self.encoder)


class AnalyzedPreprocessor:
  """Raw parsed features -> encoded as the Transform component would from the same train split
  (`AnalyzedEncoder` over an `analysis.Analysis`)."""

  def __init__(self, config: FeatureConfig, analysis, time_gap_buckets: int,
               min_count: int = VOCABULARY_MIN_COUNT):
    if len(analysis.time_gap_boundaries) != time_gap_buckets - 1:
      raise ValueError(f"the analysis has {len(analysis.time_gap_boundaries) + 1} time-gap buckets, the model "
                       f"{time_gap_buckets}")
    self.config = config
    self.raw_spec = parse_spec(config)
    vocabularies, self.table_sizes = {}, {}
    for table in tables(config):
      values = analysis.vocabulary(table, min_count)
      # An empty table (no value in train) cannot be built: one key mapped to row 0, the OOV row then.
      keys, rows = (values, list(range(len(values)))) if values else ([""], [0])
      init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(rows, tf.int64))
      vocabularies[table] = tf.lookup.StaticHashTable(init, default_value=len(values))
      self.table_sizes[table] = len(values) + OOV_BUCKETS
    self.table_sizes[TIME_GAP] = time_gap_buckets
    self.encoder = AnalyzedEncoder(vocabularies, dict(analysis.dense), tuple(analysis.time_gap_boundaries))

  def __call__(self, raw: dict) -> dict:
    return encode(raw, self.config, self.encoder)


class TransformGraph:
  """Raw parsed features -> encoded, by the Transform component's graph (`preprocessing_fn`).

  `layer` must be tracked by the exported model (an attribute of it) so that its vocabularies are saved.
  """

  def __init__(self, transform_output: str, config: FeatureConfig, time_gap_buckets: int):
    import tensorflow_transform as tft
    self.output = tft.TFTransformOutput(transform_output)
    self.raw_spec = self.output.raw_feature_spec()
    self.encoded_spec = self.output.transformed_feature_spec()
    self.table_sizes = {table: self.output.vocabulary_size_by_name(vocabulary_name(table)) + OOV_BUCKETS
                        for table in tables(config)} | {TIME_GAP: time_gap_buckets}
    self.layer = self.output.transform_features_layer()

  def __call__(self, raw: dict) -> dict:
    return self.layer(raw)
