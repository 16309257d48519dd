"""Point-in-time behaviour sequences, vectorised over many users at once (docs/DATA.md).

For an impression of user u at second t whose local day starts at D:
  global   = u's events with timestamp < D,       the L_G most recent, most recent first;
  realtime = u's events with D <= timestamp < t,  the L_R most recent, most recent first.
Events are ordered by (timestamp, item_id, behavior), so same-second ties are deterministic.

With the events sorted by (user, timestamp, ...) and a combined key user_code * 2^34 + timestamp,
three binary searches per impression give the event ranges: [user start, day start) and
[day start, t). Memory is that of the columns themselves (no per-event Python objects): a user with
2M events costs a few tens of MB of numpy / Arrow arrays.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from hemix_tf.data.feature_config import BEHAVIOR, ITEM_ID, TIMESTAMP, USER_ID

EVENT_ORDER = (USER_ID, TIMESTAMP, ITEM_ID, BEHAVIOR)  # ascending; sequences read it backwards
_TS_BITS = 34  # timestamps below 2^34 s (year 2514): contract.MAX_TIMESTAMP, checked on every row


def sort_events(events: pa.Table) -> pa.Table:
  return events.sort_by([(c, "ascending") for c in EVENT_ORDER])


@dataclasses.dataclass(frozen=True)
class Ranges:
  """Per impression, the half-open event-row ranges of its two sequences (before reversal)."""
  global_start: np.ndarray
  global_end: np.ndarray  # = realtime_start's lower bound: first event of the local day
  realtime_start: np.ndarray
  realtime_end: np.ndarray  # first event at or after the impression's second
  global_available: np.ndarray  # untruncated lengths, for the truncation counters
  realtime_available: np.ndarray


def point_in_time_ranges(event_user: np.ndarray, event_ts: np.ndarray, imp_user: np.ndarray,
                         imp_ts: np.ndarray, day_start: np.ndarray, global_length: int,
                         realtime_length: int) -> Ranges:
  """Event ranges of each impression; events must be sorted by (user, timestamp)."""
  if len(event_ts) and (event_ts.max() >= 1 << _TS_BITS or imp_ts.max() >= 1 << _TS_BITS):
    raise ValueError(f"timestamps must be below 2^{_TS_BITS} seconds")
  users, codes = np.unique(np.concatenate([event_user, imp_user]), return_inverse=True)
  del users
  ev_code, imp_code = codes[:len(event_user)], codes[len(event_user):]
  key = (ev_code.astype(np.int64) << _TS_BITS) | event_ts
  if np.any(key[1:] < key[:-1]):
    raise ValueError("events must be sorted by (user_id, timestamp)")
  base = imp_code.astype(np.int64) << _TS_BITS
  user_start = np.searchsorted(key, base, side="left")
  day = np.searchsorted(key, base | np.maximum(day_start, 0), side="left")
  before = np.searchsorted(key, base | imp_ts, side="left")  # strictly before the impression
  return Ranges(global_start=np.maximum(user_start, day - global_length), global_end=day,
                realtime_start=np.maximum(day, before - realtime_length), realtime_end=before,
                global_available=day - user_start, realtime_available=before - day)


def reversed_rows(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(row_splits, rows): for each i, rows end-1, end-2, ..., start (most recent first)."""
  lengths = end - start
  splits = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=splits[1:])
  within = np.arange(splits[-1]) - np.repeat(splits[:-1], lengths)
  return splits, np.repeat(end - 1, lengths) - within
