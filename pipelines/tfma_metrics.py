"""TFMA metrics of our own, computed by the Evaluator beside TFMA's AUC and CalibrationPlot.

    ExampleSums  the metrics that are sums over examples, per output and slice, in one pass:
                 example_count, mean_label, mean_prediction, calibration (mean prediction / mean label)
                 and binary_crossentropy (the mean log loss, predictions clipped to [1e-7, 1 - 1e-7] as
                 Keras does). The names and values of TFMA's ExampleCount, MeanLabel, MeanPrediction and
                 Calibration; TFMA's own log losses do not fit: its `BinaryCrossEntropy` (0.52) merges its
                 first accumulator into itself (biased as soon as two workers' results merge), and Keras'
                 `BinaryCrossentropy` runs through TFMA's TF wrapper, a tenth of the Evaluator's time.
    GroupAUC     user-level GAUC (hemix_tf.metrics.group_auc): the AUC within each user who has both
                 labels, averaged with the user's number of examples as weight; per output and per slice,
                 for this model and the last blessed one. The group is the raw `user_id` feature.

TFMA calls a metric's combiner once per example and slice. Both read the example's label and prediction
as Python floats (`_values`): TFMA's general reader (class weights, top-k, typing checks) and numpy on
one-element arrays cost more than the arithmetic, and with TFMA's four built-ins in place of ExampleSums
they were a quarter of the Evaluator's time (docs/BENCHMARKS.md).

`eval_config` names them with `module="pipelines.tfma_metrics"`: the Evaluator imports this module where
it runs (locally, or in the pipeline image, which installs the package).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from hemix_tf.data.feature_config import USER_ID
from hemix_tf.metrics import group_auc

GROUP_AUC_NAME = "gauc"
LOG_LOSS_NAME = "binary_crossentropy"
SUM_NAMES = ("example_count", "mean_label", "mean_prediction", "calibration", LOG_LOSS_NAME)
EPSILON = 1e-7  # Keras' clip of predictions in its binary cross-entropy


class ExampleSums(metric_types.Metric):
  """example_count, mean_label, mean_prediction, calibration and binary_crossentropy of each output."""

  def __init__(self):
    super().__init__(_example_sums)


metric_types.register_metric(ExampleSums)


def _example_sums(eval_config=None, model_names=None, output_names=None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
  return [metric_types.MetricComputation(keys=keys, preprocessors=None, combiner=_ExampleSumsCombiner(keys))
          for keys in zip(*(_keys(name, model_names, output_names, example_weighted) for name in SUM_NAMES))]


class GroupAUC(metric_types.Metric):
  """GAUC over the groups of `group_key` (the raw user id by default)."""

  def __init__(self, name: str = GROUP_AUC_NAME, group_key: str = USER_ID):
    super().__init__(_group_auc, name=name, group_key=group_key)


metric_types.register_metric(GroupAUC)


def _group_auc(name: str = GROUP_AUC_NAME, group_key: str = USER_ID, eval_config=None, model_names=None,
               output_names=None, example_weighted: bool = False) -> metric_types.MetricComputations:
  return [metric_types.MetricComputation(
      keys=[key], preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[group_key])],
      combiner=_GroupAUCCombiner(key, group_key))
      for key in _keys(name, model_names, output_names, example_weighted)]


def _keys(name: str, model_names, output_names, example_weighted: bool) -> list[metric_types.MetricKey]:
  return [metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 example_weighted=example_weighted)
          for model_name in model_names or [""] for output_name in output_names or [""]]


class _ExampleSumsCombiner(beam.CombineFn):
  """[examples, sum of labels, sum of predictions, sum of cross-entropies]."""

  def __init__(self, keys: tuple[metric_types.MetricKey, ...]):
    self._keys = keys

  def create_accumulator(self) -> list:
    return [0, 0.0, 0.0, 0.0]

  def add_input(self, accumulator: list, element: metric_types.StandardMetricInputs) -> list:
    key = self._keys[0]
    for label, prediction in zip(_values(element.label, key), _values(element.prediction, key)):
      clipped = min(max(prediction, EPSILON), 1 - EPSILON)
      accumulator[0] += 1
      accumulator[1] += label
      accumulator[2] += prediction
      accumulator[3] -= label * math.log(clipped) + (1 - label) * math.log1p(-clipped)
    return accumulator

  def merge_accumulators(self, accumulators) -> list:
    return [sum(values) for values in zip(*accumulators)]

  def extract_output(self, accumulator: list) -> dict:
    count, labels, predictions, losses = accumulator
    means = [total / count if count else float("nan") for total in (labels, predictions, losses)]
    calibration = predictions / labels if labels else float("nan")
    return dict(zip(self._keys, (count, means[0], means[1], calibration, means[2])))


class _GroupAUCCombiner(beam.CombineFn):
  """Collects (group, label, prediction) of every example; the GAUC at the end (one pass is not
  possible: a group's AUC needs all its examples)."""

  def __init__(self, key: metric_types.MetricKey, group_key: str):
    self._key, self._group_key = key, group_key

  def create_accumulator(self) -> tuple[list, list, list]:
    return [], [], []

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    groups, labels, predictions = accumulator
    label, prediction = _values(element.label, self._key), _values(element.prediction, self._key)
    group = np.ravel(element.features[self._group_key]).tolist()
    labels.extend(label)
    predictions.extend(prediction * len(label) if len(prediction) == 1 else prediction)
    groups.extend(group * len(label) if len(group) == 1 else group)
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for accumulator in accumulators:
      for into, values in zip(merged, accumulator):
        into.extend(values)
    return merged

  def extract_output(self, accumulator) -> dict:
    groups, labels, predictions = (np.asarray(values) for values in accumulator)
    value = group_auc(labels, predictions, groups) if len(labels) else None
    return {self._key: float("nan") if value is None else value}


def _values(value, key: metric_types.MetricKey) -> list[float]:
  """An example's labels or predictions for `key`, as Python floats: TFMA nests them by model name
  (beside a baseline model: predictions only) and by output name (a model with several outputs)."""
  for name in (key.model_name, key.output_name):
    if name and isinstance(value, Mapping) and name in value:
      value = value[name]
  return np.ravel(value).tolist()
