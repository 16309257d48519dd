"""Streaming, validated readers of the raw logs (Parquet, CSV / TSV, optionally compressed) and the writer.

Every batch that leaves `iter_log` has passed `contract.conform`: it has the contract schema exactly, or
the read stopped with a `DataContractError` naming the file, row (line) and column. We read with pyarrow
rather than tensorflow-io: tensorflow-io 0.37.1 (its last release) cannot load its ops under TF 2.21.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import re
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
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
  try:  # as the parser reads it: quoted names unquoted
    names = pa_csv.read_csv(pa.py_buffer(header.encode() + b"\n"), parse_options=pa_csv.ParseOptions(
        delimiter=_delimiter(path)), read_options=pa_csv.ReadOptions(use_threads=False)).column_names
  except pa.ArrowInvalid as e:
    raise DataContractError(f"{path}: line 1: not a header line: {e}") from None
  twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
  if twice is not None:
    raise DataContractError(f"{path}: line 1: column '{twice}' appears twice in the header")
  return names


@dataclasses.dataclass(frozen=True)
class LineChunk:
  """Complete lines of a CSV / TSV file for the parser, and what was held back from it."""
  data: bytes  # the lines to parse, each as it is in the file
  numbers: np.ndarray | None  # the file's line number of each line of `data`; None: first_line onwards
  first_line: int  # the file's number of the chunk's first line
  held: tuple[InvalidLine, ...]  # lines that leave a quoted field open
  data_lines: int  # non-empty lines read, held ones included: the rows and dead letters they must give

  def line(self, number: int) -> int:
    """The file's line number of the `number`-th (1-based) line of `data`."""
    return self.first_line + number - 1 if self.numbers is None else int(self.numbers[number - 1])


def line_chunks(f: BinaryIO, delimiter: bytes, block: int = 1 << 22) -> Iterator[LineChunk]:
  """The lines below the header of a CSV / TSV stream in chunks of about `block` bytes, counted before
  any parser sees them. A line that leaves a quoted field open is held back as an InvalidLine (the parser
  would read the following lines into that field: an unterminated `"` swallowed thousands of rows into
  one), and the next line is read as a line. Chunks end at line ends, so no parse crosses them."""
  pending, number = b"", 0
  while True:
    read = f.read(block)
    data = pending + read
    end = len(data) if not read else data.rfind(b"\n") + 1
    if read and end == 0:  # a line longer than the block: read on
      pending = data
      continue
    body, pending = data[:end], data[end:]
    if number == 0:  # the header
      body = body[body.find(b"\n") + 1:] if b"\n" in body else b""
      number = 1
    if not body:
      if not read:
        return
      continue
    starts, ends, quotes, data_lines = _lines(body)
    first = number + 1
    number += len(starts)
    held = [int(i) for i in np.flatnonzero(quotes % 2) if _leaves_quote_open(body[starts[i]:ends[i]], delimiter)]
    if held:
      kept = np.delete(np.arange(len(starts)), held)
      lines = tuple(InvalidLine(first + i, body[starts[i]:ends[i]].decode("utf-8", "replace").rstrip("\r"),
                                'a quoted field ("...) is not closed on its line') for i in held)
      body = b"".join(body[starts[i]:ends[i]] + b"\n" for i in kept)
      yield LineChunk(body, first + kept, first, lines, data_lines)
    else:
      yield LineChunk(body, None, first, (), data_lines)
    if not read:
      return


def _lines(body: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
  """Per line of `body`: start and end offsets (the end before its newline), number of quote characters;
  and how many lines are not empty (a carriage return alone is empty, as for the parser)."""
  raw = np.frombuffer(body, np.uint8)
  ends = np.flatnonzero(raw == ord("\n"))
  if len(raw) and raw[-1] != ord("\n"):
    ends = np.append(ends, len(raw))
  starts = np.concatenate(([0], ends[:-1] + 1))
  quote_at = np.flatnonzero(raw == ord('"'))
  quotes = np.searchsorted(quote_at, ends) - np.searchsorted(quote_at, starts)
  lengths = ends - starts
  carriage = (lengths > 0) & (raw[np.maximum(ends - 1, 0)] == ord("\r"))
  return starts, ends, quotes, int(np.count_nonzero(lengths - carriage))


def _leaves_quote_open(line: bytes, delimiter: bytes) -> bool:
  """Whether a quoted field opens on `line` and does not close on it (a quote counts only at the start of
  a field, `""` inside one is a quote, as the parser reads them)."""
  quote, separator = ord('"'), delimiter[0]
  inside, field_start, i = False, True, 0
  while i < len(line):
    c = line[i]
    if inside:
      if c == quote:
        if i + 1 < len(line) and line[i + 1] == quote:
          i += 1
        else:
          inside = False
    elif c == quote and field_start:
      inside = True
    field_start = not inside and c == separator
    i += 1
  return inside


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
  chunk: LineChunk | None = None

  def skip(bad) -> str:
    invalid.append(InvalidLine(chunk.line(bad.number), bad.text, f"{bad.actual_columns} fields where the "
                                                                 f"header has {bad.expected_columns}"))
    return "skip"

  row, reported, data_lines = 0, 0, 0

  def source() -> Source:
    nonlocal reported
    new, reported = tuple(invalid[reported:]), len(invalid)
    return Source(path, row, header_lines=1, skipped_lines=tuple(sorted(i.line for i in invalid)), invalid=new)

  # Each chunk is parsed on its own, on one thread (the parser then knows every line's number).
  read = pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 23)
  parse = pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=skip)
  with opener(path, True) as f:
    for chunk in line_chunks(f, delimiter.encode()):
      invalid.extend(chunk.held)
      data_lines += chunk.data_lines
      try:
        table = pa_csv.read_csv(pa.py_buffer(chunk.data), read_options=read, parse_options=parse,
                                convert_options=convert) if chunk.data.strip() else None
      except pa.ArrowInvalid as e:  # e.g. bytes that are not UTF-8: the rest of the file cannot be read
        found = re.search(r"column #(\d+): Row #(\d+): (.*)", str(e))
        if found and int(found.group(1)) < len(names):
          where = f"line {chunk.line(int(found.group(2)))}, column '{names[int(found.group(1))]}'"
          raise DataContractError(f"{path}, {where}: {found.group(3)}") from None
        raise DataContractError(f"{path}: at or after line {chunk.first_line}: {e}") from None
      for start in range(0, table.num_rows if table is not None else 0, batch_rows):
        batch = table.slice(start, batch_rows)
        yield batch, source()
        row += batch.num_rows
  if row + len(invalid) != data_lines:  # counted before the parser: a merge or a skip shows here
    raise DataContractError(f"{path}: {data_lines:,} data lines but {row:,} rows and {len(invalid):,} dead "
                            "letters: the CSV parser merged or dropped lines")
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
