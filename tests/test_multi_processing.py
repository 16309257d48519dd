"""The jobs on Beam's portable Fn API harness with 2 SDK worker processes (the harness Dataflow, Flink and
Spark run Python in): every record accounted for and the outputs equal the in-memory run's.

Root cause of the rows that multi-processing runs lost (docs/DATA.md): Beam 2.77's FnApiRunner sends
bundle inputs through a time-flushed output stream whose flusher thread races the writing thread.
"""
import time

import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from hemix_tf.data.cli import build
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.export import export_saved_model
from hemix_tf.model.training import hashing_preprocessor
from pipelines import batch_scoring, sequence_job
from pipelines.batch_scoring import BatchScoringConfig

from job_runs import IN_MEMORY, run_job
from model_inputs import hemix

MULTI_PROCESSING = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_beams_time_flushed_stream_loses_what_is_written_while_it_flushes():
  """The upstream defect itself: TimeBasedBufferingClosableOutputStream's flusher thread calls
  flush_callback(get()) then _clear() without excluding write(); bytes written in between are sent in
  neither message. (If Beam fixes it, this fails: then the guard `without_timed_flush` can go.)"""
  sent = []
  stream = data_plane.TimeBasedBufferingClosableOutputStream(sent.append, flush_callback=sent.append,
                                                             time_flush_threshold_ms=1)
  chunk, written = b"x" * 100_000, 0
  deadline = time.time() + 0.5
  while time.time() < deadline:
    stream.write(chunk)
    written += len(chunk)
  stream.close()
  assert sum(map(len, sent)) < written


@pytest.fixture
def no_timed_stream(monkeypatch):
  """Fails the test if the runner process builds a time-flushed stream; starts from Beam's default."""
  made = []
  original = data_plane.TimeBasedBufferingClosableOutputStream.__init__

  def init(self, *args, **kwargs):
    made.append(kwargs.get("time_flush_threshold_ms"))
    original(self, *args, **kwargs)
  monkeypatch.setattr(data_plane.TimeBasedBufferingClosableOutputStream, "__init__", init)
  monkeypatch.setattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", 1000)
  yield made
  assert made == [], "the runner flushed a data stream on a timer (the race that lost rows)"


def _examples(pattern) -> dict:
  """{request_id: tf.train.Example} of the examples written."""
  records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").as_numpy_iterator()
  examples = [tf.train.Example.FromString(r) for r in records]
  return {e.features.feature["request_id"].bytes_list.value[0]: e for e in examples}


@pytest.mark.slow
def test_sequence_job_and_batch_scoring_in_two_worker_processes_equal_in_memory(tmp_path, no_timed_stream):
  build("synthetic", str(tmp_path / "raw"), num_impressions=3000)
  in_memory = run_job(tmp_path / "raw", tmp_path / "in_memory", "synthetic-lbs")
  manifest_job = sequence_job.SequenceJobConfig(
      str(tmp_path / "raw" / "impressions"), str(tmp_path / "raw" / "events"), str(tmp_path / "mp"),
      in_memory["config"]["eval_start_timestamp"], "synthetic-lbs", num_buckets=4)
  processes = sequence_job.run(manifest_job, MULTI_PROCESSING)
  assert processes["counters"] == in_memory["counters"]
  for split in ("train", "eval"):
    assert _examples(processes["outputs"][split]) == _examples(in_memory["outputs"][split])

  fc, config = load_feature_config("synthetic-lbs"), preset("cpu-small")
  model = export_saved_model(hemix(fc, config), hashing_preprocessor(fc, config), fc, str(tmp_path / "model"))
  scores = {}
  for name, options in (("in_memory", IN_MEMORY), ("mp", MULTI_PROCESSING)):
    summary = batch_scoring.run(BatchScoringConfig(saved_model=model, output_dir=str(tmp_path / f"scores_{name}"),
                                                   examples=in_memory["outputs"]["eval"],
                                                   feature_config="synthetic-lbs"), options)
    assert summary["counters"]["rejected"] == 0
    rows = pq.read_table(tf.io.gfile.glob(summary["scores"])).to_pylist()
    scores[name] = {r["request_id"]: (r["click"], r["conversion"]) for r in rows}
  assert len(scores["mp"]) == in_memory["counters"]["eval_examples"] and scores["mp"].keys() == scores["in_memory"].keys()
  for request, (click, conversion) in scores["in_memory"].items():  # batches differ: float tolerance
    assert scores["mp"][request] == pytest.approx((click, conversion), abs=1e-6)
