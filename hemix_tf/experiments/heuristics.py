"""Click AUC of untrained heuristic scores on a split's eval examples: how much signal simple features
carry, to read the models' AUC against (beside the oracle AUC of the synthetic data).

  item CTR         the candidate item's click rate among the split's train examples, smoothed towards the
                   global rate by one pseudo-example: (clicks + r) / (impressions + 1)
  user CTR         the same for the user
  <f> match        share of the user's global + real-time events whose side info <f> equals the candidate's
                   feature <f> (for every side-info field the candidate also has, e.g. Amazon's category)
  item in history  how often the candidate item occurs in the user's global + real-time events
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hemix_tf.data.examples import SEQUENCES, make_dataset, parse_spec, sequence_feature
from hemix_tf.data.feature_config import ITEM_ID, USER_ID, FeatureConfig
from hemix_tf.metrics import auc

CLICK = "click"


def _batches(files, spec: dict, timestamps, desc: str):
  return tqdm(make_dataset(files, spec, 4096, timestamps=timestamps), desc=desc, unit="batch")


def _smoothed_rate(keys: np.ndarray, clicks: Counter, shown: Counter, prior: float) -> np.ndarray:
  return np.array([(clicks[k] + prior) / (shown[k] + 1) for k in keys])


def _occurrences(events: tf.RaggedTensor, candidate: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
  """(events equal to the candidate, events) per example of a ragged [B, None] batch."""
  hits = tf.cast(tf.equal(events, tf.expand_dims(candidate, 1)), tf.float32)
  return tf.reduce_sum(hits, axis=1).numpy(), tf.cast(events.row_lengths(), tf.float32).numpy()


def heuristic_aucs(config: FeatureConfig, split) -> dict[str, float | None]:
  """{heuristic: eval click AUC} on `split` (a harness Split: train / eval files and timestamps)."""
  spec = parse_spec(config)
  keys = {USER_ID, ITEM_ID, CLICK}
  clicks, shown = {USER_ID: Counter(), ITEM_ID: Counter()}, {USER_ID: Counter(), ITEM_ID: Counter()}
  for batch in _batches(split.train_files, {k: spec[k] for k in keys}, split.train_timestamps, "heuristics: train"):
    clicked = batch[CLICK].numpy() > 0
    for key in (USER_ID, ITEM_ID):
      shown[key].update(batch[key].numpy().tolist())
      clicks[key].update(batch[key].numpy()[clicked].tolist())
  prior = sum(clicks[ITEM_ID].values()) / max(1, sum(shown[ITEM_ID].values()))
  fields = [f.name for f in config.sequence.side_info if f.name in spec] + [ITEM_ID]
  seq = {sequence_feature(s, f) for s in SEQUENCES for f in fields}
  scores = {name: [] for name in ("item CTR", "user CTR", *(f"{f} match" for f in fields[:-1]), "item in history")}
  labels = []
  for batch in _batches(split.eval_files, {k: spec[k] for k in keys | set(fields) | seq}, split.eval_timestamps,
                        "heuristics: eval"):
    labels.append(batch[CLICK].numpy())
    scores["item CTR"].append(_smoothed_rate(batch[ITEM_ID].numpy(), clicks[ITEM_ID], shown[ITEM_ID], prior))
    scores["user CTR"].append(_smoothed_rate(batch[USER_ID].numpy(), clicks[USER_ID], shown[USER_ID], prior))
    for f in fields:
      candidate = tf.reshape(batch[f], [-1])
      counts = [_occurrences(batch[sequence_feature(s, f)], candidate) for s in SEQUENCES]
      hits, events = sum(c[0] for c in counts), sum(c[1] for c in counts)
      if f == ITEM_ID:
        scores["item in history"].append(hits)
      else:
        scores[f"{f} match"].append(np.divide(hits, events, out=np.zeros_like(hits), where=events > 0))
  labels = np.concatenate(labels)
  return {name: auc(labels, np.concatenate(s)) for name, s in scores.items()}
