import numpy as np
import pytest

from hemix_tf.data.feature_config import (PACKAGED, FeatureGroup, FeatureKind, feature_config_to_dict, load_feature_config,
                                          parse_feature_config)

BASE = {"name": "t", "features": {"user": [{"name": "user_id", "kind": "categorical_id"}]},
        "sequence": {"behaviors": ["click"], "global_length": 4, "realtime_length": 2}}


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_configs_load(name):
  config = load_feature_config(name)
  assert config.name == name
  assert config.group(FeatureGroup.USER) and config.group(FeatureGroup.ITEM)
  assert config.sequence.global_length > config.sequence.realtime_length > 0


def test_synthetic_config_has_every_feature_kind():
  kinds = {f.kind for f in load_feature_config("synthetic-lbs").features}
  assert kinds == set(FeatureKind)


@pytest.mark.parametrize("change, message", [
    ({"features": {"user": [{"name": "x", "kind": "float"}]}}, "unknown kind"),
    ({"features": {"user": [{"name": "x", "kind": "dense"}, {"name": "x", "kind": "dense"}]}}, "twice"),
    ({"features": {"user": [{"name": "click", "kind": "dense"}]}}, "contract columns"),
    ({"features": {"user": [{"name": "user_id", "kind": "dense"}]}}, "categorical_id"),
    ({"sequence": {"behaviors": [], "global_length": 4, "realtime_length": 2}}, "behaviors"),
    ({"sequence": {"behaviors": ["a"], "global_length": 0, "realtime_length": 2}}, "positive"),
    ({"sequence": {"behaviors": ["a"], "global_length": 4, "realtime_length": 2, "search": "item_id"}},
     "sequence.search 'item_id' must be a sequence side info"),
])
def test_bad_configs_are_rejected(change, message):
  with pytest.raises(ValueError, match=message):
    parse_feature_config({**BASE, **change})


def test_unknown_config_name():
  with pytest.raises(ValueError, match="unknown feature config"):
    load_feature_config("nope")


def test_day_start_respects_utc_offset():
  config = parse_feature_config({**BASE, "day_utc_offset_hours": 8})
  # 2026-01-01 15:59:59 UTC is 23:59:59 in UTC+8; one second later the local day changes.
  t = 1_767_283_199
  assert config.day_start(t) == 1_767_225_600 - 8 * 3600
  assert config.day_start(t + 1) == t + 1
  np.testing.assert_array_equal(config.day_start(np.array([t, t + 1])), [t - 86399, t + 1])


@pytest.mark.parametrize("name", PACKAGED)
def test_feature_config_to_dict_round_trips(name):
  config = load_feature_config(name)
  assert parse_feature_config(feature_config_to_dict(config)) == config
