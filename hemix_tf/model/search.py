"""SIM's hard search (Pi et al. 2020, "Search-based User Interest Modeling with Lifelong Sequential
Behavior Data"): a behaviour sequence is first searched for the events that share a side info with the
candidate (its category), and only those are read by the target attention.

`global_search` / `realtime_search` of HeMixConfig and BaselineConfig turn it on per sequence (SIM
searches the long one; the real-time search is the same filter on today's events). The feature config's
`sequence.search` names the side info (both an item feature and a sequence side info, so the candidate's
id and the events' ids come from one vocabulary). Data without one (MovieLens: a movie has a list of
genres, not one category) has nothing to search by, and the queries read the whole sequence.
"""
from __future__ import annotations

import tensorflow as tf

from hemix_tf.data.examples import sequence_feature
from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.padding import padded, sequence_length


def searched_sequences(feature_config: FeatureConfig, config) -> tuple[str, ...]:
  """The sequences searched: those the model config asks for (`global_search`, `realtime_search`) when
  the data names a search key (`sequence.search`); () otherwise."""
  if feature_config.sequence.search is None:
    return ()
  return tuple(s for s, on in (("global", config.global_search), ("realtime", config.realtime_search)) if on)


def search_ids(feature_config: FeatureConfig, features: dict, sequence: str) -> tf.Tensor:
  """A sequence's search side info ids [..., L] (padding: -1, never a candidate's id)."""
  ids, mask = padded(features, sequence_feature(sequence, feature_config.sequence.search),
                     sequence_length(feature_config, sequence))
  return tf.where(mask > 0, ids, tf.constant(-1, ids.dtype))


def search_mask(ids: tf.Tensor, candidate_ids: tf.Tensor) -> tf.Tensor:
  """1.0 where an event's id equals the candidate's: ids [..., L], candidate_ids [...] -> [..., L]."""
  return tf.cast(ids == tf.cast(candidate_ids, ids.dtype)[..., None], tf.float32)


def search_masks(feature_config: FeatureConfig, sequences: tuple[str, ...], features: dict) -> dict:
  """{sequence: the hard-search mask [B, L]} of the joined examples `features`, for each searched one."""
  if not sequences:
    return {}
  candidate_ids = features[feature_config.sequence.search]
  return {s: search_mask(search_ids(feature_config, features, s), candidate_ids) for s in sequences}
