"""Synthetic AMAP-like location-based-service logs (HeMix Section 4.1, Table 1), streamed per user.

The world: POIs (items) with a category, a geo cell on a square grid, a price level, a rating and tags;
users with a home cell and a sparse long-term interest over categories. Every local day a user has an
intent category and a current cell. Behaviour events (click / navigate / order) follow the day's
intent and the long-term interest; impressions are shown on the last `impression_days` days.

The click probability of an impression (written as `oracle_ctr`, so the best achievable AUC is known):
    logit = b + w_intent * [category == today's intent]           <- only visible in today's events
              + w_interest * log(n_categories * interest[category]) <- only visible in the long history
              + w_distance * distance_km + w_rating * (rating - 3.5) + user bias
`conversion` follows a second logistic model given a click (`oracle_cvr`). Neither the intent nor the
interest is an input feature: a model learns them from the real-time and global sequences.

Every clicked impression also becomes a `click` event at the impression's own second (and converted
ones an `order` event a little later): a point-in-time sequence builder must exclude it from that
impression's sequences (a leakage trap for the sequence job).

Determinism: the data of user u depends only on (seed, u) and the world on the seed, so the output is
identical across runs and a larger `num_impressions` extends, not changes, a smaller one.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hemix_tf.data.contract import LogKind, contract_schema
from hemix_tf.data.feature_config import FeatureConfig

BEHAVIORS = ("click", "navigate", "order")
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("F", "M", "unknown")
TAGS = ("parking", "open_late", "family", "wifi", "delivery", "scenic", "budget", "premium",
        "pet_friendly", "accessible", "new", "chain")
DAY = 86400


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  num_impressions: int = 100_000
  seed: int = 0
  avg_global_len: float = 332.0  # Table 1: A.L(G)
  avg_realtime_len: float = 10.0  # Table 1: A.L(RT)
  impression_days: int = 7
  impressions_per_user_day: float = 6.0
  num_items: int = 20_000
  num_categories: int = 40
  grid_size: int = 20  # geo cells on a grid_size x grid_size grid, 1 km apart
  interest_concentration: float = 0.15  # Dirichlet alpha of the long-term interest (sparser if smaller)
  start_date_utc: int = 1_767_225_600  # 2026-01-01 00:00 UTC
  utc_offset_hours: float = 8.0  # local day of the LBS market; must match the feature config
  # Click model (logit weights) and conversion model.
  ctr_bias: float = -2.8
  w_intent: float = 1.8
  w_interest: float = 0.45
  w_distance: float = -0.12
  w_rating: float = 0.5
  user_bias_std: float = 0.3
  cvr_bias: float = -1.2
  cvr_w_intent: float = 1.0
  cvr_w_price: float = -0.35

  @property
  def events_per_day(self) -> float:
    # An impression sees the events of its day before it: on average half of the day's events.
    return 2.0 * self.avg_realtime_len

  @property
  def history_days(self) -> int:
    """Days of behaviour before the first impression day, so the mean global length is avg_global_len."""
    return max(1, round(self.avg_global_len / self.events_per_day - (self.impression_days - 1) / 2))


@dataclasses.dataclass
class World:
  """The items (POIs) shared by all users."""
  category: np.ndarray  # [num_items] int64
  cell: np.ndarray  # [num_items] int64
  price_level: np.ndarray  # [num_items] int64 in 1..4
  rating: np.ndarray  # [num_items] float32 in [1, 5]
  tags: pa.Array  # [num_items] list<string>
  sample_key: np.ndarray  # sorted category + within-category popularity CDF, for inverse sampling
  sample_item: np.ndarray  # item id at each position of sample_key
  cell_xy: np.ndarray  # [grid_size**2, 2] km coordinates of each cell

  @classmethod
  def build(cls, cfg: SyntheticConfig) -> "World":
    rng = np.random.default_rng([cfg.seed, 0x5EED])
    n = cfg.num_items
    category = rng.integers(0, cfg.num_categories, n)
    cell = rng.integers(0, cfg.grid_size ** 2, n)
    popularity = rng.pareto(1.2, n) + 1.0
    order = np.lexsort((-popularity, category))
    cat_sorted, pop_sorted = category[order], popularity[order]
    totals = np.bincount(cat_sorted, weights=pop_sorted, minlength=cfg.num_categories)
    starts = np.searchsorted(cat_sorted, np.arange(cfg.num_categories))
    within = np.cumsum(pop_sorted) - np.repeat(np.cumsum(pop_sorted)[starts] - pop_sorted[starts],
                                               np.diff(np.append(starts, n)))
    sample_key = cat_sorted + within / totals[cat_sorted] * (1 - 1e-9)
    has_tag = rng.random((n, len(TAGS))) < 0.15
    offsets = np.concatenate([[0], np.cumsum(has_tag.sum(1))]).astype(np.int32)
    tags = pa.ListArray.from_arrays(offsets, pa.array(np.asarray(TAGS)[np.nonzero(has_tag)[1]]))
    g = np.arange(cfg.grid_size ** 2)
    return cls(category=category, cell=cell, price_level=rng.integers(1, 5, n),
               rating=np.clip(rng.normal(3.8, 0.6, n), 1, 5).astype(np.float32), tags=tags,
               sample_key=sample_key, sample_item=order,
               cell_xy=np.stack([g // cfg.grid_size, g % cfg.grid_size], 1).astype(np.float64))

  def sample_items(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
    """A popularity-weighted item of each given category."""
    pos = np.searchsorted(self.sample_key, categories + rng.random(len(categories)) * (1 - 1e-9))
    return self.sample_item[np.minimum(pos, len(self.sample_item) - 1)]


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _day_times(rng, day_starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """Sorted-within-day timestamps between 07:00 and 23:00 local time, counts[i] in day i."""
  starts = np.repeat(day_starts, counts)
  return starts + rng.integers(7 * 3600, 23 * 3600, len(starts))


class SyntheticGenerator:
  """Generates the impression and event logs user by user; see the module docstring."""

  def __init__(self, cfg: SyntheticConfig, feature_config: FeatureConfig):
    if abs(cfg.utc_offset_hours - feature_config.day_utc_offset_hours) > 1e-9:
      raise ValueError(f"synthetic utc_offset_hours={cfg.utc_offset_hours} differs from the feature "
                       f"config's day_utc_offset_hours={feature_config.day_utc_offset_hours}")
    self.cfg = cfg
    self.feature_config = feature_config
    self.world = World.build(cfg)
    offset = int(cfg.utc_offset_hours * 3600)
    # UTC second at which each local day starts (local midnight).
    self.day_starts = (cfg.start_date_utc - offset
                       + DAY * np.arange(cfg.history_days + cfg.impression_days, dtype=np.int64))

  def user(self, user_id: int) -> tuple[dict, dict]:
    """Numpy columns of one user's impressions and events, time-sorted (item_tags and request_id
    are added per block by `blocks`)."""
    cfg, world = self.cfg, self.world
    rng = np.random.default_rng([cfg.seed, user_id])
    n_days = len(self.day_starts)
    interest = rng.dirichlet(np.full(cfg.num_categories, cfg.interest_concentration))
    home = rng.integers(0, cfg.grid_size ** 2)
    activity = rng.lognormal(-0.125, 0.5)  # mean 1
    user_bias = rng.normal(0, cfg.user_bias_std)
    intent = np.where(rng.random(n_days) < 0.6, rng.choice(cfg.num_categories, n_days, p=interest),
                      rng.integers(0, cfg.num_categories, n_days))
    current = np.where(rng.random(n_days) < 0.5, home, rng.integers(0, cfg.grid_size ** 2, n_days))

    # Behaviour events: 75% on the day's intent, 25% from the long-term interest.
    ev_counts = rng.poisson(cfg.events_per_day * activity, n_days)
    ev_day = np.repeat(np.arange(n_days), ev_counts)
    ev_cat = np.where(rng.random(len(ev_day)) < 0.75, intent[ev_day],
                      rng.choice(cfg.num_categories, len(ev_day), p=interest))
    ev_item = world.sample_items(rng, ev_cat)
    ev_time = _day_times(rng, self.day_starts, ev_counts)
    ev_behavior = rng.choice(3, len(ev_day), p=[0.6, 0.3, 0.1])

    # Impressions on the last impression_days days.
    imp_days = np.arange(cfg.history_days, n_days)
    imp_counts = rng.poisson(cfg.impressions_per_user_day, len(imp_days))
    day = np.repeat(imp_days, imp_counts)
    n = len(day)
    source = rng.random(n)
    cat = np.where(source < 0.35, intent[day],
                   np.where(source < 0.6, rng.choice(cfg.num_categories, n, p=interest),
                            rng.integers(0, cfg.num_categories, n)))
    item = world.sample_items(rng, cat)
    ts = _day_times(rng, self.day_starts[imp_days], imp_counts)
    here = current[day]
    distance = np.linalg.norm(world.cell_xy[here] - world.cell_xy[world.cell[item]], axis=1)
    distance = np.maximum(distance + rng.normal(0, 0.3, n), 0.05)
    hits_intent = (cat == intent[day]).astype(np.float64)
    logit = (cfg.ctr_bias + cfg.w_intent * hits_intent
             + cfg.w_interest * np.log(cfg.num_categories * interest[cat] + 1e-3)
             + cfg.w_distance * distance + cfg.w_rating * (world.rating[item] - 3.5) + user_bias)
    ctr = _sigmoid(logit)
    cvr = _sigmoid(cfg.cvr_bias + cfg.cvr_w_intent * hits_intent
                   + cfg.cvr_w_price * (world.price_level[item] - 2.5))
    click = (rng.random(n) < ctr).astype(np.int64)
    conversion = click * (rng.random(n) < cvr).astype(np.int64)

    # Clicks become events at the impression's own second; conversions an order 5-60 minutes later.
    conv = conversion.astype(bool)
    clicked = click.astype(bool)
    ev_item = np.concatenate([ev_item, item[clicked], item[conv]])
    ev_time = np.concatenate([ev_time, ts[clicked], ts[conv] + rng.integers(300, 3600, conv.sum())])
    ev_behavior = np.concatenate([ev_behavior, np.zeros(clicked.sum(), np.int64),
                                  np.full(conv.sum(), 2)])
    ev_order = np.argsort(ev_time, kind="stable")
    imp_order = np.argsort(ts, kind="stable")

    local = ts + int(cfg.utc_offset_hours * 3600)
    impressions = {
        "user_id": np.full(n, user_id, np.int64), "item_id": item, "timestamp": ts,
        "click": click, "conversion": conversion,
        "age_bucket": np.full(n, AGE_BUCKETS[rng.integers(len(AGE_BUCKETS))]),
        "gender": np.full(n, GENDERS[rng.integers(len(GENDERS))]),
        "home_cell": np.full(n, home, np.int64),
        "category": world.category[item], "item_cell": world.cell[item],
        "price_level": world.price_level[item], "item_rating": world.rating[item],
        "hour": (local % DAY) // 3600, "weekday": (local // DAY + 3) % 7,  # 1970-01-01 was a Thursday
        "current_cell": here.astype(np.int64), "distance_km": distance.astype(np.float32),
        "oracle_ctr": ctr, "oracle_cvr": cvr,
        # Hidden quantities, not written to the logs (`blocks` keeps the contract's columns): the
        # targets of the linear probes (hemix_tf.experiments.diagnostics).
        "intent_match": hits_intent.astype(np.int64), "interest": interest[cat],
    }
    impressions = {name: col[imp_order] for name, col in impressions.items()}
    impressions["rank"] = np.arange(n)  # the impression's index within its user, for request_id
    ev_item = ev_item[ev_order]
    events = {"user_id": np.full(len(ev_item), user_id, np.int64), "item_id": ev_item,
              "timestamp": ev_time[ev_order], "behavior": np.asarray(BEHAVIORS)[ev_behavior[ev_order]],
              "category": world.category[ev_item], "cell": world.cell[ev_item]}
    return impressions, events

  def blocks(self, users_per_block: int = 512) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(impressions, events) contract tables, a block of users at a time, until num_impressions."""
    imp_schema = contract_schema(LogKind.IMPRESSIONS, self.feature_config)
    ev_schema = contract_schema(LogKind.EVENTS, self.feature_config)
    remaining, user = self.cfg.num_impressions, 0
    while remaining > 0:
      imps, evs = [], []
      for _ in range(users_per_block):
        imp, ev = self.user(user)
        user += 1
        size = len(imp["timestamp"])
        if size > remaining:  # the last user: keep the first `remaining` impressions
          imp = {name: col[:remaining] for name, col in imp.items()}
          size = remaining
        imps.append(imp)
        evs.append(ev)
        remaining -= size
        if remaining == 0:
          break
      imp = {name: np.concatenate([d[name] for d in imps]) for name in imps[0]}
      ev = {name: np.concatenate([d[name] for d in evs]) for name in evs[0]}
      rank = imp.pop("rank")
      imp["request_id"] = pc.binary_join_element_wise(
          pa.array(imp["user_id"].astype(str)), pa.array(rank.astype(str)), "-")
      imp["item_tags"] = self.world.tags.take(pa.array(imp["item_id"]))
      yield (pa.table(imp).select(imp_schema.names).cast(imp_schema),
             pa.table(ev).select(ev_schema.names).cast(ev_schema))


def expected_num_users(cfg: SyntheticConfig) -> int:
  return math.ceil(cfg.num_impressions / (cfg.impression_days * cfg.impressions_per_user_day))
