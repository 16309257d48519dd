"""SIM's hard search (Pi et al. 2020, "Search-based User Interest Modeling with Lifelong Sequential
Behavior Data"): a long behaviour sequence is first searched for the events that share a side info
with the candidate (its category), and only those are read by the target attention.

`HeMixConfig.global_search` / `BaselineConfig.global_search` name the side info; it must be both an item
feature and a sequence side info, so the candidate's id and the events' ids come from one vocabulary.
"""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import sequence_feature, sequence_fields
from hemix_tf.data.feature_config import FeatureConfig, FeatureGroup
from hemix_tf.data.padding import padded, sequence_length

SEARCHED = "global"  # the sequence searched: the long one (Section 3.2)


def check_search_feature(feature_config: FeatureConfig, name: str | None) -> None:
  items = {f.name for f in feature_config.group(FeatureGroup.ITEM)}
  if name and not (name in items and name in sequence_fields(feature_config)):
    raise ValueError(f"global_search '{name}' must be both an item feature and a sequence side info of "
                     f"feature config '{feature_config.name}'")


def search_ids(feature_config: FeatureConfig, features: dict, name: str) -> tf.Tensor:
  """The searched sequence's side info ids [..., L_G] (padding: -1, never a candidate's id)."""
  ids, mask = padded(features, sequence_feature(SEARCHED, name), sequence_length(feature_config, SEARCHED))
  return tf.where(mask > 0, ids, tf.constant(-1, ids.dtype))


def search_mask(ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
  """1.0 where an event's id equals the candidate's: ids [..., L], candidate_ids [...] -> [..., L]."""
  return tf.cast(ids == tf.cast(candidate_ids, ids.dtype)[..., None], tf.float32)
