"""A dataset directory in the raw-log contract, its manifest and the standard time split.

Layout written by every adapter (docs/DATA.md):
    <dir>/impressions/part-00000.parquet ...   contract impressions
    <dir>/events/part-00000.parquet ...        contract behaviour events
    <dir>/manifest.json                        counts, feature config, eval_start_timestamp
The standard split, used by every benchmark: eval = impressions with timestamp >= the 90th percentile
(lower interpolation) of all impression timestamps; train = the rest.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from hemix_tf.data.contract import LogKind
from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.io import LogWriter

EVAL_QUANTILE = 0.9
MANIFEST = "manifest.json"


def eval_start_timestamp(timestamps: np.ndarray, quantile: float = EVAL_QUANTILE) -> int:
  """First timestamp of the eval split: the `quantile` of impression timestamps (an observed value)."""
  return int(np.quantile(np.asarray(timestamps), quantile, method="lower"))


class _ShardedWriter:
  """Parquet part files of at most `rows_per_file` rows (a file is closed when it is full)."""

  def __init__(self, directory: Path, kind: LogKind, config: FeatureConfig, rows_per_file: int):
    self.directory, self.kind, self.config, self.rows_per_file = directory, kind, config, rows_per_file
    self.files, self.rows, self._writer = 0, 0, None

  def write(self, table: pa.Table) -> None:
    while table.num_rows:
      if self._writer is None:
        self._writer = LogWriter(self.directory / f"part-{self.files:05d}.parquet", self.kind, self.config)
        self.files += 1
      room = self.rows_per_file - self._writer.rows
      self._writer.write(table.slice(0, room))
      self.rows += min(room, table.num_rows)
      table = table.slice(room)
      if self._writer.rows >= self.rows_per_file:
        self.close()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def write_dataset(out_dir: str | Path, config: FeatureConfig, blocks: Iterable[tuple[pa.Table, pa.Table]],
                  total_impressions: int | None = None, info: dict | None = None,
                  rows_per_file: int = 1_000_000) -> dict:
  """Writes (impressions, events) contract blocks as a dataset directory; returns the manifest."""
  out = Path(out_dir)
  for kind in LogKind:
    if (out / kind.value).exists() and any((out / kind.value).iterdir()):
      raise FileExistsError(f"{out / kind.value} is not empty; choose a new output directory")
  writers = {kind: _ShardedWriter(out / kind.value, kind, config, rows_per_file) for kind in LogKind}
  users, items = set(), set()
  with tqdm(total=total_impressions, unit="imp", desc=f"writing {out.name}", mininterval=2) as bar:
    for imp, ev in blocks:
      writers[LogKind.IMPRESSIONS].write(imp)
      writers[LogKind.EVENTS].write(ev)
      users.update(np.unique(imp["user_id"].to_numpy()).tolist())
      items.update(np.unique(imp["item_id"].to_numpy()).tolist())
      bar.update(imp.num_rows)
  for w in writers.values():
    w.close()
  timestamps = pq.ParquetDataset(out / LogKind.IMPRESSIONS.value).read(columns=["timestamp"])["timestamp"]
  start = eval_start_timestamp(timestamps.to_numpy())
  manifest = {
      "feature_config": config.name,
      "impressions": writers[LogKind.IMPRESSIONS].rows,
      "events": writers[LogKind.EVENTS].rows,
      "impression_users": len(users),
      "impression_items": len(items),
      "eval_start_timestamp": start,
      "eval_impressions": int(pc.sum(pc.greater_equal(timestamps, start)).as_py()),
      **(info or {}),
  }
  (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
  return manifest


def read_manifest(dataset_dir: str | Path) -> dict:
  path = Path(dataset_dir) / MANIFEST
  if not path.exists():
    raise FileNotFoundError(f"{path}: not a hemix dataset directory (no {MANIFEST}); "
                            f"create one with `hemix-data`")
  return json.loads(path.read_text())
