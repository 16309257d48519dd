"""SIM's hard search (Pi et al. 2020, "Search-based User Interest Modeling with Lifelong Sequential
Behavior Data"): a long behaviour sequence is first searched for the events that share a side info
with the candidate (its category), and only those are read by the target attention.

`HeMixConfig.global_search` / `BaselineConfig.global_search` turn it on; the feature config's
`sequence.search` names the side info (both an item feature and a sequence side info, so the candidate's
id and the events' ids come from one vocabulary). Data without one (MovieLens: a movie has a list of
genres, not one category) has nothing to search by, and the queries read the whole sequence.
"""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import sequence_feature
from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.padding import padded, sequence_length

SEARCHED = "global"  # the sequence searched: the long one (Section 3.2)


def search_key(feature_config: FeatureConfig, enabled: bool) -> str | None:
  """The side info searched when a model asks for the search (`global_search`) and the data names one
  (`sequence.search`); None: the queries read the whole sequence."""
  return feature_config.sequence.search if enabled else None


def search_ids(feature_config: FeatureConfig, features: dict, name: str) -> tf.Tensor:
  """The searched sequence's side info ids [..., L_G] (padding: -1, never a candidate's id)."""
  ids, mask = padded(features, sequence_feature(SEARCHED, name), sequence_length(feature_config, SEARCHED))
  return tf.where(mask > 0, ids, tf.constant(-1, ids.dtype))


def search_mask(ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
  """1.0 where an event's id equals the candidate's: ids [..., L], candidate_ids [...] -> [..., L]."""
  return tf.cast(ids == tf.cast(candidate_ids, ids.dtype)[..., None], tf.float32)
