"""Beam batch scoring: tf.Examples (TFRecords, or raw logs through the sequence job's transforms) ->
RunInference with the SavedModel's `serving_default` -> Parquet with request_id, user_id, item_id and one
probability column per task.

    records ─> Validate ─┬─> (request_id, example) ─> RunInference (tfx_bsl model handler, keyed)
                         │       ─> rows ─> WriteToParquet(<output_dir>/scores/part-*.parquet)
                         └─> rejected/*.jsonl (record index in its file, reason)
Every record is either scored or rejected with its reason: records_in = scored + rejected, and the job
checks it. Validation is against the raw-example contract of the model's feature config (types of the
features the model reads, ids present), so one malformed record cannot fail a whole inference batch.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference import base as inference
from google.protobuf.message import DecodeError
from tfx_bsl.public.beam.run_inference import CreateModelHandler
from tfx_bsl.public.proto import model_spec_pb2

from hemix_tf.data.contract import DataContractError, LogKind, contract_schema
from hemix_tf.data.examples import parse_spec
from hemix_tf.data.feature_config import ITEM_ID, REQUEST_ID, USER_ID, FeatureConfig, load_feature_config
from hemix_tf.model.export import model_input_spec
from pipelines.beam_jobs import run_pipeline, write_summary
from pipelines.local_runner import LOCAL_OPTIONS
from pipelines.outputs import staged_output

NAMESPACE = "hemix_batch_scoring"
COUNTERS = ("records_in", "scored", "rejected")
REJECTED = "rejected"
KEYS = (REQUEST_ID, USER_ID, ITEM_ID)
TRAINING_RECORD = "assets.extra/hemix_training.json"  # written by hemix_tf.trainer with every model


@dataclasses.dataclass(frozen=True)
class BatchScoringConfig:
  saved_model: str
  output_dir: str
  examples: str | None = None  # TFRecord pattern (gzip or plain, by extension) ...
  impressions: str | None = None  # ... or raw logs, turned into examples by the sequence job's transforms
  events: str | None = None
  feature_config: str | None = None  # default: the one recorded with the model
  tasks: tuple[str, ...] = ("click", "conversion")
  batch_size: int = 512  # examples per RunInference call
  num_buckets: int = 64  # sequence build parallelism (raw logs only)
  overwrite: bool = False  # replace a non-empty output_dir (else the job refuses to start)

  def __post_init__(self):
    if bool(self.examples) == bool(self.impressions and self.events):
      raise ValueError("give either examples (a TFRecord pattern) or impressions and events (raw logs)")


def model_feature_config(cfg: BatchScoringConfig) -> str:
  if cfg.feature_config:
    return cfg.feature_config
  record = FileSystems.join(cfg.saved_model, TRAINING_RECORD)
  if not FileSystems.exists(record):
    raise ValueError(f"{record} missing: pass feature_config explicitly")
  with FileSystems.open(record) as f:
    return json.loads(f.read())["feature_config"]


def _kind(spec) -> str:
  return {tf.int64: "int64_list", tf.float32: "float_list", tf.string: "bytes_list"}[spec.dtype]


class Validate(beam.DoFn):
  """(source, index, serialized) -> (request_id, serialized), or a rejection {source, index, reason}."""

  def __init__(self, config: FeatureConfig):
    self.config = config

  def setup(self):
    spec, inputs = parse_spec(self.config), model_input_spec(self.config)
    self._kinds = {name: _kind(s) for name, s in {**inputs, **{k: spec[k] for k in KEYS}}.items()}
    self._model_features = [name for name in inputs if name not in KEYS]
    self._in, self._rejected = Metrics.counter(NAMESPACE, "records_in"), Metrics.counter(NAMESPACE, "rejected")

  def process(self, element) -> Iterator:
    source, index, record = element
    self._in.inc()
    reason = None
    try:
      features = tf.train.Example.FromString(record).features.feature
    except DecodeError as e:
      reason = f"not a tf.Example: {e}"
    else:
      missing = [k for k in KEYS if k not in features or not getattr(features[k], self._kinds[k]).value]
      wrong = [f"{name} is {features[name].WhichOneof('kind')}, expected {kind}"
               for name, kind in self._kinds.items()
               if name in features and features[name].WhichOneof("kind") not in (kind, None)]
      if wrong:
        reason = "; ".join(wrong)
      elif missing:
        reason = f"missing {', '.join(missing)}"
      elif not any(name in features for name in self._model_features):
        reason = "none of the model's features (it would be scored as an empty example)"
    if reason:
      self._rejected.inc()
      yield beam.pvalue.TaggedOutput(REJECTED, json.dumps({"source": source, "index": index, "reason": reason}))
    else:
      yield features[REQUEST_ID].bytes_list.value[0].decode(), record


class ToRow(beam.DoFn):
  """(request_id, PredictionLog) -> {request_id, user_id, item_id, task...}."""

  def __init__(self, config: FeatureConfig, tasks: tuple[str, ...]):
    self.config, self.tasks = config, tasks

  def setup(self):
    self._scored = Metrics.counter(NAMESPACE, "scored")

  def process(self, element) -> Iterator[dict]:
    request_id, log = element
    request = tf.train.Example.FromString(log.predict_log.request.inputs["examples"].string_val[0])
    features = request.features.feature
    outputs = log.predict_log.response.outputs
    row = {"request_id": request_id}
    for key in (USER_ID, ITEM_ID):
      value = features[key]
      row[key] = value.int64_list.value[0] if value.int64_list.value else value.bytes_list.value[0].decode()
    row.update({task: float(tf.make_ndarray(outputs[task]).reshape(-1)[0]) for task in self.tasks})
    self._scored.inc()
    yield row


def output_schema(config: FeatureConfig, tasks: tuple[str, ...]) -> pa.Schema:
  contract = contract_schema(LogKind.IMPRESSIONS, config)
  return pa.schema([pa.field(REQUEST_ID, pa.string(), nullable=False),
                    *(pa.field(k, contract.field(k).type, nullable=False) for k in (USER_ID, ITEM_ID)),
                    *(pa.field(t, pa.float32(), nullable=False) for t in tasks)])


class _ReadIndexed(beam.DoFn):
  """A TFRecord file -> (file, record index, record): a rejection can name the record."""

  def process(self, path: str) -> Iterator:
    """A corrupt or truncated file fails the job naming it: the records after the damage cannot be
    counted, so they could not be accounted for."""
    compression = "GZIP" if path.endswith(".gz") else ""
    i = 0
    try:
      for record in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
        yield path, i, record
        i += 1
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
      raise DataContractError(f"{path}: corrupt or truncated after {i} records "
                              f"({e.message.splitlines()[0]})") from None


def _records(p: beam.Pipeline, cfg: BatchScoringConfig, config: FeatureConfig):
  if cfg.examples:
    files = [m.path for r in FileSystems.match([cfg.examples]) for m in r.metadata_list]
    if not files:
      raise FileNotFoundError(f"no file matches {cfg.examples}")
    return (p | "Files" >> beam.Create(sorted(files)) | "Reshuffle" >> beam.Reshuffle()
            | "ReadRecords" >> beam.ParDo(_ReadIndexed()))
  from pipelines.sequence_job import EVAL, TRAIN, SequenceJobConfig, examples_from_logs
  job = SequenceJobConfig(cfg.impressions, cfg.events, cfg.output_dir, eval_start_timestamp=0,
                          feature_config=config.name, num_buckets=cfg.num_buckets)
  examples, rejected_rows = examples_from_logs(p, job, config)
  _ = (rejected_rows | "CountRejectedRows" >> beam.Map(_count_rejected_row)
       | "WriteRejectedRows" >> beam.io.WriteToText(os.path.join(cfg.output_dir, REJECTED, "rows"),
                                                     file_name_suffix=".jsonl"))
  return ((examples[TRAIN], examples[EVAL]) | "AllExamples" >> beam.Flatten()
          | "Index" >> beam.Map(lambda keyed: ("logs", -1, keyed[1])))


def _count_rejected_row(letter: str) -> str:
  """A raw row the sequence transforms rejected is a record in and a rejected one: the summary's counts
  and the job's balance see it (before, rejected/ held it while the summary said 0)."""
  Metrics.counter(NAMESPACE, "records_in").inc()
  Metrics.counter(NAMESPACE, "rejected").inc()
  return letter


class KeyedWithBatchSize(inference.KeyedModelHandler):
  """Keyed inference in batches of at most `batch_size` examples."""

  def __init__(self, handler, batch_size: int):
    super().__init__(handler)
    self.batch_size = batch_size

  def batch_elements_kwargs(self):
    return {**super().batch_elements_kwargs(), "max_batch_size": self.batch_size}


def build_pipeline(p: beam.Pipeline, cfg: BatchScoringConfig) -> None:
  config = load_feature_config(model_feature_config(cfg))
  checked = _records(p, cfg, config) | "Validate" >> beam.ParDo(Validate(config)).with_outputs(
      REJECTED, main="valid")
  handler = CreateModelHandler(model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
      model_path=cfg.saved_model, signature_name=["serving_default"])))
  _ = (checked.valid
       | "RunInference" >> inference.RunInference(KeyedWithBatchSize(handler, cfg.batch_size))
       | "ToRow" >> beam.ParDo(ToRow(config, cfg.tasks))
       | "Write" >> beam.io.WriteToParquet(os.path.join(cfg.output_dir, "scores", "part"),
                                           output_schema(config, cfg.tasks), file_name_suffix=".parquet"))
  _ = checked[REJECTED] | "WriteRejected" >> beam.io.WriteToText(
      os.path.join(cfg.output_dir, REJECTED, "records"), file_name_suffix=".jsonl")


DEFAULT_OPTIONS = list(LOCAL_OPTIONS)  # in memory: TF uses every core itself
TOOL = "hemix-batch-score"  # in the summary: `--overwrite` replaces only this tool's outputs


def check_examples_match_the_model(cfg: BatchScoringConfig) -> None:
  """Examples built by the sequence job with another feature config than the model's are refused before
  any work (their overlapping feature names would pass validation and every record would be scored on
  the wrong inputs). The examples' config is the job's record beside them (<out>/job_summary.json, found
  above the pattern's directory), when there is one."""
  if not cfg.examples:
    return
  model = load_feature_config(model_feature_config(cfg)).name
  directory = os.path.dirname(cfg.examples)
  for candidate in (directory, os.path.dirname(directory)):
    record = FileSystems.join(candidate, "job_summary.json") if candidate else ""
    if record and FileSystems.exists(record):
      with FileSystems.open(record) as f:
        built = json.loads(f.read()).get("config", {}).get("feature_config")
      if built and load_feature_config(built).name != model:
        raise DataContractError(f"{cfg.examples}: built with feature config '{built}' ({record}), but the "
                                f"model {cfg.saved_model} was trained on '{model}'")
      return


def run(cfg: BatchScoringConfig, beam_args: list[str] | None = None) -> dict:
  """Runs the job; returns the summary (counters, outputs), also written to job_summary.json."""
  check_examples_match_the_model(cfg)
  inputs = [path for path in (cfg.saved_model, cfg.examples, cfg.impressions, cfg.events) if path]
  with staged_output(cfg.output_dir, cfg.overwrite, TOOL, inputs) as staging:  # published if the counts balance
    counters = run_pipeline(lambda p: build_pipeline(p, dataclasses.replace(cfg, output_dir=staging)),
                            beam_args, DEFAULT_OPTIONS, NAMESPACE, COUNTERS)
    summary = {"tool": TOOL, "counters": counters, "scores": os.path.join(cfg.output_dir, "scores", "part-*.parquet"),
               "rejected": os.path.join(cfg.output_dir, REJECTED, "*.jsonl"), "config": dataclasses.asdict(cfg)}
    write_summary(staging, summary)
    if counters["records_in"] != counters["scored"] + counters["rejected"]:
      raise RuntimeError(f"records lost: {counters}; nothing was published; partial outputs in {staging}")
  return summary
