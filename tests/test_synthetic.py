"""The synthetic AMAP-like generator: determinism, Table 1 lengths, signal only the sequences carry."""
import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator

CONFIG = load_feature_config("synthetic-lbs")


def generate(**kw):
  blocks = list(SyntheticGenerator(SyntheticConfig(**kw), CONFIG).blocks(users_per_block=64))
  return pa.concat_tables([b[0] for b in blocks]), pa.concat_tables([b[1] for b in blocks])


@pytest.fixture(scope="module")
def sample():
  return generate(num_impressions=30_000, seed=3)


def _key(user, ts):
  return user.astype(np.int64) * (1 << 40) + ts


def sequence_lengths(imp: pa.Table, ev: pa.Table):
  """Untruncated global / real-time lengths of every impression (independent numpy as-of)."""
  ev_key = np.sort(_key(ev["user_id"].to_numpy(), ev["timestamp"].to_numpy()))
  user, ts = imp["user_id"].to_numpy(), imp["timestamp"].to_numpy()
  day = CONFIG.day_start(ts)
  first = np.searchsorted(ev_key, _key(user, np.zeros_like(ts)))
  at_day = np.searchsorted(ev_key, _key(user, day))
  before = np.searchsorted(ev_key, _key(user, ts))  # strictly before the impression's second
  return at_day - first, before - at_day


def test_exact_count_and_schema(sample):
  imp, ev = sample
  assert imp.num_rows == 30_000
  assert len(set(imp["request_id"].to_pylist())) == imp.num_rows
  assert ev.num_rows > 5 * imp.num_rows


def test_deterministic_and_prefix_stable():
  a = generate(num_impressions=2_000, seed=1)
  b = generate(num_impressions=2_000, seed=1)
  assert a[0].equals(b[0]) and a[1].equals(b[1])
  longer = generate(num_impressions=4_000, seed=1)[0]
  users = set(a[0]["user_id"].to_pylist()[:-50])  # all but the (possibly truncated) last user
  mask = np.isin(longer["user_id"].to_numpy(), list(users))
  shorter = a[0].filter(pa.array(np.isin(a[0]["user_id"].to_numpy(), list(users))))
  assert longer.filter(pa.array(mask)).equals(shorter)
  other = generate(num_impressions=2_000, seed=2)[0]
  assert not other["item_id"].equals(a[0]["item_id"])


def test_table1_lengths_and_ctr(sample):
  imp, ev = sample
  global_len, realtime_len = sequence_lengths(imp, ev)
  assert global_len.mean() == pytest.approx(332, rel=0.1)
  assert realtime_len.mean() == pytest.approx(10, rel=0.15)
  assert 0.05 < np.mean(imp["click"].to_numpy()) < 0.12  # AMAP-like CTR (~8%)


def test_lengths_follow_config():
  imp, ev = generate(num_impressions=5_000, avg_global_len=100, avg_realtime_len=4)
  global_len, realtime_len = sequence_lengths(imp, ev)
  assert global_len.mean() == pytest.approx(100, rel=0.15)
  assert realtime_len.mean() == pytest.approx(4, rel=0.2)


def test_oracle_auc_is_high_and_labels_follow_it(sample):
  imp, _ = sample
  click = imp["click"].to_numpy()
  assert roc_auc_score(click, imp["oracle_ctr"].to_numpy()) > 0.8
  assert np.mean(imp["oracle_ctr"].to_numpy()) == pytest.approx(click.mean(), abs=0.01)
  conv = imp["conversion"].to_numpy()
  assert conv[click == 0].sum() == 0 and 0 < conv.sum() < click.sum()


def _category_share(imp, ev, realtime: bool):
  """Share of the impression's category among the user's earlier (global or same-day) events."""
  events = ev.to_pandas().groupby("user_id")
  shares = []
  for row in imp.slice(0, 4000).to_pylist():
    e = events.get_group(row["user_id"])
    day = CONFIG.day_start(row["timestamp"])
    window = (e.timestamp >= day) & (e.timestamp < row["timestamp"]) if realtime else e.timestamp < day
    shares.append((e.category[window] == row["category"]).mean() if window.any() else 0.0)
  return np.array(shares)


@pytest.mark.parametrize("realtime", [False, True])
def test_sequences_carry_click_signal(sample, realtime):
  """Today's intent and the long-term interest only reach a model through the sequences."""
  imp, ev = sample
  click = imp["click"].to_numpy()[:4000]
  assert roc_auc_score(click, _category_share(imp, ev, realtime)) > 0.65


def test_clicks_are_events_at_the_impression_second(sample):
  """The leakage trap: the sequence job must not put these into the clicked impression's sequences."""
  imp, ev = sample
  events = set(zip(ev["user_id"].to_pylist(), ev["item_id"].to_pylist(), ev["timestamp"].to_pylist(),
                   ev["behavior"].to_pylist()))
  clicked = imp.filter(pa.compute.equal(imp["click"], 1))
  for u, i, t in zip(clicked["user_id"].to_pylist(), clicked["item_id"].to_pylist(),
                     clicked["timestamp"].to_pylist()):
    assert (u, i, t, "click") in events


def test_offset_must_match_feature_config():
  with pytest.raises(ValueError, match="utc_offset_hours"):
    SyntheticGenerator(SyntheticConfig(utc_offset_hours=0), CONFIG)
