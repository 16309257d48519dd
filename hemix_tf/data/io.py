"""Streaming, validated readers of the raw logs (Parquet, CSV / TSV, optionally compressed) and the writer.

Every batch that leaves `iter_log` has passed `contract.conform`: it has the contract schema exactly, or
the read stopped with a `DataContractError` naming the file, row (line) and column. We read with pyarrow
rather than tensorflow-io: tensorflow-io 0.37.1 (its last release) cannot load its ops under TF 2.21.
"""
from __future__ import annotations

import bz2
import gzip
import io
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import zstandard  # Beam's own dependency

from hemix_tf.data.contract import DataContractError, InvalidLine, LogKind, Source, conform, contract_schema
from hemix_tf.data.feature_config import FeatureConfig

# The documented formats: Parquet, or CSV / TSV as they are or compressed; suffixes in any case.
TABLE_SUFFIXES = (".parquet", ".csv", ".tsv")
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
FORMATS = "Parquet (.parquet), CSV (.csv) or TSV (.tsv), the text ones optionally .gz / .bz2 / .zst"
DEFAULT_BATCH_ROWS = 1 << 16


def log_format(path: str) -> tuple[str, str | None] | None:
  """(table suffix, compression or None) of a log file's name, any case; None: not a log format."""
  name = str(path).rsplit("/", 1)[-1].lower()
  compression = next((c for suffix, c in COMPRESSIONS.items() if name.endswith(suffix)), None)
  if compression:
    name = name[:name.rindex(".")]
  table = next((t for t in TABLE_SUFFIXES if name.endswith(t)), None)
  if table is None or (table == ".parquet" and compression):
    return None
  return table, compression


def is_hidden(path: str) -> bool:
  """Hadoop's and Spark's marker files (`_SUCCESS`, `.part-0.crc`): never logs, skipped in directories."""
  return str(path).rstrip("/").rsplit("/", 1)[-1].startswith((".", "_"))


def select_logs(paths: list[str], where: str) -> list[str]:
  """The log files among the files of a directory (or a pattern's matches), sorted: marker files are
  skipped, any other file that is not a log format fails, named, so that no rows are silently left out."""
  files = sorted(str(p) for p in paths if not is_hidden(p))
  unknown = [f for f in files if log_format(f) is None]
  if unknown:
    raise DataContractError(f"{unknown[0]}: not a log file ({FORMATS}); move it out of {where}"
                            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
  if not files:
    raise DataContractError(f"{where}: no log files ({FORMATS})")
  return files


def log_files(path: str | Path) -> list[Path]:
  """The log files at `path`: the file itself, or a directory's files (`select_logs`)."""
  path = Path(path)
  if path.is_dir():
    return [Path(f) for f in select_logs([str(p) for p in path.iterdir() if p.is_file()], str(path))]
  if not path.exists():
    raise DataContractError(f"{path}: no such file or directory")
  if log_format(str(path)) is None:
    raise DataContractError(f"{path}: unsupported file type; expected {FORMATS}")
  return [path]


class _Decompressed(io.BufferedReader):
  """A decompressing reader that also closes the file under it."""

  def __init__(self, stream, raw: BinaryIO):
    super().__init__(stream)
    self._raw = raw

  def close(self) -> None:
    try:
      super().close()
    finally:
      self._raw.close()


def decompressing(open_raw: Callable[[str], BinaryIO]) -> Opener:
  """An Opener over `open_raw` (path -> the file's bytes as stored, e.g. a local file or Beam's
  FileSystems): with `decompress`, the compression its suffix names is undone (gzip with concatenated
  members, bz2, zstd) into a regular buffered reader."""
  def open_log(path: str, decompress: bool) -> BinaryIO:
    raw = open_raw(path)
    compression = (log_format(path) or ("", None))[1] if decompress else None
    if compression == "gzip":
      return _Decompressed(gzip.GzipFile(fileobj=raw, mode="rb"), raw)
    if compression == "bz2":
      return _Decompressed(bz2.BZ2File(raw, mode="rb"), raw)
    if compression == "zstd":
      return _Decompressed(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), raw)
    return raw
  return open_log


Opener = Callable[[str, bool], BinaryIO]  # (path, decompress) -> binary file
open_local: Opener = decompressing(lambda path: open(path, "rb"))


def _delimiter(path: str) -> str:
  return "\t" if log_format(path)[0] == ".tsv" else ","


def csv_header(path: str, opener: Opener = open_local) -> list[str]:
  """The column names on a CSV / TSV file's first line."""
  with opener(path, True) as f:
    try:
      header = f.readline().decode("utf-8").rstrip("\r\n")
    except (UnicodeDecodeError, OSError) as e:
      raise DataContractError(f"{path}: line 1: not a UTF-8 text header: {e}") from None
  if not header:
    raise DataContractError(f"{path}: empty file (no header line)")
  return header.split(_delimiter(path))


def _csv_batches(path: str, batch_rows: int, opener: Opener) -> Iterator[tuple[pa.Table, Source]]:
  """Batches of string columns; a line with the wrong number of fields is skipped and reported in the
  next batch's `Source.invalid` (a batch of 0 rows carries those found after the last data row)."""
  delimiter = _delimiter(path)
  names = csv_header(path, opener)
  # Only an empty cell is missing (the contract's rule): pyarrow's default null strings ("NA", "N/A",
  # "null", "nan", ...) are values here, a gender "NA" stays "NA" and a dense "nan" is a bad row.
  convert = pa_csv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                  strings_can_be_null=True, quoted_strings_can_be_null=False)
  invalid: list[InvalidLine] = []

  def skip(bad) -> str:
    invalid.append(InvalidLine(bad.number, bad.text, f"{bad.actual_columns} fields where the header has "
                                                     f"{bad.expected_columns}"))
    return "skip"

  row, reported = 0, 0

  def source() -> Source:
    nonlocal reported
    new, reported = tuple(invalid[reported:]), len(invalid)
    return Source(path, row, header_lines=1, skipped_lines=tuple(sorted(i.line for i in invalid)), invalid=new)

  with opener(path, True) as f:
    # One thread: the parser then knows every line's number.
    reader = pa_csv.open_csv(f, read_options=pa_csv.ReadOptions(block_size=1 << 22, use_threads=False),
                             parse_options=pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=skip),
                             convert_options=convert)
    try:
      for batch in reader:
        for start in range(0, batch.num_rows, batch_rows):
          chunk = pa.Table.from_batches([batch.slice(start, batch_rows)])
          yield chunk, source()
          row += chunk.num_rows
    except pa.ArrowInvalid as e:  # e.g. bytes that are not UTF-8: the rest of the file cannot be read
      at = Source(path, row, header_lines=1, skipped_lines=tuple(sorted(i.line for i in invalid)))
      raise DataContractError(f"{path}: at or after line {at.line(0)}: {e}") from None
  if reported < len(invalid):
    yield pa.table({n: pa.array([], pa.string()) for n in names}), source()


def parquet_file(path: str, opener: Opener = open_local) -> pq.ParquetFile:
  try:
    return pq.ParquetFile(opener(path, False))
  except (pa.ArrowInvalid, OSError) as e:
    raise DataContractError(f"{path}: not a readable Parquet file: {e}") from None


def _parquet_batches(path: str, batch_rows: int, row_group: int | None, opener: Opener
                     ) -> Iterator[tuple[pa.Table, Source]]:
  pf = parquet_file(path, opener)
  groups = range(pf.num_row_groups) if row_group is None else [row_group]
  row = sum(pf.metadata.row_group(g).num_rows for g in range(groups[0])) if len(groups) else 0
  for batch in pf.iter_batches(batch_size=batch_rows, row_groups=list(groups)):
    yield pa.Table.from_batches([batch]), Source(path, row)
    row += batch.num_rows


def raw_batches(file: str | Path, batch_rows: int = DEFAULT_BATCH_ROWS, row_group: int | None = None,
                opener: Opener = open_local) -> Iterator[tuple[pa.Table, Source]]:
  """Unvalidated (table, source) batches of one file; Parquet can be limited to one row group."""
  file = str(file)
  if log_format(file)[0] == ".parquet":
    return _parquet_batches(file, batch_rows, row_group, opener)
  return _csv_batches(file, batch_rows, opener)


def iter_log(path: str | Path, kind: LogKind, config: FeatureConfig,
             batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.Table]:
  """Yields validated contract tables of at most `batch_rows` rows from a file or a directory."""
  for file in log_files(path):
    rows = 0
    for table, source in raw_batches(file, batch_rows):
      if source.invalid:  # no dead-letter channel here: the first invalid line stops the read
        bad = source.invalid[0]
        raise DataContractError(f"{file}, line {bad.line}: {bad.reason}: {bad.text[:200]!r}")
      rows += table.num_rows
      yield conform(table, kind, config, source)
    if rows == 0:
      raise DataContractError(f"{file}: empty file (no {kind.value} rows)")


def read_log(path: str | Path, kind: LogKind, config: FeatureConfig) -> pa.Table:
  """The whole validated log at `path` in memory (use `iter_log` for large logs)."""
  tables = list(iter_log(path, kind, config))
  return pa.concat_tables(tables) if tables else contract_schema(kind, config).empty_table()


class LogWriter:
  """Writes contract tables of one kind to a Parquet file, a row group per `write` call."""

  def __init__(self, path: str | Path, kind: LogKind, config: FeatureConfig):
    self.path = Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.schema = contract_schema(kind, config)
    self.rows = 0
    self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")

  def write(self, table: pa.Table) -> None:
    self._writer.write_table(table.select(self.schema.names).cast(self.schema))
    self.rows += table.num_rows

  def close(self) -> None:
    self._writer.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
