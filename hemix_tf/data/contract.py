"""The raw-log data contract: Arrow schemas of the impression and behaviour-event logs, and validation.

Impressions (one row per shown item):  request_id, user_id, item_id, timestamp, click, conversion,
  the config's user / item / context features, the config's passthrough columns.
Events (one row per behaviour):         user_id, item_id, timestamp, behavior, the config's side info.

`conform` turns a table read from Parquet or CSV into exactly the contract schema, or raises a
`DataContractError` that names the file, the row (and the CSV line) and the column. Nothing is dropped:
a row that cannot be read stops the read. Feature columns may be null (a missing feature value); the
contract columns may not.
"""
from __future__ import annotations

import dataclasses
import enum
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hemix_tf.data.feature_config import (BEHAVIOR, ITEM_ID, LABELS, REQUEST_ID, TIMESTAMP, USER_ID,
                                          FeatureConfig, FeatureKind)

MULTI_VALUE_SEPARATOR = "|"  # how a multi-valued feature is written in one CSV cell

ARROW_TYPES = {
    FeatureKind.CATEGORICAL_ID: pa.int64(),
    FeatureKind.CATEGORICAL_STRING: pa.string(),
    FeatureKind.DENSE: pa.float32(),
    FeatureKind.MULTI_VALUED: pa.list_(pa.string()),
}


class LogKind(str, enum.Enum):
  IMPRESSIONS = "impressions"
  EVENTS = "events"


class DataContractError(ValueError):
  """Bad input: the message names the file, the row (and line) and the column."""


@dataclasses.dataclass(frozen=True)
class InvalidLine:
  """A CSV line the parser could not split into the header's fields: a dead letter, the read goes on."""
  line: int  # 1-based physical line of the file (the header is line 1)
  text: str
  reason: str


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a batch of rows came from, to name it in errors."""
  path: str
  first_row: int = 0  # 0-based index of the batch's first data row in the file
  header_lines: int | None = None  # CSV: lines before the first data row; None for Parquet
  skipped_lines: tuple[int, ...] = ()  # CSV: sorted lines skipped as invalid so far (for line numbers)
  invalid: tuple[InvalidLine, ...] = ()  # CSV: invalid lines found since the previous batch

  def line(self, row: int) -> int:
    """The physical CSV line of the batch's `row`: the data rows plus the header and skipped lines."""
    line = self.first_row + row + self.header_lines + 1
    for skipped in self.skipped_lines:
      if skipped > line:
        break
      line += 1
    return line

  def where(self, row: int | None = None, column: str | None = None) -> str:
    parts = [self.path]
    if row is not None:
      r = self.first_row + row
      parts.append(f"row {r}" + (f" (line {self.line(row)})" if self.header_lines is not None else ""))
    if column is not None:
      parts.append(f"column '{column}'")
    return ", ".join(parts)


# Seconds; the sequence builder packs timestamps in 34 bits (hemix_tf/data/sequences.py): a later one,
# a timestamp in milliseconds most likely, is a bad row here instead of failing the whole job there.
MAX_TIMESTAMP = 1 << 34


def contract_schema(kind: LogKind, config: FeatureConfig) -> pa.Schema:
  """The Arrow schema a conformed table has (column order included)."""
  if kind == LogKind.IMPRESSIONS:
    fields = [pa.field(REQUEST_ID, pa.string(), nullable=False),
              pa.field(USER_ID, pa.int64(), nullable=False),
              pa.field(ITEM_ID, pa.int64(), nullable=False),
              pa.field(TIMESTAMP, pa.int64(), nullable=False)]
    fields += [pa.field(label, pa.int64(), nullable=False) for label in LABELS]
    fields += [pa.field(f.name, ARROW_TYPES[f.kind]) for f in config.features
               if f.name not in (USER_ID, ITEM_ID)]
    fields += [pa.field(name, pa.float64()) for name in config.passthrough]
  else:
    fields = [pa.field(USER_ID, pa.int64(), nullable=False),
              pa.field(ITEM_ID, pa.int64(), nullable=False),
              pa.field(TIMESTAMP, pa.int64(), nullable=False),
              pa.field(BEHAVIOR, pa.string(), nullable=False)]
    fields += [pa.field(f.name, ARROW_TYPES[f.kind]) for f in config.sequence.side_info]
  return pa.schema(fields)


_INT_RE = r"^\s*[+-]?\d+(\.0*)?\s*$"
_FLOAT_RE = r"^\s*[+-]?((\d+\.?\d*)|(\.\d+))([eE][+-]?\d+)?\s*$|^\s*[+-]?(nan|inf|NaN|Inf)\s*$"


def _first(mask) -> int:
  return int(np.flatnonzero(np.asarray(mask))[0])


def _convert(col: pa.Array, target: pa.DataType, source: Source, name: str) -> pa.Array:
  """Casts one column to its contract type; the first value that cannot be cast is an error."""
  if col.type == target:
    return col
  if pa.types.is_null(col.type):  # an all-empty CSV column
    return pa.nulls(len(col), target)
  if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
    col = col.cast(pa.string())
    if pa.types.is_string(target):
      return col
    if pa.types.is_list(target):
      split = pc.split_pattern(col, MULTI_VALUE_SEPARATOR)
      empty = pc.fill_null(pc.equal(col, ""), False)
      return pc.if_else(empty, pa.scalar([], target), split).cast(target)
    pattern = _INT_RE if pa.types.is_integer(target) else _FLOAT_RE
    bad = pc.fill_null(pc.invert(pc.match_substring_regex(col, pattern)), False)
    if pc.any(bad).as_py():
      i = _first(bad)
      raise DataContractError(f"{source.where(i, name)}: '{col[i].as_py()}' is not a valid {target}")
    if pa.types.is_integer(target):
      # Drop a ".0" suffix instead of going through float64: 64-bit ids keep every digit; and a "+".
      digits = pc.replace_substring_regex(pc.replace_substring_regex(
          pc.utf8_trim_whitespace(col), r"\.0*$", ""), r"^\+", "")
      try:
        return pc.cast(digits, target)
      except pa.ArrowInvalid:  # a value beyond the type's range: name the first
        info = np.iinfo(target.to_pandas_dtype())
        i = next(i for i, v in enumerate(digits.to_pylist()) if v is not None and not info.min <= int(v) <= info.max)
        raise DataContractError(f"{source.where(i, name)}: '{col[i].as_py()}' is out of the {target} range") from None
    return pc.cast(pc.utf8_trim_whitespace(col), target)
  if pa.types.is_timestamp(col.type) and pa.types.is_integer(target):
    # A Parquet timestamp (what Spark and pandas write): its unit says how to make seconds since epoch.
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[col.type.unit]
    return pc.cast(pc.divide(pc.cast(col, pa.int64()), per_second), target)  # whole seconds (>= 0 checked)
  numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
  if numeric and (pa.types.is_integer(target) or pa.types.is_floating(target)):
    try:
      return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      as_float = pc.cast(col, pa.float64())
      bad = pc.fill_null(pc.not_equal(as_float, pc.floor(as_float)), True) if pa.types.is_integer(target) \
          else pc.is_null(as_float)
      i = _first(pc.fill_null(bad, False)) if pc.any(bad).as_py() else 0
      raise DataContractError(f"{source.where(i, name)}: '{col[i].as_py()}' is not a valid {target}") from None
  if pa.types.is_list(col.type) and pa.types.is_list(target):
    return col.cast(target)
  raise DataContractError(f"{source.where(column=name)}: has type {col.type}, expected {target}")


def conform(table: pa.Table, kind: LogKind, config: FeatureConfig, source: Source) -> pa.Table:
  """Validates `table` and returns it with exactly the contract schema of `kind`."""
  schema = contract_schema(kind, config)
  missing = [n for n in schema.names if n not in table.column_names]
  if missing:
    raise DataContractError(f"{source.where()}: missing column(s) {missing}; "
                            f"the {kind.value} contract needs {schema.names}")
  extra = [n for n in table.column_names if n not in schema.names]
  if extra:
    logging.warning("%s: ignoring column(s) %s that the '%s' config does not name",
                    source.where(), extra, config.name)
  columns = []
  for field in schema:
    col = table.column(field.name).combine_chunks()
    col = _convert(col, field.type, source, field.name)
    if not field.nullable and col.null_count:
      raise DataContractError(f"{source.where(_first(col.is_null()), field.name)}: missing value")
    columns.append(col)
  out = pa.Table.from_arrays(columns, schema=schema)
  _check_values(out, kind, config, source)
  return out


def _check_values(table: pa.Table, kind: LogKind, config: FeatureConfig, source: Source) -> None:
  def fail_where(mask, column: str, reason: str) -> None:
    mask = pc.fill_null(mask, False)
    if pc.any(mask).as_py():
      i = _first(mask)
      raise DataContractError(f"{source.where(i, column)}: {reason} (got {table[column][i].as_py()!r})")

  fail_where(pc.less(table[TIMESTAMP], 0), TIMESTAMP, "timestamp must be >= 0 (seconds since epoch, UTC)")
  fail_where(pc.greater_equal(table[TIMESTAMP], MAX_TIMESTAMP), TIMESTAMP,
             "timestamp after the year 2514: milliseconds? (seconds since epoch, UTC, expected)")
  if kind == LogKind.IMPRESSIONS:
    for label in LABELS:
      fail_where(pc.invert(pc.is_in(table[label], pa.array([0, 1]))), label, "label must be 0 or 1")
    fail_where(pc.greater(table["conversion"], table["click"]), "conversion",
               "conversion = 1 needs click = 1")
    fail_where(pc.equal(table[REQUEST_ID], ""), REQUEST_ID, "request_id must not be empty")
    for f in config.features:  # NaN / inf would pass every later gate and train on `loss nan`
      if f.kind == FeatureKind.DENSE:
        fail_where(pc.invert(pc.is_finite(table[f.name])), f.name,
                   "a dense feature must be finite (leave it empty for a missing value)")
  else:
    allowed = pa.array(config.sequence.behaviors)
    fail_where(pc.invert(pc.is_in(table[BEHAVIOR], allowed)), BEHAVIOR,
               f"behavior must be one of {list(config.sequence.behaviors)}")
