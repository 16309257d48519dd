"""Compiling and feeding a HeMix model: BCE per task (Eq. 23) on (features, labels) pairs."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.model.config import HeMixConfig
from hemix_tf.model.hemix import HeMix


def with_labels(features: dict, tasks: tuple[str, ...]) -> tuple[dict, dict]:
  """A parsed batch -> (features, {task: float label}) for `model.fit`."""
  return features, {task: tf.cast(features[task], tf.float32) for task in tasks}


def build_and_compile(feature_config: FeatureConfig, config: HeMixConfig,
                      learning_rate: float = 1e-3) -> HeMix:
  """HeMix with one BCE loss per task (Eq. 23, summed), Adam, and AUC per task."""
  model = HeMix(feature_config, config)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss={task: keras.losses.BinaryCrossentropy() for task in config.tasks},
                metrics={task: [keras.metrics.AUC(name="auc")] for task in config.tasks})
  return model
