"""The raw-log contract: round trips through Parquet and CSV, and clear errors on bad input."""
import bz2
import gzip

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import zstandard

from hemix_tf.data.contract import MULTI_VALUE_SEPARATOR, DataContractError, LogKind, contract_schema
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.io import LogWriter, iter_log, raw_batches, read_log
from pipelines.sequence_job import match_logs, open_with_beam, plan_reads
from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator

CONFIG = load_feature_config("synthetic-lbs")


@pytest.fixture(scope="module")
def logs():
  imp, ev = next(SyntheticGenerator(SyntheticConfig(num_impressions=300), CONFIG).blocks())
  return {LogKind.IMPRESSIONS: imp, LogKind.EVENTS: ev}


def _to_csv(table: pa.Table, path, delimiter=","):
  columns = {}
  for name in table.column_names:
    col = table[name]
    if pa.types.is_list(col.type):
      col = pa.array([None if v is None else MULTI_VALUE_SEPARATOR.join(v) for v in col.to_pylist()])
    columns[name] = col
  pa_csv.write_csv(pa.table(columns), path, write_options=pa_csv.WriteOptions(delimiter=delimiter))


@pytest.mark.parametrize("kind", list(LogKind))
def test_parquet_round_trip(tmp_path, logs, kind):
  with LogWriter(tmp_path / "x.parquet", kind, CONFIG) as w:
    w.write(logs[kind])
  back = read_log(tmp_path / "x.parquet", kind, CONFIG)
  assert back.schema == contract_schema(kind, CONFIG)
  assert back.equals(logs[kind])


def _compressed(data: bytes, suffix: str) -> bytes:
  suffix = suffix.lower()
  if suffix.endswith(".gz"):  # two gzip members, as `cat a.gz b.gz` or a parallel compressor writes
    return gzip.compress(data[:len(data) // 2]) + gzip.compress(data[len(data) // 2:])
  if suffix.endswith(".bz2"):
    return bz2.compress(data)
  if suffix.endswith(".zst"):
    return zstandard.ZstdCompressor().compress(data)
  return data


@pytest.mark.parametrize("kind", list(LogKind))
@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t"), (".csv.gz", ","), (".TSV.GZ", "\t"),
                                               (".CSV", ","), (".csv.bz2", ","), (".csv.zst", ",")])
def test_csv_round_trip_in_every_documented_compression_locally_and_through_beam(tmp_path, logs, kind, suffix,
                                                                                 delimiter):
  path = tmp_path / "logs" / f"x{suffix}"
  path.parent.mkdir()
  _to_csv(logs[kind], tmp_path / "plain", delimiter)
  path.write_bytes(_compressed((tmp_path / "plain").read_bytes(), suffix))
  back = read_log(path, kind, CONFIG)
  assert back.to_pylist() == logs[kind].to_pylist()
  # The sequence job reads through Beam's file systems (Beam's own CompressedFile broke pyarrow).
  rows = sum(t.num_rows for t, _ in raw_batches(str(path), opener=open_with_beam))
  assert rows == logs[kind].num_rows and match_logs(str(path.parent)) == [str(path)]
  assert plan_reads(str(path.parent), kind, CONFIG) == [(kind.value, str(path), -1)]  # its quoted header


def test_a_directory_with_a_file_of_unknown_format_is_refused_by_name(tmp_path, logs):
  _to_csv(logs[LogKind.EVENTS], tmp_path / "part-0.csv")
  (tmp_path / "_SUCCESS").write_text("")  # Spark's markers are skipped
  (tmp_path / ".part-0.csv.crc").write_text("")
  assert read_log(tmp_path, LogKind.EVENTS, CONFIG).num_rows == logs[LogKind.EVENTS].num_rows
  assert match_logs(str(tmp_path)) == [str(tmp_path / "part-0.csv")]
  (tmp_path / "part-1.csv.lz4").write_bytes(b"x")
  for read in (lambda: read_log(tmp_path, LogKind.EVENTS, CONFIG), lambda: match_logs(str(tmp_path))):
    with pytest.raises(DataContractError, match="part-1.csv.lz4: not a log file"):
      read()


def test_small_batches_cover_every_row(tmp_path, logs):
  with LogWriter(tmp_path / "x.parquet", LogKind.EVENTS, CONFIG) as w:
    w.write(logs[LogKind.EVENTS])
  tables = list(iter_log(tmp_path, LogKind.EVENTS, CONFIG, batch_rows=7))
  assert sum(t.num_rows for t in tables) == logs[LogKind.EVENTS].num_rows
  assert max(t.num_rows for t in tables) == 7


EVENTS_HEADER = "user_id,item_id,timestamp,behavior,category,cell\n"


@pytest.mark.parametrize("rows, expected", [
    ("1,2,100,click,3,4\n1,2,abc,click,3,4\n", r"row 1 \(line 3\), column 'timestamp': 'abc' is not"),
    ("1,2,100,click,3,4\n1,2,-5,click,3,4\n", r"row 1 \(line 3\), column 'timestamp': timestamp must be >= 0"),
    ("1,2,,click,3,4\n", r"row 0 \(line 2\), column 'timestamp': missing value"),
    ("1,2,100,click,3,4\n1,2,100,teleport,3,4\n", r"row 1 \(line 3\), column 'behavior': behavior must be"),
    ("1,x2,100,click,3,4\n", r"row 0 \(line 2\), column 'item_id'"),
    ("1,2,100,click,3.5,4\n", r"row 0 \(line 2\), column 'category': '3.5' is not a valid int64"),
])
def test_bad_event_rows_name_file_row_and_column(tmp_path, rows, expected):
  path = tmp_path / "events.csv"
  path.write_text(EVENTS_HEADER + rows)
  with pytest.raises(DataContractError, match=expected) as err:
    read_log(path, LogKind.EVENTS, CONFIG)
  assert str(path) in str(err.value)


def test_missing_column(tmp_path):
  path = tmp_path / "events.csv"
  path.write_text("user_id,item_id,timestamp,behavior,category\n1,2,3,click,4\n")
  with pytest.raises(DataContractError, match=r"events.csv: missing column\(s\) \['cell'\]"):
    read_log(path, LogKind.EVENTS, CONFIG)


@pytest.mark.parametrize("content", ["", EVENTS_HEADER])
def test_empty_csv(tmp_path, content):
  path = tmp_path / "events.csv"
  path.write_text(content)
  with pytest.raises(DataContractError, match="events.csv: empty file"):
    read_log(path, LogKind.EVENTS, CONFIG)


def test_empty_parquet(tmp_path):
  path = tmp_path / "events.parquet"
  pq.write_table(contract_schema(LogKind.EVENTS, CONFIG).empty_table(), path)
  with pytest.raises(DataContractError, match="events.parquet: empty file"):
    read_log(path, LogKind.EVENTS, CONFIG)


def test_parquet_wrong_type_names_row(tmp_path, logs):
  table = logs[LogKind.EVENTS]
  ts = table["timestamp"].to_pylist()
  ts[5] = 1.5
  bad = table.set_column(2, "timestamp", pa.array(ts, pa.float64()))
  pq.write_table(bad, tmp_path / "e.parquet")
  with pytest.raises(DataContractError, match=r"e.parquet, row 5, column 'timestamp': '1.5' is not"):
    read_log(tmp_path / "e.parquet", LogKind.EVENTS, CONFIG)


@pytest.mark.parametrize("column, value, expected", [
    ("click", 2, "label must be 0 or 1"),
    ("conversion", 1, "conversion = 1 needs click = 1"),
    ("request_id", "", "request_id must not be empty"),
    ("distance_km", float("nan"), "a dense feature must be finite"),
    ("item_rating", float("inf"), "a dense feature must be finite"),
    ("distance_km", float("-inf"), "a dense feature must be finite"),
])
def test_bad_impression_values(tmp_path, logs, column, value, expected):
  table = logs[LogKind.IMPRESSIONS]
  row = table["click"].to_pylist().index(0)
  values = table[column].to_pylist()
  values[row] = value
  bad = table.set_column(table.column_names.index(column), column, pa.array(values, table[column].type))
  pq.write_table(bad, tmp_path / "i.parquet")
  with pytest.raises(DataContractError, match=rf"row {row}, column '{column}': {expected}"):
    read_log(tmp_path / "i.parquet", LogKind.IMPRESSIONS, CONFIG)


def test_missing_feature_values_are_kept_as_null(tmp_path):
  path = tmp_path / "events.csv"
  path.write_text(EVENTS_HEADER + "1,2,100,click,,4\n")
  assert read_log(path, LogKind.EVENTS, CONFIG)["category"].to_pylist() == [None]


def test_unsupported_and_missing_paths(tmp_path):
  (tmp_path / "x.json").write_text("{}")
  with pytest.raises(DataContractError, match="unsupported file type"):
    read_log(tmp_path / "x.json", LogKind.EVENTS, CONFIG)
  with pytest.raises(DataContractError, match="no such file"):
    read_log(tmp_path / "nope.csv", LogKind.EVENTS, CONFIG)
  with pytest.raises(DataContractError, match="x.json: not a log file"):
    read_log(tmp_path, LogKind.EVENTS, CONFIG)
  (tmp_path / "x.json").unlink()
  with pytest.raises(DataContractError, match="no log files"):
    read_log(tmp_path, LogKind.EVENTS, CONFIG)


@pytest.mark.parametrize("value", ["NA", "N/A", "null", "NULL", "nan", "None", "#N/A", "-NaN"])
def test_only_an_empty_csv_cell_is_missing_every_other_string_is_a_value(tmp_path, logs, value):
  table = logs[LogKind.IMPRESSIONS]
  genders = table["gender"].to_pylist()
  genders[3], genders[4] = value, None  # a value pyarrow would take for null by default, and a missing one
  _to_csv(table.set_column(table.column_names.index("gender"), "gender", pa.array(genders)), tmp_path / "i.csv")
  lines = (tmp_path / "i.csv").read_text().splitlines()
  lines[4] = lines[4].replace(f'"{value}"', value)  # unquoted, as most exports write it
  (tmp_path / "i.csv").write_text("\n".join(lines) + "\n")
  back = read_log(tmp_path / "i.csv", LogKind.IMPRESSIONS, CONFIG)["gender"].to_pylist()
  assert back[3] == value and back[4] is None


def test_a_non_finite_dense_value_in_a_csv_is_a_bad_row_not_a_missing_value(tmp_path, logs):
  table = logs[LogKind.IMPRESSIONS]
  _to_csv(table, tmp_path / "plain.csv")
  lines = (tmp_path / "plain.csv").read_text().splitlines()
  column = lines[0].split(",").index('"distance_km"')
  fields = lines[3].split(",")
  fields[column] = "nan"
  (tmp_path / "i.csv").write_text("\n".join(lines[:3] + [",".join(fields)] + lines[4:]) + "\n")
  with pytest.raises(DataContractError, match=r"\(line 4\), column 'distance_km': a dense feature must be finite"):
    read_log(tmp_path / "i.csv", LogKind.IMPRESSIONS, CONFIG)


@pytest.mark.parametrize("bad_line", ['1,"2,3', '"1,2,3', '1,2,"3'])
def test_an_unterminated_quote_is_one_dead_letter_and_the_next_line_is_read(tmp_path, bad_line):
  """Before: the parser read every following line into the open quoted field (1,899 of 2,000 rows of a
  file vanished into one dead letter, exit 0)."""
  body = "".join(f'{i},"a{i}",{i}\n' for i in range(2000))
  (tmp_path / "x.csv").write_text("a,b,c\n" + body.replace('7,"a7",7\n', bad_line + "\n"))
  batches = list(raw_batches(str(tmp_path / "x.csv")))
  rows = sum(t.num_rows for t, _ in batches)
  invalid = [i for _, s in batches for i in s.invalid]
  assert rows == 1999 and [(i.line, i.text) for i in invalid] == [(9, bad_line)]
  assert "not closed" in invalid[0].reason
  last = batches[-1]
  assert last[1].line(last[0].num_rows - 1) == 2001  # the rows after it keep their line numbers


def test_quotes_the_parser_reads_as_text_pass(tmp_path):
  (tmp_path / "x.csv").write_text('a,b,c\n1,5" screen,2\n3,"say ""hi""",4\n5,"x,y",6\n')
  table, source = next(raw_batches(str(tmp_path / "x.csv")))
  assert table["b"].to_pylist() == ['5" screen', 'say "hi"', "x,y"] and not source.invalid


@pytest.mark.parametrize("unit, tz", [("s", None), ("ms", None), ("us", "UTC"), ("ns", None)])
def test_a_parquet_timestamp_column_is_read_as_seconds_since_epoch(tmp_path, logs, unit, tz):
  """What Spark and pandas write; before, every row of such an events file was a dead letter and the
  job published examples with empty sequences, exit 0."""
  events = logs[LogKind.EVENTS]
  seconds = events["timestamp"].to_numpy()
  per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
  stamped = pa.array(seconds * per_second + per_second // 2, pa.timestamp(unit, tz=tz))  # half a second on
  table = events.set_column(events.column_names.index("timestamp"), "timestamp", stamped)
  pq.write_table(table, tmp_path / "e.parquet")
  assert read_log(tmp_path / "e.parquet", LogKind.EVENTS, CONFIG)["timestamp"].to_pylist() == seconds.tolist()


@pytest.mark.parametrize("value, expected", [
    ("99999999999999999999", "is out of the int64 range"),
    ("9223372036854775808", "is out of the int64 range"),  # 2^63
    ("+0", None), ("+12", None)])
def test_integers_beyond_int64_are_bad_rows_naming_row_and_column_and_a_plus_sign_is_a_sign(tmp_path, value,
                                                                                          expected):
  """Before: the cast's ArrowInvalid killed the job without file, row or column, "+0" included."""
  (tmp_path / "e.csv").write_text(EVENTS_HEADER + f"1,2,3,click,4,5\n1,2,{value},click,4,5\n")
  if expected:
    with pytest.raises(DataContractError, match=rf"e.csv, row 1 \(line 3\), column 'timestamp': '{value}' {expected}"):
      read_log(tmp_path / "e.csv", LogKind.EVENTS, CONFIG)
  else:
    assert read_log(tmp_path / "e.csv", LogKind.EVENTS, CONFIG)["timestamp"].to_pylist() == [3, int(value)]


def test_a_header_naming_a_column_twice_is_one_line_naming_file_and_column(tmp_path):
  (tmp_path / "e.csv").write_text("user_id,item_id,timestamp,behavior,category,cell,item_id\n1,2,3,click,4,5,6\n")
  for read in (lambda: read_log(tmp_path / "e.csv", LogKind.EVENTS, CONFIG),
               lambda: plan_reads(str(tmp_path), LogKind.EVENTS, CONFIG)):
    with pytest.raises(DataContractError, match="e.csv: line 1: column 'item_id' appears twice in the header"):
      read()


def test_bytes_that_are_not_utf8_name_file_line_and_column_and_a_bom_is_no_part_of_a_name(tmp_path):
  lines = [f"{u},2,{100 + u},click,4,5\n".encode() for u in range(300)]
  lines[200] = b"1,2,3,cl\xffick,4,5\n"
  (tmp_path / "e.csv").write_bytes(EVENTS_HEADER.encode() + b"".join(lines))
  with pytest.raises(DataContractError, match="e.csv, line 202, column 'behavior': .*invalid UTF8"):
    read_log(tmp_path / "e.csv", LogKind.EVENTS, CONFIG)
  (tmp_path / "e.csv").write_bytes(b"\xef\xbb\xbf" + EVENTS_HEADER.encode() + lines[0])
  assert read_log(tmp_path / "e.csv", LogKind.EVENTS, CONFIG).num_rows == 1
