"""Beam job: raw impression / event logs -> point-in-time tf.Example TFRecords (train / eval by time).

    read units: (log, file, row group) of both logs ─ validate (dead letters) ─ key by user bucket
      ─ GroupByKey (impressions and events of a bucket together)
      → per bucket: sort events, 3 binary searches per impression (hemix_tf.data.sequences),
        Arrow example batches of 4,096 impressions, tfx-bsl C++ tf.Example encoding
      → gzip TFRecords  <out>/train/part-*.tfrecord.gz, <out>/eval/part-*.tfrecord.gz (`output_shards`
                        files each, by a checksum of the example: no shuffle)
      → dead letters    <out>/rejected/part-*.jsonl (file, row, reason)
      → counters        printed and written to <out>/job_summary.json
    valid impressions' (request_id, user_id, timestamp), grouped by a hash of the request_id → the
      impressions whose request_id another user's earlier impression keeps: a side input of the build,
      which dead-letters them (a request_id names one impression, as does its first within a user)

Elements are Arrow tables of many rows, never one Python object per event, so a bucket's memory is its
columns: a user with 2M events costs ~100 MB in the worker that builds its bucket. Runs on any Beam
runner through the standard pipeline options (docs/DATA.md).

A local runner holds the whole shuffle in memory. With `waves` = W > 1 the job runs as W + 1 pipelines:
the first reads and validates every log once (dead letters, record counters) and spills each chunk's
rows to `<out>/_spill/wave-<bucket % W>/` (Arrow IPC streams); wave w then groups and builds the buckets
of its files only (1 / W of the rows in memory) and writes `part-w<w>-*`. The examples, counters and dead
letters are those of one pass; the spill is deleted before the outputs are published.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import uuid
from typing import Iterator

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from tfx_bsl.coders import example_coder

from hemix_tf.data.contract import DataContractError, LogKind, Source, conform, contract_schema
from hemix_tf.data.examples import example_batch, request_id_hash
from hemix_tf.data.feature_config import REQUEST_ID, TIMESTAMP, USER_ID, FeatureConfig, load_feature_config
from hemix_tf.data.io import csv_header, decompressing, log_format, parquet_file, raw_batches, select_logs
from hemix_tf.data.sequences import point_in_time_ranges, sort_events
from pipelines.beam_jobs import run_pipeline, write_summary
from pipelines.local_runner import LOCAL_OPTIONS
from pipelines.outputs import staged_output

NAMESPACE = "hemix_sequence_job"
# `<kind>_records`: records read at the source (data rows and unparseable CSV lines); each ends in exactly
# one place: a valid row (`impressions`, `events`) or a dead letter (`rejected_rows`).
COUNTERS = ("impression_records", "event_records", "impressions", "events", "events_grouped", "train_examples",
            "eval_examples", "empty_global", "empty_realtime", "truncated_global", "truncated_realtime",
            "rejected_rows", "duplicate_impressions")
RECORDS = {LogKind.IMPRESSIONS: "impression_records", LogKind.EVENTS: "event_records"}
REJECTED = "rejected"
TRAIN, EVAL = "train", "eval"
REQUEST_IDS, SHARED = "request_ids", "shared_request_ids"
REQUEST_ID_PARTITIONS = 16  # request ids are grouped by hash to find one named by several users
EXAMPLES_PER_BLOCK = 4096


@dataclasses.dataclass(frozen=True)
class SequenceJobConfig:
  impressions: str  # file or directory of the impression log
  events: str  # file or directory of the event log
  output_dir: str
  eval_start_timestamp: int  # impressions at or after it go to eval/
  feature_config: str = "synthetic-lbs"  # packaged name or YAML path
  num_buckets: int = 64  # user-hash buckets: the unit of parallelism of the sequence build
  batch_rows: int = 65_536  # rows per Arrow chunk when reading
  overwrite: bool = False  # replace a non-empty output_dir (else the job refuses to start)
  # > 1: the buckets are built in this many waves, the validated rows spilled to disk (Arrow) in between,
  # so that a local runner holds 1 / waves of the logs at a time (its shuffle is in memory); 1: one pass,
  # for distributed runners (they shuffle on disk, and a retried bundle there would leave its spill files).
  waves: int = 1
  # Files per split (per wave): whole examples, each file by a checksum of the example, no shuffle. A
  # gzip file is read by one worker: the Evaluator's workers and the Trainer's readers split by file.
  output_shards: int = 8

  def __post_init__(self):
    for name in ("num_buckets", "batch_rows", "waves", "output_shards"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    if self.waves > self.num_buckets:
      raise ValueError(f"waves={self.waves} exceeds num_buckets={self.num_buckets}: a wave builds whole buckets")


TOOL = "hemix-sequence-job"  # in the summary: `--overwrite` replaces only this tool's outputs


def _counter(name: str):
  return Metrics.counter(NAMESPACE, name)


def user_bucket(user_ids: np.ndarray, num_buckets: int) -> np.ndarray:
  """A deterministic hash bucket per user (Fibonacci hashing), the same on every worker."""
  mixed = user_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
  return ((mixed >> np.uint64(32)) % np.uint64(num_buckets)).astype(np.int64)


# Any Beam filesystem (local, gs://, s3://, hdfs://): the job reads what its runner can reach. Beam only
# hands over the stored bytes; hemix_tf.data.io decompresses them (Beam's CompressedFile is not a file
# object pyarrow can read: its `closed` is a method).
open_with_beam = decompressing(lambda path: FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED))


def match_logs(path: str) -> list[str]:
  """The log files of a file, a glob pattern or a directory, on any Beam filesystem (`select_logs`)."""
  pattern = path if any(c in path for c in "*?[") or log_format(path) else path.rstrip("/") + "/*"
  try:
    metadata = FileSystems.match([pattern])[0].metadata_list
  except BeamIOError as e:
    raise DataContractError(f"{path}: cannot list input files: {e}") from None
  return select_logs([m.path for m in metadata], pattern)


def plan_reads(path: str, kind: LogKind, config: FeatureConfig) -> list[tuple[str, str, int]]:
  """(kind, file, row group or -1 for a whole CSV file): the read units, for parallel reads. A file that
  lacks a contract column fails here, before any work: none of its rows could be valid."""
  units = []
  needed = contract_schema(kind, config).names
  for file in match_logs(path):
    if log_format(file)[0] == ".parquet":
      pf = parquet_file(file, open_with_beam)
      columns = pf.schema_arrow.names
      units += [(kind.value, file, g) for g in range(pf.num_row_groups)]
    else:
      columns = csv_header(file, open_with_beam)
      units.append((kind.value, file, -1))
    missing = [name for name in needed if name not in columns]
    if missing:
      raise DataContractError(f"{file}: missing column(s) {missing}; the {kind.value} contract of feature "
                              f"config '{config.name}' needs {needed}")
  return units


class ReadAndValidate(beam.DoFn):
  """A read unit -> (bucket, contract table) per bucket; rows that break the contract -> dead letters."""

  def __init__(self, config: FeatureConfig, num_buckets: int, batch_rows: int):
    self.config, self.num_buckets, self.batch_rows = config, num_buckets, batch_rows

  def process(self, unit: tuple[str, str, int]) -> Iterator:
    """An unreadable file raises (a DataContractError naming it): the job fails, since its records
    could not be accounted for."""
    kind, file, row_group = LogKind(unit[0]), unit[1], unit[2]
    records = 0
    for table, source in raw_batches(file, self.batch_rows, None if row_group < 0 else row_group,
                                     open_with_beam):
      records += table.num_rows + len(source.invalid)
      _counter(RECORDS[kind]).inc(table.num_rows + len(source.invalid))
      for bad in source.invalid:
        yield beam.pvalue.TaggedOutput(REJECTED, json.dumps(
            {"file": file, "line": bad.line, "kind": kind.value, "reason": bad.reason, "text": bad.text}))
      good, rejected = self._validate(table, kind, source)
      for letter in rejected:
        yield beam.pvalue.TaggedOutput(REJECTED, letter)
      _counter("rejected_rows").inc(len(rejected) + len(source.invalid))
      _counter(kind.value).inc(good.num_rows)
      yield from by_bucket(kind.value, good, self.num_buckets)
      if kind == LogKind.IMPRESSIONS:
        for part in by_request_id(good):
          yield beam.pvalue.TaggedOutput(REQUEST_IDS, part)
    if row_group < 0 and records == 0:  # a text file with its header only: most likely a failed export
      raise DataContractError(f"{file}: no {kind.value} rows below the header; remove the file or export it again")

  def _validate(self, table: pa.Table, kind: LogKind, source: Source) -> tuple[pa.Table, list[str]]:
    """The chunk's valid rows (in order) and a dead letter per invalid row."""
    good, rejected = [], []
    self._bisect(table, 0, table.num_rows, kind, source, good, rejected)
    return (pa.concat_tables(good) if good else contract_schema(kind, self.config).empty_table()), rejected

  def _bisect(self, table: pa.Table, start: int, end: int, kind: LogKind, source: Source, good: list,
              rejected: list) -> None:
    """Rows [start, end) of the chunk: conformed whole, else its halves in turn, down to the bad rows
    alone: b bad rows among n cost about 2 b log2(n / b) vectorised checks (row by row cost n Python
    calls: a 44x slower job with one bad row per chunk)."""
    if start == end:
      return
    part_source = dataclasses.replace(source, first_row=source.first_row + start)
    try:
      good.append(conform(table.slice(start, end - start), kind, self.config, part_source))
      return
    except DataContractError as e:
      if end - start == 1:
        letter = {"file": source.path, "row": part_source.first_row, "kind": kind.value, "reason": str(e)}
        if source.header_lines is not None:
          letter["line"] = source.line(start)
        rejected.append(json.dumps(letter))
        return
    middle = (start + end) // 2
    self._bisect(table, start, middle, kind, source, good, rejected)
    self._bisect(table, middle, end, kind, source, good, rejected)



def by_bucket(kind: str, table: pa.Table, num_buckets: int) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
  """A table -> (bucket, (kind, its rows of that bucket)) per bucket present."""
  if table.num_rows:
    for bucket, rows in split_by(user_bucket(table[USER_ID].to_numpy(), num_buckets), table):
      yield bucket, (kind, rows)


def by_request_id(impressions: pa.Table) -> Iterator[tuple[int, pa.Table]]:
  """Valid impressions -> (partition of their request_ids, its request_id / user_id / timestamp columns)."""
  if impressions.num_rows:
    ids = impressions.select([REQUEST_ID, USER_ID, TIMESTAMP])
    hashes = pd.util.hash_array(ids[REQUEST_ID].to_numpy(zero_copy_only=False))  # stable across workers
    yield from split_by((hashes % np.uint64(REQUEST_ID_PARTITIONS)).astype(np.int64), ids)


def split_by(keys: np.ndarray, table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
  """(key, the rows of that key) per key present, rows in table order."""
  order = np.argsort(keys, kind="stable")
  sorted_keys = keys[order]
  bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
  for start, end in zip(np.r_[0, bounds], np.r_[bounds, len(order)]):
    # `take` copies: a slice would pickle its parent's whole buffers, once per key.
    yield int(sorted_keys[start]), table.take(pa.array(order[start:end]))


def requests_of_several_users(element) -> list[tuple[str, int]]:
  """(partition, its request-id tables) -> (request_id, user_id) for every user but the first (earliest
  impression, then smallest user_id) of a request_id that names impressions of several users."""
  ids = pa.concat_tables(element[1])
  users = ids.group_by(REQUEST_ID).aggregate([(USER_ID, "count_distinct")])
  shared = users.filter(pc.greater(users[f"{USER_ID}_count_distinct"], 1))[REQUEST_ID]
  if len(shared) == 0:
    return []
  rows = ids.filter(pc.is_in(ids[REQUEST_ID], value_set=shared)).sort_by(
      [(REQUEST_ID, "ascending"), (TIMESTAMP, "ascending"), (USER_ID, "ascending")])
  first_user: dict[str, int] = {}
  others = set()
  for request, user in zip(rows[REQUEST_ID].to_pylist(), rows[USER_ID].to_pylist()):
    if first_user.setdefault(request, user) != user:
      others.add((request, user))
  return sorted(others)


def shared_request_ids(request_ids) -> beam.PCollection:
  """Request-id partitions -> (request_id, user_id) of the impressions that lose a shared request_id."""
  return (request_ids | "GroupByRequestId" >> beam.GroupByKey()
          | "SharedByUsers" >> beam.FlatMap(requests_of_several_users))


class SpillByWave(beam.DoFn):
  """(bucket, (kind, table)) -> appended to this bundle's spill file of its wave (bucket % waves) and kind:
  an Arrow IPC stream `<spill_dir>/wave-<w>/<kind>-<id>.arrow`. Nothing is held beyond a bundle's open
  files."""

  def __init__(self, spill_dir: str, waves: int):
    self.spill_dir, self.waves = spill_dir, waves

  def start_bundle(self):
    self._open = {}

  def process(self, element):
    bucket, (kind, table) = element
    key = (bucket % self.waves, kind)
    if key not in self._open:
      path = FileSystems.join(wave_dir(self.spill_dir, key[0]), f"{kind}-{uuid.uuid4().hex}.arrow")
      file = FileSystems.create(path)
      self._open[key] = (file, pa.ipc.new_stream(file, table.schema))
    self._open[key][1].write_table(table)

  def finish_bundle(self):
    for file, writer in self._open.values():
      writer.close()
      file.close()


def wave_dir(spill_dir: str, wave: int) -> str:
  return FileSystems.join(spill_dir, f"wave-{wave:04d}")


def read_spilled(path: str, num_buckets: int) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
  """A spill file -> its rows by bucket, as ReadAndValidate gave them."""
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    table = pa.ipc.open_stream(f).read_all()
  yield from by_bucket(os.path.basename(path).split("-")[0], table, num_buckets)


class BuildExamples(beam.DoFn):
  """(bucket, [tables]) -> (request_id, serialized tf.Example) tagged train / eval."""

  def __init__(self, config: FeatureConfig, eval_start_timestamp: int):
    self.config, self.eval_start = config, eval_start_timestamp

  def setup(self):
    self._encoder = example_coder.RecordBatchToExamplesEncoder()

  def process(self, element, shared_request_ids: list) -> Iterator:
    _, tables = element
    tables = list(tables)
    _counter("events_grouped").inc(sum(t.num_rows for k, t in tables if k == LogKind.EVENTS.value))
    imps = [t for k, t in tables if k == LogKind.IMPRESSIONS.value]
    if not imps:
      return
    events = sort_events(pa.concat_tables([t for k, t in tables if k == LogKind.EVENTS.value] or
                                          [_empty_events(self.config)]))
    impressions = pa.concat_tables(imps).sort_by([(USER_ID, "ascending"), (TIMESTAMP, "ascending")])
    impressions, duplicates = first_of_each_request(impressions, {tuple(pair) for pair in shared_request_ids})
    _counter("duplicate_impressions").inc(len(duplicates))
    for letter in duplicates:
      yield beam.pvalue.TaggedOutput(REJECTED, letter)
    ev_user, ev_ts = events[USER_ID].to_numpy(), events[TIMESTAMP].to_numpy()
    seq = self.config.sequence
    for start in range(0, impressions.num_rows, EXAMPLES_PER_BLOCK):
      block = impressions.slice(start, EXAMPLES_PER_BLOCK)
      ts = block[TIMESTAMP].to_numpy()
      ranges = point_in_time_ranges(ev_user, ev_ts, block[USER_ID].to_numpy(), ts,
                                    self.config.day_start(ts), seq.global_length, seq.realtime_length)
      _counter("empty_global").inc(int(np.sum(ranges.global_available == 0)))
      _counter("empty_realtime").inc(int(np.sum(ranges.realtime_available == 0)))
      _counter("truncated_global").inc(int(np.sum(ranges.global_available > seq.global_length)))
      _counter("truncated_realtime").inc(int(np.sum(ranges.realtime_available > seq.realtime_length)))
      serialized = self._encoder.encode(example_batch(block, events, ranges, self.config))
      is_eval = ts >= self.eval_start
      _counter("eval_examples").inc(int(is_eval.sum()))
      _counter("train_examples").inc(int((~is_eval).sum()))
      for request_id, example, to_eval in zip(block[REQUEST_ID].to_pylist(), serialized, is_eval):
        yield beam.pvalue.TaggedOutput(EVAL if to_eval else TRAIN, (request_id, example))


def first_of_each_request(impressions: pa.Table, lost: set[tuple[str, int]]) -> tuple[pa.Table, list[str]]:
  """The impressions without repeated request_ids, and a dead letter per repeat. A request_id names one
  impression: a repeat would be a second example of it. `lost`: (request_id, user_id) whose request_id
  an earlier impression of another user keeps (`requests_of_several_users`); within a user the first
  impression of a request_id is kept (impressions are sorted by user and time)."""
  ids = impressions[REQUEST_ID].to_numpy(zero_copy_only=False)
  keep = np.ones(len(ids), dtype=bool)
  letters = []
  if lost:
    users = impressions[USER_ID].to_numpy()
    for i in np.flatnonzero(pc.is_in(impressions[REQUEST_ID], value_set=pa.array([r for r, _ in lost])).to_numpy(
        zero_copy_only=False)):
      if (ids[i], int(users[i])) in lost:
        keep[i] = False
        letters.append(_repeat_letter(ids[i], "also names an earlier impression of another user"))
  _, first = np.unique(ids[keep], return_index=True)
  repeated = np.flatnonzero(keep)[np.setdiff1d(np.arange(keep.sum()), first)]
  keep[repeated] = False
  letters += [_repeat_letter(ids[i], "repeated: the first of its impressions is kept") for i in repeated]
  return (impressions, []) if keep.all() else (impressions.filter(pa.array(keep)), letters)


def _repeat_letter(request_id: str, why: str) -> str:
  return json.dumps({"kind": LogKind.IMPRESSIONS.value, "request_id": str(request_id),
                     "reason": f"request_id '{request_id}' {why}"})


def _empty_events(config: FeatureConfig) -> pa.Table:
  return contract_schema(LogKind.EVENTS, config).empty_table()


def output_patterns(output_dir: str) -> dict[str, str]:
  """File patterns of the splits, as ImportExampleGen / make_dataset take them; a local directory is
  made absolute, so that the job summary's patterns hold from any working directory."""
  if "://" not in output_dir:
    output_dir = os.path.abspath(output_dir)
  return {split: os.path.join(output_dir, split, "part-*.tfrecord.gz") for split in (TRAIN, EVAL)}


def read_logs(p: beam.Pipeline, cfg: SequenceJobConfig, config: FeatureConfig):
  """The logs -> (validated rows keyed by user bucket, rejected rows as JSON lines, the (request_id,
  user_id) of impressions whose request_id another user's earlier impression keeps).

  Both logs' read units go through one read transform: a Flatten of two reads would be materialised
  whole in memory by the FnApiRunner (it never fuses a multi-input Flatten), which for the waves' read
  pass was the whole validated logs before the first row was spilled."""
  units = (plan_reads(cfg.impressions, LogKind.IMPRESSIONS, config)
           + plan_reads(cfg.events, LogKind.EVENTS, config))
  out = (p | "PlanReads" >> beam.Create(units) | "ReshuffleReads" >> beam.Reshuffle()
         | "Read" >> beam.ParDo(ReadAndValidate(config, cfg.num_buckets, cfg.batch_rows)
                                ).with_outputs(REJECTED, REQUEST_IDS, main="rows"))
  return out.rows, out[REJECTED], shared_request_ids(out[REQUEST_IDS])


def build_examples(keyed, shared, cfg: SequenceJobConfig, config: FeatureConfig):
  """Rows keyed by bucket, `shared_request_ids` -> (request_id, serialized example) tagged TRAIN / EVAL,
  and repeated request_ids (REJECTED)."""
  return (keyed | "GroupByBucket" >> beam.GroupByKey()
          | "Build" >> beam.ParDo(BuildExamples(config, cfg.eval_start_timestamp), beam.pvalue.AsList(shared)
                                  ).with_outputs(TRAIN, EVAL, REJECTED))


def write_outputs(examples, rejected, output_dir: str, prefix: str, shards: int) -> None:
  """<output_dir>/{train,eval}/<prefix>-s<k>-*.tfrecord.gz (k < shards) and rejected/<prefix>-*.jsonl."""
  for split in (TRAIN, EVAL):
    parts = examples[split] | f"Shard{split}" >> beam.Partition(shard_of, shards)
    for k, part in enumerate(parts):
      _ = part | f"Records{split}{k}" >> beam.Values() | f"Write{split}{k}" >> beam.io.WriteToTFRecord(
          os.path.join(output_dir, split, f"{prefix}-s{k:02d}"), file_name_suffix=".tfrecord.gz",
          compression_type=CompressionTypes.GZIP)
  _ = rejected | "WriteRejected" >> beam.io.WriteToText(os.path.join(output_dir, REJECTED, prefix),
                                                        file_name_suffix=".jsonl")


def shard_of(keyed_example: tuple[str, bytes], shards: int) -> int:
  """A (request_id, serialized example)'s file, by its request_id: the same on every worker and run. Not
  by its bytes: the encoder writes a tf.Example's feature map in an order that differs between runs."""
  return request_id_hash(keyed_example[0]) % shards


def examples_from_logs(p: beam.Pipeline, cfg: SequenceJobConfig, config: FeatureConfig):
  """The logs -> ((request_id, serialized example) tagged TRAIN / EVAL, every rejected row as a JSON line),
  in one pass."""
  keyed, rejected, shared = read_logs(p, cfg, config)
  examples = build_examples(keyed, shared, cfg, config)
  return examples, [rejected, examples[REJECTED]] | "AllRejected" >> beam.Flatten()


def build_pipeline(p: beam.Pipeline, cfg: SequenceJobConfig) -> None:
  """The whole job in one pass (waves = 1)."""
  examples, rejected = examples_from_logs(p, cfg, load_feature_config(cfg.feature_config))
  write_outputs(examples, rejected, cfg.output_dir, "part", cfg.output_shards)


def spill_pipeline(p: beam.Pipeline, cfg: SequenceJobConfig, spill_dir: str) -> None:
  """Waves, first pass: read and validate every log once; rows to their wave's spill files, the shared
  request_ids to `<spill_dir>/shared_request_ids-*.jsonl`."""
  keyed, rejected, shared = read_logs(p, cfg, load_feature_config(cfg.feature_config))
  _ = keyed | "Spill" >> beam.ParDo(SpillByWave(spill_dir, cfg.waves))
  _ = (shared | "SharedAsJson" >> beam.Map(json.dumps)
       | "WriteShared" >> beam.io.WriteToText(FileSystems.join(spill_dir, SHARED), file_name_suffix=".jsonl"))
  _ = rejected | "WriteRejected" >> beam.io.WriteToText(os.path.join(cfg.output_dir, REJECTED, "part-read"),
                                                        file_name_suffix=".jsonl")


def wave_pipeline(p: beam.Pipeline, cfg: SequenceJobConfig, files: list[str], shared: list, wave: int) -> None:
  """Waves, one wave: its spill files -> the examples of its buckets."""
  keyed = (p | "Files" >> beam.Create(files) | "Reshuffle" >> beam.Reshuffle()
           | "ReadSpilled" >> beam.FlatMap(read_spilled, cfg.num_buckets))
  examples = build_examples(keyed, p | "Shared" >> beam.Create(shared), cfg, load_feature_config(cfg.feature_config))
  write_outputs(examples, examples[REJECTED], cfg.output_dir, f"part-w{wave:04d}", cfg.output_shards)


def run_in_waves(cfg: SequenceJobConfig, beam_args: list[str] | None) -> dict:
  """The job as a read pass and `cfg.waves` build passes over spilled rows; the counters summed."""
  spill = FileSystems.join(cfg.output_dir, "_spill")
  totals = run_pipeline(lambda p: spill_pipeline(p, cfg, spill), beam_args, DEFAULT_OPTIONS, NAMESPACE, COUNTERS)
  shared = [tuple(json.loads(line)) for m in FileSystems.match([FileSystems.join(spill, SHARED + "*")])[0].metadata_list
            for line in FileSystems.open(m.path).read().decode().splitlines()]
  for wave in range(cfg.waves):
    found = FileSystems.match([FileSystems.join(wave_dir(spill, wave), "*.arrow")])[0].metadata_list
    if found:
      counters = run_pipeline(lambda p: wave_pipeline(p, cfg, [m.path for m in found], shared, wave), beam_args,
                              DEFAULT_OPTIONS, NAMESPACE, COUNTERS)
      totals = {name: totals[name] + counters[name] for name in totals}
    print(f"wave {wave + 1}/{cfg.waves}: {totals['train_examples'] + totals['eval_examples']:,} examples so far",
          file=sys.stderr, flush=True)
  FileSystems.delete([spill])
  return totals


# In memory: as fast on 2 cores as multi-processing (2.5 min for 1M impressions, 4.9 GB peak); the loss
# multi-processing runs had is Beam's timed flush, turned off by run_pipeline (local_runner.py). `run`
# checks the counts whatever the runner. Larger logs belong on a distributed runner (Dataflow / Flink).
DEFAULT_OPTIONS = list(LOCAL_OPTIONS)


def unbalanced(counters: dict) -> list[str]:
  """What does not add up: every record read is a valid row or a dead letter, every valid row reaches
  its user's bucket, every valid impression becomes one example or a repeated request_id's dead letter."""
  problems = []
  read = counters["impression_records"] + counters["event_records"]
  placed = counters["impressions"] + counters["events"] + counters["rejected_rows"]
  if read != placed:
    problems.append(f"{read} records read but {placed} valid or rejected")
  examples = counters["train_examples"] + counters["eval_examples"]
  if counters["impressions"] != examples + counters["duplicate_impressions"]:
    problems.append(f"{counters['impressions']} valid impressions but {examples} examples and "
                    f"{counters['duplicate_impressions']} repeated request_ids")
  if counters["events"] != counters["events_grouped"]:
    problems.append(f"{counters['events']} valid events but {counters['events_grouped']} grouped")
  return problems


def run(cfg: SequenceJobConfig, beam_args: list[str] | None = None) -> dict:
  """Runs the job and returns the summary (counters, output patterns), also in job_summary.json.

  The outputs appear in cfg.output_dir only if the counts balance and there is at least one valid
  impression (pipelines/outputs.py); otherwise the job raises and publishes nothing."""
  with staged_output(cfg.output_dir, cfg.overwrite, TOOL, (cfg.impressions, cfg.events)) as staging:
    staged = dataclasses.replace(cfg, output_dir=staging)
    counters = (run_pipeline(lambda p: build_pipeline(p, staged), beam_args, DEFAULT_OPTIONS, NAMESPACE, COUNTERS)
                if cfg.waves == 1 else run_in_waves(staged, beam_args))
    summary = {"tool": TOOL, "counters": counters, "outputs": output_patterns(cfg.output_dir),
               "rejected": os.path.join(cfg.output_dir, REJECTED, "part-*.jsonl"),
               "config": dataclasses.asdict(cfg)}
    write_summary(staging, summary)
    problems = unbalanced(counters)
    if problems:  # a runner that loses elements must not look finished
      raise RuntimeError(f"rows lost between reading and writing ({'; '.join(problems)}); nothing was "
                         f"published; the partial outputs and counters are in {staging}")
    for kind, log in ((LogKind.IMPRESSIONS, cfg.impressions), (LogKind.EVENTS, cfg.events)):
      if counters[kind.value] == 0:  # examples without any sequence would train a model blind to them
        raise DataContractError(
            f"{log}: no valid {kind.value[:-1]} among {counters[RECORDS[kind]]} records "
            f"({counters['rejected_rows']} rows rejected: see {staging}/{REJECTED}); nothing was published")
  if counters["rejected_rows"]:
    logging.warning("%d rows rejected: see %s", counters["rejected_rows"], summary["rejected"])
  return summary
