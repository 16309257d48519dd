"""The untrained heuristics score hand-built examples exactly as defined."""
import pytest
import tensorflow as tf

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.experiments.harness import Split
from hemix_tf.experiments.heuristics import heuristic_aucs

AMAZON = load_feature_config("amazon-grocery")


def _write(path, rows):
  def feature(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=v if isinstance(v, list) else [v]))
  with tf.io.TFRecordWriter(str(path), options="GZIP") as w:
    for row in rows:
      w.write(tf.train.Example(features=tf.train.Features(
          feature={k: feature(v) for k, v in row.items()})).SerializeToString())


def test_heuristics_on_hand_built_examples(tmp_path):
  # Train: item 1 always clicked, item 2 never; user 7 always clicks, user 8 never.
  _write(tmp_path / "train.tfrecord.gz", [{"user_id": 7, "item_id": 1, "click": 1}] * 3 +
         [{"user_id": 8, "item_id": 2, "click": 0}] * 3)
  # Eval: the clicks are item 1 / user 7 / a category the history is full of / an item not in the history.
  _write(tmp_path / "eval.tfrecord.gz", [
      {"user_id": 7, "item_id": 1, "category": 5, "click": 1, "global_category": [5, 5], "global_item_id": [3, 4]},
      {"user_id": 7, "item_id": 1, "category": 5, "click": 1, "realtime_category": [5],
       "realtime_item_id": [9]},
      {"user_id": 8, "item_id": 2, "category": 6, "click": 0, "global_category": [5, 6], "global_item_id": [2, 4]},
      {"user_id": 8, "item_id": 2, "category": 6, "click": 0, "global_category": [5],
       "realtime_category": [6], "global_item_id": [2], "realtime_item_id": [2]},
      {"user_id": 9, "item_id": 3, "category": 6, "click": 0, "global_item_id": [3]},  # unseen: the global rate
  ])
  split = Split("eval", str(tmp_path / "train.tfrecord.gz"), 6, str(tmp_path / "eval.tfrecord.gz"))
  scores = heuristic_aucs(AMAZON, split)
  assert scores == {"item CTR": pytest.approx(1.0), "user CTR": pytest.approx(1.0),
                    "category match": pytest.approx(1.0), "item in history": pytest.approx(0.0)}
