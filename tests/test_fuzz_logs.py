"""Randomly corrupted event logs (CSV and Parquet) through the sequence job's reader: every record ends
in exactly one place, a valid row or a dead letter with its line, and no valid row is lost."""
import json
import tempfile
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings, strategies as st

from hemix_tf.data.feature_config import load_feature_config
from pipelines.sequence_job import REJECTED, ReadAndValidate

CONFIG = load_feature_config("synthetic-lbs")
HEADER = ["user_id", "item_id", "timestamp", "behavior", "category", "cell"]
ROWS = 60
BEHAVIORS = ("click", "navigate", "order")


def _row(i: int) -> list:
  """Row i: its item id is i, so a row is recognised after the read."""
  return [i % 7, i, 1_767_225_600 + 60 * i, BEHAVIORS[i % 3], i % 40, i % 400]


# A corruption of one CSV line's fields (None: the line breaks the CSV format itself).
CSV_CORRUPTIONS = {
    "truncated": lambda f: f[:4],
    "extra field": lambda f: f + ["9"],
    "not an integer": lambda f: [f[0], "x" + f[1], *f[2:]],
    "negative timestamp": lambda f: [f[0], f[1], "-5", *f[3:]],
    "unknown behaviour": lambda f: [*f[:3], "teleport", *f[4:]],
    "no user": lambda f: ["", *f[1:]],
    # issue 40's cases: each a dead letter of its own line, whatever its neighbours
    "unterminated quote": lambda f: [f[0], '"' + f[1], *f[2:]],
    "beyond int64": lambda f: [f[0], "99999999999999999999", *f[2:]],
    "milliseconds": lambda f: [f[0], f[1], f[2] + "000", *f[3:]],
    "a null string is a value": lambda f: [*f[:4], "NA", f[5]],  # not missing: not an integer category
}
# Parquet is typed: only values can be wrong.
PARQUET_CORRUPTIONS = {
    "negative timestamp": lambda r: {**r, "timestamp": -5},
    "unknown behaviour": lambda r: {**r, "behavior": "teleport"},
    "no user": lambda r: {**r, "user_id": None},
    "no timestamp": lambda r: {**r, "timestamp": None},
}


def _read(file: str, unit_index: int) -> tuple[list[int], list[dict]]:
  """The item ids of the valid rows and the dead letters of one read unit."""
  good, letters = [], []
  for out in ReadAndValidate(CONFIG, num_buckets=4, batch_rows=16).process(("events", file, unit_index)):
    if isinstance(out, beam.pvalue.TaggedOutput):
      assert out.tag == REJECTED
      letters.append(json.loads(out.value))
    else:
      good += out[1][1]["item_id"].to_pylist()
  return good, letters


@settings(max_examples=60, deadline=None)
@given(corrupt=st.dictionaries(st.integers(0, ROWS - 1), st.sampled_from(sorted(CSV_CORRUPTIONS)), max_size=12))
def test_fuzzed_csv_every_line_ends_in_one_place(corrupt):
  lines = [",".join(HEADER)]
  for i in range(ROWS):
    fields = [str(v) for v in _row(i)]
    lines.append(",".join(CSV_CORRUPTIONS[corrupt[i]](fields) if i in corrupt else fields))
  with tempfile.TemporaryDirectory() as d:
    file = str(Path(d) / "events.csv")
    Path(file).write_text("\n".join(lines) + "\n")
    good, letters = _read(file, -1)
  assert sorted(good) == [i for i in range(ROWS) if i not in corrupt]  # no valid row lost or duplicated
  assert len(good) + len(letters) == ROWS
  assert sorted(letter["line"] for letter in letters) == sorted(i + 2 for i in corrupt)  # header = line 1
  assert all(letter["file"] == file and letter["reason"] for letter in letters)


@settings(max_examples=25, deadline=None)
@given(corrupt=st.dictionaries(st.integers(0, ROWS - 1), st.sampled_from(sorted(PARQUET_CORRUPTIONS)),
                               max_size=12))
def test_fuzzed_parquet_every_row_ends_in_one_place(corrupt):
  rows = [dict(zip(HEADER, _row(i))) for i in range(ROWS)]
  rows = [PARQUET_CORRUPTIONS[corrupt[i]](r) if i in corrupt else r for i, r in enumerate(rows)]
  schema = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("timestamp", pa.int64()),
                      ("behavior", pa.string()), ("category", pa.int64()), ("cell", pa.int64())])
  with tempfile.TemporaryDirectory() as d:
    file = str(Path(d) / "events.parquet")
    pq.write_table(pa.Table.from_pylist(rows, schema), file, row_group_size=ROWS)
    good, letters = _read(file, 0)
  assert sorted(good) == [i for i in range(ROWS) if i not in corrupt]
  assert len(good) + len(letters) == ROWS
  assert sorted(letter["row"] for letter in letters) == sorted(corrupt)
