"""The Transform component's analysis of a train split, in one pass over its examples without Beam.

What `preprocessing.TransformEncoder`'s analysers compute, so that a model trained outside the pipeline
(the experiment harness) encodes its inputs as the shipped model does:
  vocabularies  {table: {value: count}} over every member of the table (the candidate's and both
                sequences' item ids share one), counted per occurrence, as tft.vocabulary counts;
                `Analysis.vocabulary` keeps the values seen >= min_count times, most frequent first (TFT's
                order: count, then the value's bytes, both descending): row = position, the
                out-of-vocabulary row is the last
  dense         {feature: (mean, std)} of signed_log(x), as tft.scale_to_z_score
  time gaps     quantile boundaries of log1p(gap) over both sequences' events (time_gap_buckets - 1 of
                them), as tft.quantiles, from a histogram of 2^16 bins (TFT's are approximate too: eps 0.01)
An id is its string form (ints as decimal), as `preprocessing._ids_as_strings` makes it.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from hemix_tf.data.examples import SEQUENCES, TIME_GAP, make_dataset, parse_spec, sequence_feature
from hemix_tf.data.feature_config import FeatureConfig, FeatureKind
from hemix_tf.data.preprocessing import tables

_LOG_GAP_MAX = 48.0  # log1p of any int64 number of seconds is below 44
_HISTOGRAM_BINS = 1 << 16


@dataclasses.dataclass(frozen=True)
class Analysis:
  counts: dict[str, dict[str, int]]  # {table: {value: occurrences in the split}}
  dense: dict[str, tuple[float, float]]  # {feature: (mean, std) of signed_log(x)}
  time_gap_boundaries: tuple[float, ...]  # ascending, on log1p(seconds)

  def vocabulary(self, table: str, min_count: int) -> list[str]:
    """The values of `table` seen >= min_count times, in TFT's order (count, then value, descending)."""
    kept = [(c, v.encode()) for v, c in self.counts[table].items() if c >= min_count]
    return [v.decode() for _, v in sorted(kept, reverse=True)]

  def hash_collisions(self, buckets: int) -> dict[str, float]:
    """{table: the share of its distinct values that share their row with another value} when hashed into
    `buckets` rows (as `preprocessing.HashingEncoder` does)."""
    rates = {}
    for table, counts in self.counts.items():
      rows = tf.strings.to_hash_bucket_fast(tf.constant(list(counts) or [""]), buckets).numpy()[:len(counts)]
      _, inverse, per_row = np.unique(rows, return_inverse=True, return_counts=True)
      rates[table] = float(np.mean(per_row[inverse] > 1)) if len(counts) else 0.0
    return rates

  def save(self, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(f".{os.getpid()}.tmp")  # two processes may analyse the same split
    tmp.write_text(json.dumps(dataclasses.asdict(self)))
    tmp.rename(path)

  @classmethod
  def load(cls, path: str | Path) -> Analysis:
    raw = json.loads(Path(path).read_text())
    return cls(raw["counts"], {k: tuple(v) for k, v in raw["dense"].items()}, tuple(raw["time_gap_boundaries"]))


def _strings(values: np.ndarray) -> np.ndarray:
  """Ids as their string form (object array of str)."""
  if values.dtype.kind in "SO":
    return np.char.decode(values.astype(bytes), "utf-8").astype(object)
  return values.astype(str).astype(object)


def _flat(x) -> np.ndarray:
  return (x.flat_values if isinstance(x, tf.RaggedTensor) else x).numpy()


def analyze(file_pattern: str, config: FeatureConfig, time_gap_buckets: int,
            timestamps: tuple[int | None, int | None] | None = None, batch_size: int = 4096) -> Analysis:
  """The statistics of the examples in `file_pattern` (those with start <= timestamp < end when
  `timestamps` is given; the module docstring)."""
  members = tables(config)
  dense = [f.name for f in config.features if f.kind == FeatureKind.DENSE]
  gaps = [sequence_feature(s, TIME_GAP) for s in SEQUENCES]
  spec = parse_spec(config)
  needed = {m for ms in members.values() for m in ms} | set(dense) | set(gaps)
  ds = make_dataset(file_pattern, {k: v for k, v in spec.items() if k in needed}, batch_size,
                    timestamps=timestamps)
  counted = {table: collections.Counter() for table in members}
  sums = {name: np.zeros(3) for name in dense}  # n, sum, sum of squares
  histogram = np.zeros(_HISTOGRAM_BINS, np.int64)
  for batch in ds:
    for table, names in members.items():
      values = np.concatenate([_strings(_flat(batch[m])) for m in names])
      unique, counts = np.unique(values, return_counts=True)
      counted[table].update(dict(zip(unique.tolist(), counts.tolist())))
    for name in dense:
      x = batch[name].numpy().astype(np.float64)
      x = np.sign(x) * np.log1p(np.abs(x))
      sums[name] += (len(x), x.sum(), (x * x).sum())
    logs = np.log1p(np.maximum(np.concatenate([_flat(batch[g]) for g in gaps]), 0).astype(np.float64))
    histogram += np.histogram(logs, _HISTOGRAM_BINS, (0.0, _LOG_GAP_MAX))[0]
  counts = {table: {str(v): int(c) for v, c in counter.items()} for table, counter in counted.items()}
  moments = {}
  for name, (n, s, ss) in sums.items():
    mean = s / n if n else 0.0
    moments[name] = (float(mean), float(np.sqrt(max(ss / n - mean * mean, 0.0))) if n else 0.0)
  return Analysis(counts, moments, _quantile_boundaries(histogram, time_gap_buckets))


def _quantile_boundaries(histogram: np.ndarray, buckets: int) -> tuple[float, ...]:
  """The `buckets - 1` inner quantiles of a histogram over [0, _LOG_GAP_MAX): each at the upper edge of
  the bin where the cumulative share first reaches k / buckets."""
  total = histogram.sum()
  if total == 0:
    return tuple(float(k) for k in range(1, buckets))  # no event: any ascending boundaries
  cumulative = np.cumsum(histogram) / total
  edges = np.linspace(0.0, _LOG_GAP_MAX, _HISTOGRAM_BINS + 1)
  bins = np.searchsorted(cumulative, np.arange(1, buckets) / buckets)
  return tuple(float(edges[min(b + 1, _HISTOGRAM_BINS)]) for b in bins)
