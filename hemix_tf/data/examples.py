"""The training example: one tf.Example per impression, its feature names and its parsing.

Features of an example (names from the feature config):
  request_id, user_id, item_id, timestamp, click, conversion, the U / I / C features, passthrough;
  for each sequence s in (global, realtime) one list per event field, most recent first:
    s_item_id, s_behavior, s_<side info>..., s_time_gap (impression timestamp - event timestamp, s);
  user_activity_bucket = floor(log2(1 + number of events before the impression's day)), before
    truncation: the evaluation slices by it (not a model input).
"""
from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from hemix_tf.data.contract import LogKind, contract_schema
from hemix_tf.data.feature_config import BEHAVIOR, ITEM_ID, REQUEST_ID, TIMESTAMP, FeatureConfig
from hemix_tf.data.sequences import Ranges, reversed_rows

SEQUENCES = ("global", "realtime")
TIME_GAP = "time_gap"
USER_ACTIVITY = "user_activity_bucket"


def activity_bucket(global_events: np.ndarray) -> np.ndarray:
  return np.floor(np.log2(1 + global_events)).astype(np.int64)


def sequence_fields(config: FeatureConfig) -> list[str]:
  return [ITEM_ID, BEHAVIOR, *(f.name for f in config.sequence.side_info), TIME_GAP]


def sequence_feature(sequence: str, field: str) -> str:
  return f"{sequence}_{field}"


def _tf_dtype(arrow_type: pa.DataType) -> tf.DType:
  if pa.types.is_list(arrow_type):
    arrow_type = arrow_type.value_type
  if pa.types.is_integer(arrow_type):
    return tf.int64
  if pa.types.is_floating(arrow_type):
    return tf.float32
  return tf.string


_DEFAULTS = {tf.int64: -1, tf.float32: 0.0, tf.string: ""}


def parse_spec(config: FeatureConfig) -> dict:
  """`tf.io.parse_example` spec: scalars are dense (missing -> -1 / 0.0 / ""), lists are ragged."""
  spec = {}
  for field in contract_schema(LogKind.IMPRESSIONS, config):
    dtype = _tf_dtype(field.type)
    spec[field.name] = (tf.io.RaggedFeature(dtype, row_splits_dtype=tf.int64)
                        if pa.types.is_list(field.type)
                        else tf.io.FixedLenFeature([], dtype, default_value=_DEFAULTS[dtype]))
  spec[USER_ACTIVITY] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
  events = contract_schema(LogKind.EVENTS, config)
  for s in SEQUENCES:
    for name in sequence_fields(config):
      dtype = tf.int64 if name == TIME_GAP else _tf_dtype(events.field(name).type)
      spec[sequence_feature(s, name)] = tf.io.RaggedFeature(dtype, row_splits_dtype=tf.int64)
  return spec


def _as_list(col: pa.Array) -> pa.Array:
  """A scalar column as a list column (null -> null list, i.e. feature absent), strings as bytes."""
  if pa.types.is_list(col.type):
    if pa.types.is_string(col.type.value_type):
      return col.cast(pa.list_(pa.binary()))
    return col
  if pa.types.is_string(col.type):
    col = col.cast(pa.binary())
  elif pa.types.is_floating(col.type):  # tf.Example floats are float32
    col = col.cast(pa.float32())
  offsets = np.arange(len(col) + 1, dtype=np.int32)
  return pa.ListArray.from_arrays(pa.array(offsets), col, mask=col.is_null())


def example_batch(impressions: pa.Table, events: pa.Table, ranges: Ranges,
                  config: FeatureConfig) -> pa.RecordBatch:
  """An Arrow batch (all list columns) that tfx-bsl encodes to tf.Examples, one row per impression."""
  columns = {name: _as_list(impressions[name].combine_chunks()) for name in impressions.column_names}
  columns[USER_ACTIVITY] = _as_list(pa.array(activity_bucket(ranges.global_available)))
  imp_ts = impressions[TIMESTAMP].to_numpy()
  for s, (start, end) in zip(SEQUENCES, ((ranges.global_start, ranges.global_end),
                                         (ranges.realtime_start, ranges.realtime_end))):
    splits, rows = reversed_rows(start, end)
    take = pa.array(rows)
    offsets = pa.array(splits.astype(np.int32))
    for name in sequence_fields(config):
      if name == TIME_GAP:
        owner = np.repeat(np.arange(len(start)), end - start)
        values = pa.array(imp_ts[owner] - events[TIMESTAMP].to_numpy()[rows])
      else:  # a missing side-info value becomes the parse default (-1 / "" / 0.0)
        values = events[name].combine_chunks().take(take)
        values = pc.fill_null(values, pa.scalar(_DEFAULTS[_tf_dtype(values.type)], values.type))
        if pa.types.is_string(values.type):
          values = values.cast(pa.binary())
      columns[sequence_feature(s, name)] = pa.ListArray.from_arrays(offsets, values)
  return pa.RecordBatch.from_pydict(columns)


def make_dataset(file_pattern: str | list[str], spec: dict, batch_size: int, shuffle_buffer: int = 0,
                 repeat: bool = False, seed: int | None = None, preprocess=None,
                 timestamps: tuple[int | None, int | None] | None = None, pad_for=None,
                 skip_batches: int = 0) -> tf.data.Dataset:
  """Batches parsed by `spec` from gzip TFRecords (the sequence job's, or the Transform component's),
  then mapped by `preprocess` if given: a dict of dense and ragged / sparse tensors. `timestamps`
  (start, end), either end None for open, keeps the examples with start <= `timestamp` < end.
  `pad_for` (a FeatureConfig): the list features padded to its lengths with masks (hemix_tf.data.padding),
  the fixed shapes an XLA-compiled step needs.
  With a `seed`, the first iterator of the dataset yields the same stream in every run (file order,
  interleave, the shuffle of every pass), so that `skip_batches` (a resumed run's position) starts it
  exactly where an earlier run stopped; the skipped batches are neither parsed nor preprocessed. Each
  later iterator of the same dataset object reshuffles (TF draws new seeds per iterator and pass)."""
  files = tf.data.Dataset.list_files(file_pattern, shuffle=bool(shuffle_buffer), seed=seed)
  ds = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None or not shuffle_buffer)
  if timestamps is not None:
    start, end = timestamps
    ds = ds.filter(lambda x: _within(tf.io.parse_single_example(x, _TIMESTAMP_SPEC)[TIMESTAMP], start, end))
  if shuffle_buffer:
    ds = ds.shuffle(shuffle_buffer, seed=seed)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(batch_size).skip(skip_batches)
  ds = ds.map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)
  if preprocess is not None:
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  if pad_for is not None:
    from hemix_tf.data.padding import pad_lists  # padding imports this module
    ds = ds.map(lambda features: pad_lists(features, pad_for), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)



_TIMESTAMP_SPEC = {TIMESTAMP: tf.io.FixedLenFeature([], tf.int64)}


def _within(t: tf.Tensor, start: int | None, end: int | None) -> tf.Tensor:
  keep = tf.constant(True)
  if start is not None:
    keep = keep & (t >= start)
  if end is not None:
    keep = keep & (t < end)
  return keep


def request_id_hash(request_id: str) -> int:
  """A stable hash of a request_id (the same in every process): the sequence job's file of an example and
  its place in that file's canonical order."""
  return zlib.crc32(request_id.encode())


def order_canonically(file_pattern: str, parts: int = 64) -> None:
  """Rewrites each gzip TFRecord file of `file_pattern` with its examples sorted by (request_id_hash,
  request_id), one file at a time (atomically: a temporary file, then a rename). The sequence job fixes
  which file an example is in but not its place there (Beam's bundles arrive in any order), and a seeded
  shuffle with a buffer yields another stream from another input order: in this order a rebuilt dataset
  trains as the first did. The hash, not the time, so that a file read in order is not read by time.
  Memory: one `parts`-th of a file. A first pass spreads its records over `parts` uncompressed temporary
  files by the hash's top bits; each is then sorted in memory and appended, in the hash's order."""
  for path in sorted(tf.io.gfile.glob(file_pattern)):
    spread = [f"{path}.part{i:03d}" for i in range(parts)]
    writers = [tf.io.TFRecordWriter(part) for part in spread]
    for records, ids in _with_request_ids(tf.data.TFRecordDataset(path, compression_type="GZIP")):
      for record, rid in zip(records, ids):
        writers[request_id_hash(rid) * parts >> 32].write(record)
    for writer in writers:
      writer.close()
    with tf.io.TFRecordWriter(path + ".tmp", options="GZIP") as out:
      for part in spread:
        batches = list(_with_request_ids(tf.data.TFRecordDataset(part)))
        keyed = [(request_id_hash(rid), rid, record) for records, ids in batches for record, rid in zip(records, ids)]
        for _, _, record in sorted(keyed, key=lambda k: k[:2]):
          out.write(record)
        tf.io.gfile.remove(part)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _with_request_ids(records: tf.data.Dataset, batch: int = 8192):
  """(serialized examples, their request_ids as str), a batch at a time."""
  for chunk in records.batch(batch):
    yield chunk.numpy(), [rid.decode() for rid in tf.io.parse_example(chunk, _REQUEST_ID_SPEC)[REQUEST_ID].numpy()]


_REQUEST_ID_SPEC = {REQUEST_ID: tf.io.FixedLenFeature([], tf.string)}


def read_timestamps(file_pattern: str) -> np.ndarray:
  """The `timestamp` of every example in gzip TFRecords (file order); no matching file is an error."""
  files = tf.io.gfile.glob(file_pattern)
  if not files:
    raise FileNotFoundError(f"no example files match {file_pattern}")
  ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192)
  ds = ds.map(lambda x: tf.io.parse_example(x, _TIMESTAMP_SPEC)[TIMESTAMP], num_parallel_calls=tf.data.AUTOTUNE)
  return np.concatenate([b.numpy() for b in ds] or [np.zeros([0], np.int64)])
