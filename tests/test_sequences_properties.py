"""Hypothesis properties of the point-in-time builder: nothing from the future, disjoint, most recent."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hemix_tf.data.sequences import point_in_time_ranges, reversed_rows

DAY = 86400
OFFSET = 3 * 3600


def day_start(ts):
  return (ts + OFFSET) // DAY * DAY - OFFSET


events_st = st.lists(st.tuples(st.integers(0, 3), st.integers(DAY, 4 * DAY)), max_size=60)
imps_st = st.lists(st.tuples(st.integers(0, 4), st.integers(DAY, 4 * DAY)), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(events=events_st, imps=imps_st, lg=st.integers(1, 8), lr=st.integers(1, 4))
def test_point_in_time_properties(events, imps, lg, lr):
  events = sorted(events)
  ev_user = np.array([e[0] for e in events], np.int64)
  ev_ts = np.array([e[1] for e in events], np.int64)
  imp_user = np.array([i[0] for i in imps], np.int64)
  imp_ts = np.array([i[1] for i in imps], np.int64)
  r = point_in_time_ranges(ev_user, ev_ts, imp_user, imp_ts, day_start(imp_ts), lg, lr)
  g_splits, g_rows = reversed_rows(r.global_start, r.global_end)
  r_splits, r_rows = reversed_rows(r.realtime_start, r.realtime_end)
  for i, (u, t) in enumerate(imps):
    d = day_start(t)
    g = g_rows[g_splits[i]:g_splits[i + 1]]
    rt = r_rows[r_splits[i]:r_splits[i + 1]]
    assert np.all(ev_user[g] == u) and np.all(ev_user[rt] == u)
    assert np.all(ev_ts[g] < d)  # global: before the local day
    assert np.all((ev_ts[rt] >= d) & (ev_ts[rt] < t))  # real-time: that day, strictly before t
    assert not set(g) & set(rt)
    # Truncation keeps the most recent, in most-recent-first order.
    all_g = [j for j, (eu, et) in enumerate(events) if eu == u and et < d]
    all_r = [j for j, (eu, et) in enumerate(events) if eu == u and d <= et < t]
    assert list(g) == all_g[::-1][:lg]
    assert list(rt) == all_r[::-1][:lr]
    assert r.global_available[i] == len(all_g) and r.realtime_available[i] == len(all_r)
