"""The base of every ranking model here (HeMix, the baselines, HyFormer, MixFormer): built from
(feature config, model config, table sizes), and serialisable from exactly those, so that a trained
model can be reloaded with `keras.models.load_model`, rebuilt with `from_config(get_config())` or
warm-started by loading its weights into a fresh one."""
from __future__ import annotations

from typing import Mapping

import tf_keras as keras

from hemix_tf.data.feature_config import FeatureConfig, feature_config_to_dict, parse_feature_config
from hemix_tf.model.config import InputConfig, model_config_from_dict, model_config_to_dict


class RankingModel(keras.Model):
  """Encoded features -> {task: probability [B]}; subclasses build their layers in __init__."""

  def __init__(self, feature_config: FeatureConfig, config: InputConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(**kwargs)
    self.feature_config, self.config = feature_config, config
    self.table_sizes = {name: int(rows) for name, rows in table_sizes.items()}

  def get_config(self) -> dict:
    return {"name": self.name, "feature_config": feature_config_to_dict(self.feature_config),
            "config": model_config_to_dict(self.config), "table_sizes": dict(self.table_sizes)}

  @classmethod
  def from_config(cls, config: dict, custom_objects=None):
    return cls(parse_feature_config(config["feature_config"]), model_config_from_dict(config["config"]),
               config["table_sizes"], name=config.get("name"))
