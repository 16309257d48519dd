"""The examples of a split as another library reads them: to compare with it on identical inputs.

One CSV per side of a split (`train.csv`, `eval.csv`), one row per example as the input pipeline reads
them, with what the models of this repository read under the protocol's feature config:
  the labels (click, conversion), the U / I / C features as they are (a multi-valued one joined by '^');
  per sequence s and event field f, `s_f`: the most recent L_s events (the feature config's lengths, most
  recent first) joined by '^'; the time gap as floor(log2(1 + seconds)), a bucket any library can embed
  (this repository's models bucket it by train quantiles).
and `columns.json`, the columns' roles for a library's feature spec: {"labels": [...], "categorical":
[...], "dense": [...], "sequences": {column: {"max_len": L, "shares": table}}} where `shares` names the column whose
embedding table it uses (the sequences' item ids share the candidate's `item_id`; the real-time
sequence's other fields share the global one's).

FuxiCTR reads these directly (benchmarks/fuxictr_dnn.py); the ids are the raw values, so that the other
library builds its own vocabularies from train as it always does.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from hemix_tf.data.examples import SEQUENCES, TIME_GAP, make_dataset, parse_spec, sequence_feature, sequence_fields
from hemix_tf.data.feature_config import ITEM_ID, LABELS, FeatureConfig, FeatureKind
from hemix_tf.data.padding import sequence_length

SEPARATOR = "^"


def time_gap_bucket(seconds: np.ndarray) -> np.ndarray:
  return np.floor(np.log2(1 + np.maximum(seconds, 0))).astype(np.int64)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def columns(config: FeatureConfig) -> dict:
  """The CSV's columns by role (the module docstring)."""
  sequences = {}
  for s in SEQUENCES:
    for name in sequence_fields(config):
      shares = ITEM_ID if name == ITEM_ID else (sequence_feature(SEQUENCES[0], name) if s != SEQUENCES[0] else None)
      sequences[sequence_feature(s, name)] = {"max_len": sequence_length(config, s), "shares": shares}
  multi = [f.name for f in config.features if f.kind == FeatureKind.MULTI_VALUED]
  sequences.update({name: {"max_len": None, "shares": None} for name in multi})
  return {"labels": list(LABELS),
          "categorical": [f.name for f in config.features
                          if f.kind in (FeatureKind.CATEGORICAL_ID, FeatureKind.CATEGORICAL_STRING)],
          "dense": [f.name for f in config.features if f.kind == FeatureKind.DENSE],
          "sequences": sequences}


def export_examples(file_pattern: str, config: FeatureConfig, out: Path,
                    timestamps: tuple[int | None, int | None] | None = None) -> int:
  """Writes the examples of `file_pattern` (optionally cut by timestamp) to the CSV `out`; returns rows."""
  spec = parse_spec(config)
  roles = columns(config)
  scalars = roles["labels"] + roles["categorical"] + roles["dense"]
  lists = list(roles["sequences"])
  rows = 0
  with out.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(scalars + lists)
    for batch in make_dataset(file_pattern, spec, 4096, timestamps=timestamps).as_numpy_iterator():
      for i in range(len(batch[roles["labels"][0]])):
        row = [_text(batch[c][i]) for c in scalars]
        for c, role in roles["sequences"].items():
          values = batch[c][i][:role["max_len"]]
          if c.endswith(TIME_GAP):
            values = time_gap_bucket(values)
          row.append(SEPARATOR.join(_text(v) for v in values))
        writer.writerow(row)
        rows += 1
  return rows


def export_split(train_files: str, eval_files: str, config: FeatureConfig, out_dir: Path,
                 train_timestamps=None, eval_timestamps=None) -> dict:
  """`out_dir`/train.csv, eval.csv and columns.json; {side: rows}."""
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "columns.json").write_text(json.dumps(columns(config), indent=1))
  return {"train": export_examples(train_files, config, out_dir / "train.csv", train_timestamps),
          "eval": export_examples(eval_files, config, out_dir / "eval.csv", eval_timestamps)}

