"""The Beam sequence job against the DuckDB reference, on real and synthetic data and edge cases."""
import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from hemix_tf.data.cli import build
from hemix_tf.data.contract import LogKind, contract_schema
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.examples import SEQUENCES, make_dataset, parse_spec, read_timestamps, sequence_feature, sequence_fields
from hemix_tf.data.feature_config import load_feature_config, parse_feature_config
from hemix_tf.data.io import LogWriter, read_log

from pipelines.sequence_job import output_patterns

from job_runs import IN_MEMORY, run_job
from reference_sequences import reference_sequences



def _parsed_batches(pattern, spec):
  files = tf.io.gfile.glob(pattern)
  records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192)
  return records.map(lambda batch: tf.io.parse_example(batch, spec)) if files else []


def written_ids(pattern) -> list[str]:
  spec = {"request_id": tf.io.FixedLenFeature([], tf.string)}
  return [rid.decode() for batch in _parsed_batches(pattern, spec) for rid in batch["request_id"].numpy()]


def read_examples(pattern, config, keep=None) -> dict:
  """{request_id: {feature: python value}} of the examples the job wrote (those in `keep`, if given)."""
  out = {}
  for batch in _parsed_batches(pattern, parse_spec(config)):
    ids = [rid.decode() for rid in batch["request_id"].numpy()]
    rows = [i for i, rid in enumerate(ids) if keep is None or rid in keep]
    columns = {k: tf.gather(v, rows) for k, v in batch.items()}  # python lists of the kept rows only
    columns = {k: (v.to_list() if isinstance(v, tf.RaggedTensor) else v.numpy().tolist()) for k, v in columns.items()}
    out.update({ids[i]: {k: col[j] for k, col in columns.items()} for j, i in enumerate(rows)})
  return out


def user_sample(impressions: pa.Table, every: int) -> pa.Table:
  """The impressions of every `every`-th user (by a stable hash of the id): the reference is per user."""
  users = impressions["user_id"].to_pylist()
  keep = [zlib.crc32(str(u).encode()) % every == 0 for u in users]
  return impressions.filter(pa.array(keep))


def assert_parity(dataset_dir, out_dir, config_name, every_user=1):
  """Every impression is written once, and the sequences of the impressions of every `every_user`-th
  user equal the DuckDB reference's (a sample keeps the Python-side comparison of the large real
  datasets within seconds; the job itself always runs on all of it)."""
  config = load_feature_config(config_name)
  summary = run_job(dataset_dir, out_dir, config_name)
  imp = read_log(dataset_dir / "impressions", LogKind.IMPRESSIONS, config)
  ev = read_log(dataset_dir / "events", LogKind.EVENTS, config)
  ids = written_ids(summary["outputs"]["train"]) + written_ids(summary["outputs"]["eval"])
  assert len(ids) == len(set(ids)) and set(ids) == set(imp["request_id"].to_pylist())  # each once, none dropped
  sample = user_sample(imp, every_user)
  expected = reference_sequences(sample, ev, config)
  keep = set(expected)
  written = {**read_examples(summary["outputs"]["train"], config, keep),
             **read_examples(summary["outputs"]["eval"], config, keep)}
  assert set(written) == keep and (every_user == 1 or 0 < len(keep) < imp.num_rows)
  names = [sequence_feature(s, f) for s in SEQUENCES for f in sequence_fields(config)]
  for rid, ref in expected.items():
    got = written[rid]
    for name in names:
      value = got[name]
      if value and isinstance(value[0], bytes):
        value = [v.decode() for v in value]
      assert value == ref[name], (rid, name)
  counters = summary["counters"]
  assert counters["impressions"] == imp.num_rows and counters["events"] == ev.num_rows
  manifest = read_manifest(dataset_dir)
  assert counters["eval_examples"] == manifest["eval_impressions"]
  assert counters["train_examples"] + counters["eval_examples"] == imp.num_rows
  assert counters["rejected_rows"] == 0
  return summary, written


@pytest.mark.slow
def test_parity_ml100k(tmp_path, ml100k_dir):
  build("ml-100k", str(tmp_path / "raw"), source_dir=str(ml100k_dir))
  summary, _ = assert_parity(tmp_path / "raw", tmp_path / "out", "movielens", every_user=4)
  assert summary["counters"]["truncated_realtime"] > 0 and summary["counters"]["empty_global"] > 0


@pytest.mark.slow
def test_parity_amazon(tmp_path, amazon_dir):
  build("amazon-grocery", str(tmp_path / "raw"), source_dir=str(amazon_dir))
  assert_parity(tmp_path / "raw", tmp_path / "out", "amazon-grocery", every_user=8)


def test_parity_synthetic_and_leak_trap(tmp_path):
  build("synthetic", str(tmp_path / "raw"), num_impressions=3000)
  _, written = assert_parity(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  for ex in written.values():  # the click event at the impression's own second never leaks in
    assert 0 not in ex["realtime_time_gap"] and min(ex["global_time_gap"], default=1) > 0


EDGE_CONFIG = parse_feature_config({
    "name": "edge", "day_utc_offset_hours": 8,
    "features": {"item": [{"name": "item_id", "kind": "categorical_id"}]},
    "sequence": {"side_info": [{"name": "tag", "kind": "categorical_string"}], "behaviors": ["a", "b"],
                 "global_length": 3, "realtime_length": 2}})
DAY = 1_767_225_600 - 8 * 3600  # 2026-01-01 00:00 at UTC+8


def test_edge_cases(tmp_path):
  """Same-second ties, the local-day boundary, events at the impression second, no history, truncation."""
  t = DAY + 86400 + 3600  # an impression at 01:00 local on 2026-01-02
  events = [  # user, item, ts, behavior, tag
      (1, 10, DAY + 86400 - 1, "a", "x"),  # 23:59:59 the day before: global
      (1, 11, DAY + 86400, "a", "y"),      # local midnight: real-time
      (1, 12, DAY + 86400, "b", "z"),      # same second: tie broken by item
      (1, 13, t, "a", "w"),                # at the impression's second: never
      (1, 14, t + 5, "a", "w"),            # after: never
      (1, 15, DAY, "a", None), (1, 16, DAY + 1, "b", "q"), (1, 17, DAY + 2, "a", "q"),
      (1, 18, DAY + 2, "a", "r"),          # 5 global events for L_G = 3
  ]
  ev = pa.table(dict(zip(["user_id", "item_id", "timestamp", "behavior", "tag"], map(list, zip(*events)))))
  imp = pa.table({"request_id": ["r1", "r2"], "user_id": [1, 2], "item_id": [99, 99], "timestamp": [t, t],
                  "click": [0, 1], "conversion": [0, 0]})
  raw = tmp_path / "raw"
  for kind, table in ((LogKind.IMPRESSIONS, imp), (LogKind.EVENTS, ev)):
    with LogWriter(raw / kind.value / "part-0.parquet", kind, EDGE_CONFIG) as w:
      w.write(table.cast(contract_schema(kind, EDGE_CONFIG)))
  (raw / "manifest.json").write_text(json.dumps({"eval_start_timestamp": t, "eval_impressions": 2}))
  config_path = tmp_path / "edge.yaml"
  import yaml
  config_path.write_text(yaml.safe_dump({
      "name": "edge", "day_utc_offset_hours": 8,
      "features": {"item": [{"name": "item_id", "kind": "categorical_id"}]},
      "sequence": {"side_info": [{"name": "tag", "kind": "categorical_string"}], "behaviors": ["a", "b"],
                   "global_length": 3, "realtime_length": 2}}))
  summary, written = assert_parity(raw, tmp_path / "out", str(config_path))
  r1, r2 = written["r1"], written["r2"]
  assert (r1["user_activity_bucket"], r2["user_activity_bucket"]) == (2, 0)  # floor(log2(1 + 5)), no history
  assert r1["realtime_item_id"] == [12, 11] and r1["realtime_time_gap"] == [3600, 3600]
  assert r1["global_item_id"] == [10, 18, 17]  # truncated to the 3 most recent
  assert r1["global_tag"] == [b"x", b"r", b"q"]
  assert r2["global_item_id"] == [] and r2["realtime_item_id"] == []  # no history: kept, empty
  c = summary["counters"]
  assert (c["empty_global"], c["empty_realtime"], c["truncated_global"]) == (1, 1, 1)


def test_dead_letters(tmp_path):
  config = load_feature_config("synthetic-lbs")
  build("synthetic", str(tmp_path / "raw"), num_impressions=300)
  raw = tmp_path / "raw"
  events = read_log(raw / "events", LogKind.EVENTS, config).slice(0, 50)
  bad = events.to_pylist()
  csv_lines = ["user_id,item_id,timestamp,behavior,category,cell"]
  csv_lines += [f"{r['user_id']},{r['item_id']},{r['timestamp']},{r['behavior']},{r['category']},{r['cell']}"
                for r in bad[:3]]
  csv_lines[2] = csv_lines[2].replace(",click,", ",teleport,").replace(",navigate,", ",teleport,") \
      .replace(",order,", ",teleport,")
  csv_lines.insert(3, "7,8,9")  # line 4: a truncated line; the read goes on after it
  csv_lines.append("7,8,-1,click,1,1")  # line 6, data row 3
  (raw / "events" / "extra.csv").write_text("\n".join(csv_lines) + "\n")
  summary = run_job(raw, tmp_path / "out", "synthetic-lbs")
  letters = [json.loads(line) for f in tf.io.gfile.glob(summary["rejected"])
             for line in open(f) if line.strip()]
  reasons = sorted(letter["reason"] for letter in letters)
  c = summary["counters"]
  assert len(letters) == 3 and c["rejected_rows"] == 3
  assert any("row 1 (line 3), column 'behavior'" in r for r in reasons)
  assert any("row 3 (line 6), column 'timestamp'" in r for r in reasons)
  truncated = [letter for letter in letters if letter.get("text") == "7,8,9"]
  assert truncated[0]["line"] == 4 and "3 fields where the header has 6" in truncated[0]["reason"]
  n_events = read_log(raw / "events" / "part-00000.parquet", LogKind.EVENTS, config).num_rows
  assert c["events"] == n_events + 2  # the two good CSV rows are kept
  assert c["event_records"] == n_events + 5 and c["impression_records"] == c["impressions"] == 300


def test_a_malformed_line_in_a_large_csv_loses_no_other_row(tmp_path):
  """A line with a wrong field count in a CSV of several parser blocks (4 MiB each): every other line
  becomes a valid row, the bad line one dead letter with its line number (it used to lose every row of
  the blocks after it, counted as one rejected row)."""
  config = load_feature_config("synthetic-lbs")
  build("synthetic", str(tmp_path / "raw"), num_impressions=300)
  raw = tmp_path / "raw"
  events = read_log(raw / "events", LogKind.EVENTS, config).slice(0, 1)
  r = events.to_pylist()[0]
  line = f"{r['user_id']},{r['item_id']},{r['timestamp']},{r['behavior']},{r['category']},{r['cell']}"
  n = 300_000  # ~11 MB
  lines = ["user_id,item_id,timestamp,behavior,category,cell"] + [line] * n
  lines[150_001] = line.rsplit(",", 2)[0]  # truncated: line 150,002
  (raw / "events" / "big.csv").write_text("\n".join(lines) + "\n")
  summary = run_job(raw, tmp_path / "out", "synthetic-lbs")
  c = summary["counters"]
  n_events = read_log(raw / "events" / "part-00000.parquet", LogKind.EVENTS, config).num_rows
  assert c["rejected_rows"] == 1 and c["events"] == n_events + n - 1
  letter = json.loads(open(tf.io.gfile.glob(summary["rejected"])[0]).readline())
  assert letter["line"] == 150_002 and letter["file"].endswith("big.csv")


@pytest.mark.parametrize("problem, expected", [
    ("missing_column", r"i.csv: missing column\(s\) \['distance_km'\]"),
    ("empty_file", r"i.csv: empty file \(no header line\)"),
    ("no_valid_impression", r"no valid impression among 1 records"),
])
def test_meaningless_input_fails_and_publishes_nothing(tmp_path, problem, expected):
  from hemix_tf.data.contract import DataContractError
  config = load_feature_config("synthetic-lbs")
  build("synthetic", str(tmp_path / "raw"), num_impressions=50)
  raw = tmp_path / "raw"
  imp = read_log(raw / "impressions", LogKind.IMPRESSIONS, config)
  (raw / "impressions" / "part-00000.parquet").unlink()
  row = imp.slice(0, 1).to_pylist()[0]
  header = [n for n in imp.column_names if n != "distance_km" or problem != "missing_column"]
  values = ["|".join(row[n]) if isinstance(row[n], list) else str(row[n]) for n in header]
  text = ",".join(header) + "\n" + ",".join(values) + "\n"
  if problem == "no_valid_impression":
    text = text.replace(f",{row['timestamp']},", ",-5,", 1)
  (raw / "impressions" / "i.csv").write_text("" if problem == "empty_file" else text)
  with pytest.raises(DataContractError, match=expected):
    run_job(raw, tmp_path / "out", "synthetic-lbs")
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem, expected", [
    ("header_only", r"e.csv: no events rows below the header"),
    ("no_valid_event", r"no valid event among 1 records"),
])
def test_events_that_cannot_make_a_sequence_fail_and_publish_nothing(tmp_path, problem, expected):
  """Before: a header-only events file, or events that were all dead letters, gave examples whose every
  sequence was empty, exit 0."""
  from hemix_tf.data.contract import DataContractError
  build("synthetic", str(tmp_path / "raw"), num_impressions=50)
  events = tmp_path / "raw" / "events"
  header = ",".join(read_log(events, LogKind.EVENTS, load_feature_config("synthetic-lbs")).column_names)
  if problem == "header_only":
    (events / "e.csv").write_text(header + "\n")  # beside the good Parquet part
  else:
    for part in events.iterdir():
      part.unlink()
    (events / "e.csv").write_text(header + "\n" + "1,2,-5,click,3,4\n")  # a negative timestamp
  with pytest.raises(DataContractError, match=expected):
    run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  assert not (tmp_path / "out").exists()


def test_rerun_refuses_a_non_empty_output_and_overwrite_replaces_it_whole(tmp_path):
  """A second run into the same directory with another bucket count: refused without overwrite; with
  it, the directory holds exactly the new run's examples (old shards used to stay beside the new)."""
  build("synthetic", str(tmp_path / "raw"), num_impressions=300)
  first = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs", num_buckets=4)
  with pytest.raises(FileExistsError, match="is not empty: pass --overwrite"):
    run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs", num_buckets=2)
  second = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs", num_buckets=2, overwrite=True)
  config = load_feature_config("synthetic-lbs")
  written = {**read_examples(second["outputs"]["train"], config),
             **read_examples(second["outputs"]["eval"], config)}
  files = tf.io.gfile.glob(second["outputs"]["train"]) + tf.io.gfile.glob(second["outputs"]["eval"])
  count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
  assert count == len(written) == 300 == first["counters"]["impressions"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # no staging or beam-temp left


def test_the_summary_names_the_examples_from_any_working_directory(tmp_path, monkeypatch):
  """A relative --output_dir used to be recorded as given, so a tool run from another directory read
  no files (and the validation split failed with an IndexError on empty timestamps)."""
  monkeypatch.chdir(tmp_path)
  patterns = output_patterns("runs/out")
  assert patterns["train"] == str(tmp_path / "runs" / "out" / "train" / "part-*.tfrecord.gz")
  assert output_patterns("gs://bucket/out")["eval"] == "gs://bucket/out/eval/part-*.tfrecord.gz"
  with pytest.raises(FileNotFoundError, match="no example files match .*runs/out/train/part-"):
    read_timestamps(patterns["train"])


def test_make_dataset_reads_the_examples(tmp_path):
  config = load_feature_config("synthetic-lbs")
  build("synthetic", str(tmp_path / "raw"), num_impressions=500)
  summary = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  batch = next(iter(make_dataset(summary["outputs"]["train"], parse_spec(config), batch_size=32)))
  assert batch["click"].shape == (32,) and batch["item_tags"].dtype == tf.string
  lengths = batch["global_item_id"].row_lengths().numpy()
  assert lengths.max() <= config.sequence.global_length and lengths.mean() > 50
  assert np.all(batch["realtime_time_gap"].flat_values.numpy() > 0)


def test_examples_satisfy_the_curated_schema(tmp_path):
  """The checked-in schemas/<config>/examples.pbtxt (ImportSchemaGen's) accepts the job's examples
  and flags a violated domain."""
  import tensorflow_data_validation as tfdv
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  from hemix_tf.data.schemas import schema_path
  build("synthetic", str(tmp_path / "raw"), num_impressions=800)
  summary = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  stats = tfdv.generate_statistics_from_tfrecord(
      summary["outputs"]["train"], stats_options=tfdv.StatsOptions(),
      pipeline_options=__import__("apache_beam").options.pipeline_options.PipelineOptions(IN_MEMORY))
  schema = text_format.Parse(schema_path("synthetic-lbs", "examples").read_text(), schema_pb2.Schema())
  assert dict(tfdv.validate_statistics(stats, schema).anomaly_info) == {}
  tight = next(f for f in schema.feature if f.name == "global_item_id")
  tight.value_count.max = 3  # sequences are longer than that
  assert "global_item_id" in dict(tfdv.validate_statistics(stats, schema).anomaly_info)


def test_the_job_fails_when_an_impression_is_not_written(tmp_path, monkeypatch):
  """A run whose counters show an impression or event read but never grouped / written (a runner losing
  elements) raises instead of leaving an incomplete dataset that looks finished."""
  from pipelines import sequence_job
  whole = {name: 0 for name in sequence_job.COUNTERS} | {
      "impression_records": 10, "event_records": 50, "impressions": 10, "train_examples": 7,
      "eval_examples": 3, "events": 50, "events_grouped": 50}
  cfg = sequence_job.SequenceJobConfig(str(tmp_path / "i"), str(tmp_path / "e"), str(tmp_path / "out"), 0,
                                       "movielens", overwrite=True)
  monkeypatch.setattr(sequence_job, "run_pipeline", lambda *a: dict(whole))
  assert sequence_job.run(cfg)["counters"] == whole
  for lost in ({"train_examples": 6}, {"events_grouped": 49}, {"event_records": 51}):
    monkeypatch.setattr(sequence_job, "run_pipeline", lambda *a, lost=lost: whole | lost)
    with pytest.raises(RuntimeError, match="rows lost"):
      sequence_job.run(cfg)


def test_overwrite_never_removes_what_the_job_did_not_write(tmp_path, monkeypatch):
  """--overwrite into the dataset directory, an input, the working directory or a directory of other
  files: refused before any work, every file kept (each of these deleted inputs or the user's files)."""
  build("synthetic", str(tmp_path / "raw"), num_impressions=300)
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "todo.txt").write_text("mine")
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  monkeypatch.chdir(tmp_path / "notes")
  for out, reason in ((tmp_path / "raw", "overlaps the input"), (tmp_path / "raw" / "events" / "o", "overlaps the input"),
                      (tmp_path, "working directory"), (tmp_path / "notes", "working directory"),
                      (Path("."), "working directory")):
    with pytest.raises(FileExistsError, match=reason):
      run_job(tmp_path / "raw", out, "synthetic-lbs", overwrite=True)
  monkeypatch.chdir(tmp_path / "raw")
  with pytest.raises(FileExistsError, match="not an output of hemix-sequence-job"):
    run_job(tmp_path / "raw", tmp_path / "notes", "synthetic-lbs", overwrite=True)
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before
  assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_an_event_in_milliseconds_is_a_dead_letter_not_the_end_of_the_job(tmp_path):
  """Before: "timestamps must be below 2^34 seconds" from the sequence builder, the whole job failed
  without file, line or column."""
  build("synthetic", str(tmp_path / "raw"), num_impressions=100)
  events = read_log(tmp_path / "raw" / "events", LogKind.EVENTS, load_feature_config("synthetic-lbs"))
  row = events.slice(0, 1).to_pylist()[0]
  row["timestamp"] *= 1000
  (tmp_path / "raw" / "events" / "ms.csv").write_text(
      ",".join(events.column_names) + "\n" + ",".join(str(row[n]) for n in events.column_names) + "\n")
  summary = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  assert summary["counters"]["rejected_rows"] == 1 and summary["counters"]["events"] == events.num_rows
  letter = json.loads(open(tf.io.gfile.glob(summary["rejected"])[0]).readline())
  assert letter["line"] == 2 and "milliseconds?" in letter["reason"] and letter["file"].endswith("ms.csv")


def test_a_repeated_request_id_is_a_dead_letter_and_its_first_impression_an_example(tmp_path):
  """Before: the copied row was published as a second example of the same impression, without a word."""
  build("synthetic", str(tmp_path / "raw"), num_impressions=200)
  config = load_feature_config("synthetic-lbs")
  impressions = read_log(tmp_path / "raw" / "impressions", LogKind.IMPRESSIONS, config)
  pq.write_table(impressions.slice(5, 2), tmp_path / "raw" / "impressions" / "again.parquet")  # two copied rows
  summary = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs")
  c = summary["counters"]
  assert c["duplicate_impressions"] == 2 and c["train_examples"] + c["eval_examples"] == 200
  written = {**read_examples(summary["outputs"]["train"], config), **read_examples(summary["outputs"]["eval"], config)}
  assert len(written) == 200
  letters = [json.loads(line) for f in tf.io.gfile.glob(summary["rejected"]) for line in open(f)]
  assert sorted(letter["request_id"] for letter in letters) == sorted(impressions["request_id"].to_pylist()[5:7])
  assert all("repeated" in letter["reason"] for letter in letters)


@pytest.mark.parametrize("waves", [1, 2])
def test_a_request_id_shared_by_two_users_is_kept_for_the_earliest_impression(tmp_path, waves):
  """Before: a request_id copied into another user's impressions was published twice (repeats were
  found within a user's bucket only)."""
  build("synthetic", str(tmp_path / "raw"), num_impressions=200)
  config = load_feature_config("synthetic-lbs")
  impressions = read_log(tmp_path / "raw" / "impressions", LogKind.IMPRESSIONS, config)
  late, early = impressions.slice(5, 2).to_pylist()
  other = max(impressions["user_id"].to_pylist()) + 1  # a user of its own: another bucket, most likely
  copies = [dict(late, user_id=other, timestamp=late["timestamp"] + 1),  # loses to the original
            dict(early, user_id=other, timestamp=early["timestamp"] - 1)]  # wins: the original loses
  pq.write_table(pa.Table.from_pylist(copies, schema=impressions.schema),
                 tmp_path / "raw" / "impressions" / "again.parquet")
  summary = run_job(tmp_path / "raw", tmp_path / "out", "synthetic-lbs", waves=waves)
  c = summary["counters"]
  assert c["duplicate_impressions"] == 2 and c["train_examples"] + c["eval_examples"] == 200
  written = {**read_examples(summary["outputs"]["train"], config), **read_examples(summary["outputs"]["eval"], config)}
  assert len(written) == 200
  assert written[late["request_id"]]["user_id"] == late["user_id"]
  assert written[early["request_id"]]["user_id"] == other
  letters = [json.loads(line) for f in tf.io.gfile.glob(summary["rejected"]) for line in open(f)]
  assert sorted(letter["request_id"] for letter in letters) == sorted([late["request_id"], early["request_id"]])
  assert all("another user" in letter["reason"] for letter in letters)


def test_waves_build_the_same_examples_counters_and_dead_letters_as_one_pass(tmp_path, capsys):
  """`waves`: one read pass spilling to disk, then each wave builds its buckets (bounded local memory);
  the outputs equal one pass's: examples as a multiset, every counter, the dead letters."""
  from pipelines.sequence_job import SequenceJobConfig, run
  build("synthetic", str(tmp_path / "raw"), num_impressions=2000)
  raw = tmp_path / "raw"
  (raw / "events" / "extra.csv").write_text("user_id,item_id,timestamp,behavior,category,cell\n7,8,9\n"
                                            "7,8,-1,click,1,1\n")  # two dead letters
  manifest = read_manifest(raw)
  outputs = {}
  for waves in (1, 3):
    cfg = SequenceJobConfig(str(raw / "impressions"), str(raw / "events"), str(tmp_path / f"w{waves}"),
                            manifest["eval_start_timestamp"], "synthetic-lbs", num_buckets=8, waves=waves)
    summary = run(cfg, IN_MEMORY)
    records = {split: sorted(  # a proto's map fields may serialise in any order: compare them canonically
        tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True) for r in
        tf.data.TFRecordDataset(tf.io.gfile.glob(summary["outputs"][split]), compression_type="GZIP"))
        for split in ("train", "eval")}
    letters = sorted(line for f in tf.io.gfile.glob(summary["rejected"]) for line in open(f) if line.strip())
    outputs[waves] = (records, summary["counters"], letters)
  assert outputs[3] == outputs[1]
  assert outputs[1][1]["rejected_rows"] == 2 and outputs[1][1]["train_examples"] > 0
  assert not (tmp_path / "w3" / "_spill").exists()  # the spill is not published
  assert len(tf.io.gfile.glob(str(tmp_path / "w3" / "train" / "part-w*"))) == 3 * 8  # output_shards per wave
  assert "wave 3/3" in capsys.readouterr().err


def test_each_split_is_written_in_output_shards_files_of_whole_examples(tmp_path):
  """`output_shards` files per split, each example in one of them (a gzip file is read by one worker:
  with one file the Evaluator's second worker had nothing to read)."""
  from pipelines.sequence_job import SequenceJobConfig, run
  build("synthetic", str(tmp_path / "raw"), num_impressions=2000)
  raw = tmp_path / "raw"
  outputs = {}
  for shards in (1, 4):
    cfg = SequenceJobConfig(str(raw / "impressions"), str(raw / "events"), str(tmp_path / f"s{shards}"),
                            read_manifest(raw)["eval_start_timestamp"], output_shards=shards)
    summary = run(cfg, IN_MEMORY)
    files = tf.io.gfile.glob(summary["outputs"]["eval"])
    assert len(files) == shards
    per_file = [sorted(written_ids(f)) for f in files]
    assert all(per_file)  # 2,000 impressions spread over every file
    outputs[shards] = sorted(i for ids in per_file for i in ids)
  assert outputs[4] == outputs[1]


def test_an_example_is_written_to_the_same_file_by_every_run_and_ordered_canonically(tmp_path):
  """The file of an example is a function of its request_id (before: of its serialized bytes, whose
  feature map the encoder writes in another order each run, so two runs split the examples differently);
  `order_canonically` then fixes their order within each file, which Beam leaves to its bundles."""
  from hemix_tf.data.examples import order_canonically, request_id_hash
  from pipelines.sequence_job import SequenceJobConfig, run
  build("synthetic", str(tmp_path / "raw"), num_impressions=2000)
  raw = tmp_path / "raw"
  runs = []
  for i in range(2):
    cfg = SequenceJobConfig(str(raw / "impressions"), str(raw / "events"), str(tmp_path / f"run{i}"),
                            read_manifest(raw)["eval_start_timestamp"], output_shards=4)
    train = run(cfg, IN_MEMORY)["outputs"]["train"]
    files = sorted(tf.io.gfile.glob(train))
    written = [written_ids(f) for f in files]
    assert all(request_id_hash(r) % 4 == k for k, ids in enumerate(written) for r in ids)
    order_canonically(train)
    ordered = [written_ids(f) for f in files]
    assert [sorted(ids) for ids in ordered] == [sorted(ids) for ids in written]  # nothing lost or moved
    assert ordered == [sorted(ids, key=lambda r: (request_id_hash(r), r)) for ids in ordered]
    runs.append(ordered)
  assert runs[0] == runs[1]


def test_the_waves_read_pass_spills_rows_without_holding_them(tmp_path):
  """The FnApiRunner materialises a multi-input Flatten whole in memory: a Flatten of the two logs'
  reads before the spill held every validated row of the read pass (at 1M impressions a 3.4 GB peak,
  at 10M beyond the machine). The read pass has no such Flatten; its rows go from the read to the spill."""
  import apache_beam as beam
  from apache_beam.portability import common_urns
  from pipelines.sequence_job import SequenceJobConfig, spill_pipeline
  build("synthetic", str(tmp_path / "raw"), num_impressions=200)
  raw = tmp_path / "raw"
  cfg = SequenceJobConfig(str(raw / "impressions"), str(raw / "events"), str(tmp_path / "out"),
                          read_manifest(raw)["eval_start_timestamp"], waves=2)
  p = beam.Pipeline()
  spill_pipeline(p, cfg, str(tmp_path / "spill"))
  transforms = p.to_runner_api().components.transforms.values()
  flattens = [t.unique_name for t in transforms
              if t.spec.urn == common_urns.primitives.FLATTEN.urn and len(t.inputs) > 1]
  assert flattens == []
  spill = [t for t in transforms if t.unique_name == "Spill"][0]
  read = [t for t in transforms if t.unique_name == "Read"][0]
  assert set(spill.inputs.values()) <= set(read.outputs.values())


def test_a_bad_row_costs_a_few_vectorised_checks_not_one_per_row_of_its_chunk(tmp_path, monkeypatch):
  """The chunk with a bad row is bisected down to it: 2 bad rows among 4,096 take at most 2 x 2 x 12 + 1
  contract checks (row by row took 4,097: a job 44x slower with one bad row per chunk), and the rows and
  dead letters are those of row-by-row validation."""
  from hemix_tf.data.io import raw_batches
  from pipelines import sequence_job
  config = load_feature_config("synthetic-lbs")
  lines = ["user_id,item_id,timestamp,behavior,category,cell"]
  lines += [f"{i % 50},{i},{1_700_000_000 + i},click,1,2" for i in range(4096)]
  lines[1001] = "3,1000,soon,click,1,2"  # data row 1000 (line 1002)
  lines[3001] = "3,3000,1700003000,teleport,1,2"  # data row 3000
  (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
  (table, source), = raw_batches(tmp_path / "events.csv", 8192)
  calls = []
  conform = sequence_job.conform
  monkeypatch.setattr(sequence_job, "conform", lambda *a: calls.append(a[0].num_rows) or conform(*a))
  good, rejected = sequence_job.ReadAndValidate(config, 4, 8192)._validate(table, LogKind.EVENTS, source)
  assert len(calls) <= 2 * 2 * 12 + 1
  assert good.num_rows == 4094 and good["item_id"].to_pylist() == [i for i in range(4096) if i not in (1000, 3000)]
  letters = [json.loads(r) for r in rejected]
  assert [(x["row"], x["line"]) for x in letters] == [(1000, 1002), (3000, 3002)]
  assert "column 'timestamp'" in letters[0]["reason"] and "column 'behavior'" in letters[1]["reason"]
