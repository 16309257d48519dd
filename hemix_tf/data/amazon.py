"""Amazon Grocery and Gourmet Food (ReChorus split) as raw logs.

Each review is a purchase: an impression with click = 1 and a behaviour event (behavior = "review",
side info = the item category). The data has no negatives and no conversion signal: every review gets
`negatives_per_positive` sampled negative impressions (click = 0) at the same second, never the reviewed
item itself, drawn by `negatives` (NEGATIVES):
  "catalogue"   uniformly from the item catalogue (DIN's Amazon protocol, and most public Amazon CTR
                benchmarks': a negative is mostly an item the user would not buy; the default)
  "popularity"  in proportion to popularity among the items reviewed in the same calendar month (a harder
                task: a negative is as popular as a positive, so item popularity tells nothing)
`conversion` is 0 everywhere (train the CTR task only on this data).
Deterministic per seed. Timestamps are whole UTC days, so real-time (same-day) sequences are nearly
always empty on this dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hemix_tf.data.contract import LogKind, contract_schema
from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.movielens import _index, _ints, _read_delimited


def read_grocery(directory) -> tuple[dict, dict]:
  """(interactions, items) column dicts from `train.csv` and `item_meta.csv` (tab-separated)."""
  d = Path(directory)
  t = _read_delimited(d / "train.csv")
  interactions = {c: _ints(t, c, d / "train.csv") for c in ("user_id", "item_id", "time")}
  m = _read_delimited(d / "item_meta.csv")
  items = {c: _ints(m, c, d / "item_meta.csv") for c in ("item_id", "i_category")}
  return interactions, items


def _month(ts: np.ndarray) -> np.ndarray:
  return ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)


NEGATIVES = ("catalogue", "popularity")


def sample_catalogue_negatives(item: np.ndarray, catalogue: np.ndarray, k: int,
                               seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`k` negatives per positive drawn uniformly from `catalogue` (distinct item ids), never the positive.

  Returns (positive index, negative item) arrays of length k * len(item).
  """
  if len(catalogue) < 2:
    raise ValueError("cannot sample negatives: the catalogue has a single item")
  rng = np.random.default_rng([seed, 0xCA7A])
  pos = np.repeat(np.arange(len(item)), k)
  neg = catalogue[rng.integers(0, len(catalogue), len(pos))]
  todo = np.flatnonzero(neg == item[pos])
  while len(todo):  # redraw the draws that hit the reviewed item (1 in len(catalogue))
    neg[todo] = catalogue[rng.integers(0, len(catalogue), len(todo))]
    todo = todo[neg[todo] == item[pos[todo]]]
  return pos, neg


def sample_negatives(user: np.ndarray, item: np.ndarray, ts: np.ndarray, k: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`k` negatives per positive from the same month's reviewed items, popularity-weighted.

  Returns (positive index, negative item) arrays of length k * len(item).
  """
  rng = np.random.default_rng([seed, 0xA3A2])
  month = _month(ts)
  # Sampling "a random review of the same month" is exactly popularity-proportional sampling.
  by_month = np.argsort(month, kind="stable")
  m_sorted = month[by_month]
  starts = np.searchsorted(m_sorted, month, side="left")
  ends = np.searchsorted(m_sorted, month, side="right")
  pos = np.repeat(np.arange(len(item)), k)
  lo, hi = starts[pos], ends[pos]
  neg = np.empty(len(pos), np.int64)
  todo = np.arange(len(pos))
  for attempt in range(200):  # redraw the few draws that hit the reviewed item itself
    if attempt == 20:  # a month (nearly) without other items: use the whole period's popularity
      lo, hi = np.zeros_like(lo), np.full_like(hi, len(item))
    draw = lo[todo] + (rng.random(len(todo)) * (hi - lo)[todo]).astype(np.int64)
    neg[todo] = item[by_month[draw]]
    todo = todo[neg[todo] == item[pos[todo]]]
    if len(todo) == 0:
      return pos, neg
  raise ValueError("cannot sample negatives: the data has a single item")


def to_contract(interactions: dict, items: dict, config: FeatureConfig, negatives_per_positive: int = 1,
                seed: int = 0, negatives: str = "catalogue") -> tuple[pa.Table, pa.Table]:
  if negatives not in NEGATIVES:
    raise ValueError(f"negatives '{negatives}' is not one of {NEGATIVES}")
  order = np.lexsort((interactions["item_id"], interactions["user_id"], interactions["time"]))
  user, item, ts = (np.asarray(interactions[c])[order] for c in ("user_id", "item_id", "time"))
  category = np.asarray(items["i_category"])
  if negatives == "catalogue":
    catalogue = np.unique(np.asarray(items["item_id"]))
    pos, neg = sample_catalogue_negatives(item, catalogue, negatives_per_positive, seed)
  else:
    pos, neg = sample_negatives(user, item, ts, negatives_per_positive, seed)
  imp_user = np.concatenate([user, user[pos]])
  imp_item = np.concatenate([item, neg])
  imp_ts = np.concatenate([ts, ts[pos]])
  click = np.concatenate([np.ones(len(item), np.int64), np.zeros(len(neg), np.int64)])
  slot = np.concatenate([np.zeros(len(item), np.int64), 1 + np.arange(len(neg)) % negatives_per_positive])
  imp_order = np.lexsort((slot, imp_item, imp_user, imp_ts))
  imp_user, imp_item, imp_ts, click, slot = (a[imp_order] for a in (imp_user, imp_item, imp_ts, click, slot))
  imp_cat = pa.array(category).take(_index(items["item_id"], imp_item, "item", "item_meta"))
  ev_cat = pa.array(category).take(_index(items["item_id"], item, "item", "item_meta"))
  request_id = pc.binary_join_element_wise(
      pa.array(imp_user.astype(str)), pa.array(imp_ts.astype(str)),
      pa.array(np.concatenate([item, item[pos]])[imp_order].astype(str)), pa.array(slot.astype(str)), "-")
  imp = {"request_id": request_id, "user_id": imp_user, "item_id": imp_item, "timestamp": imp_ts,
         "click": click, "conversion": np.zeros(len(click), np.int64), "category": imp_cat,
         "weekday": (imp_ts // 86400 + 3) % 7, "month": _month(imp_ts) % 12 + 1}
  ev = {"user_id": user, "item_id": item, "timestamp": ts,
        "behavior": pa.array(np.full(len(item), "review")), "category": ev_cat}
  imp_schema = contract_schema(LogKind.IMPRESSIONS, config)
  ev_schema = contract_schema(LogKind.EVENTS, config)
  return (pa.table(imp).select(imp_schema.names).cast(imp_schema),
          pa.table(ev).select(ev_schema.names).cast(ev_schema))
