"""TFMA metrics of our own, computed by the Evaluator beside its built-in ones.

    GroupAUC   user-level GAUC (hemix_tf.metrics.group_auc): the AUC within each user who has both labels,
               averaged with the user's number of examples as weight; per output and per slice, for this
               model and the last blessed one. The group is the raw `user_id` feature of the examples.
    LogLoss    the mean binary cross-entropy ("binary_crossentropy", predictions clipped to [1e-7, 1 - 1e-7]
               as Keras does). TFMA has two: its own `BinaryCrossEntropy` (0.52) merges its first
               accumulator into itself (biased as soon as two workers' results merge), and Keras'
               `BinaryCrossentropy` runs through TFMA's TF wrapper, a tenth of the Evaluator's time.

Both read an example's label and prediction directly (`_of_output`): TFMA's general reader (class
weights, top-k, typing checks) cost as much as the metrics themselves.

`eval_config` names it with `module="pipelines.tfma_metrics"`: the Evaluator imports this module where it
runs (locally, or in the pipeline image, which installs the package).
"""
from __future__ import annotations

from collections.abc import Mapping

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from hemix_tf.data.feature_config import USER_ID
from hemix_tf.metrics import group_auc

GROUP_AUC_NAME = "gauc"
LOG_LOSS_NAME = "binary_crossentropy"
EPSILON = 1e-7  # Keras' clip of predictions in its binary cross-entropy


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


class LogLoss(metric_types.Metric):
  """The mean binary cross-entropy of each output's prediction against its label."""

  def __init__(self, name: str = LOG_LOSS_NAME):
    super().__init__(_log_loss, name=name)


metric_types.register_metric(LogLoss)


def _log_loss(name: str = LOG_LOSS_NAME, eval_config=None, model_names=None, output_names=None,
              example_weighted: bool = False) -> metric_types.MetricComputations:
  return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=_LogLossCombiner(key))
          for key in _keys(name, model_names, output_names, example_weighted)]


def _keys(name: str, model_names, output_names, example_weighted: bool) -> list[metric_types.MetricKey]:
  return [metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 example_weighted=example_weighted)
          for model_name in model_names or [""] for output_name in output_names or [""]]


class _LogLossCombiner(beam.CombineFn):
  """(sum of the examples' cross-entropies, number of examples)."""

  def __init__(self, key: metric_types.MetricKey):
    self._key = key

  def create_accumulator(self) -> tuple[float, int]:
    return 0.0, 0

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    label = np.ravel(_of_output(element.label, self._key)).astype(np.float64)
    prediction = np.clip(np.ravel(_of_output(element.prediction, self._key)).astype(np.float64), EPSILON,
                         1 - EPSILON)
    loss = -(label * np.log(prediction) + (1 - label) * np.log1p(-prediction))
    return accumulator[0] + float(loss.sum()), accumulator[1] + loss.size

  def merge_accumulators(self, accumulators):
    accumulators = list(accumulators)
    return sum(a[0] for a in accumulators), sum(a[1] for a in accumulators)

  def extract_output(self, accumulator) -> dict:
    total, count = accumulator
    return {self._key: total / count if count else float("nan")}


class _GroupAUCCombiner(beam.CombineFn):
  """Collects (group, label, prediction) of every example; the GAUC at the end (one pass is not
  possible: a group's AUC needs all its examples)."""

  def __init__(self, key: metric_types.MetricKey, group_key: str):
    self._key, self._group_key = key, group_key

  def create_accumulator(self) -> tuple[list, list, list]:
    return [], [], []

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    """Reads the example's label and prediction of this output directly: TFMA's general
    `to_label_prediction_example_weight` (class weights, top-k, typing checks) cost a tenth of the
    Evaluator's time for these two numbers."""
    groups, labels, predictions = accumulator
    label = np.ravel(_of_output(element.label, self._key))
    prediction = np.ravel(_of_output(element.prediction, self._key))
    group = np.ravel(element.features[self._group_key])
    groups.extend(np.broadcast_to(group, label.shape).tolist())
    labels.extend(label.tolist())
    predictions.extend(np.broadcast_to(prediction, label.shape).tolist())
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


def _of_output(value, key: metric_types.MetricKey):
  """A label or prediction of one example for `key`: TFMA nests them by model name (beside a baseline
  model: predictions only) and by output name (a model with several outputs)."""
  for name in (key.model_name, key.output_name):
    if name and isinstance(value, Mapping) and name in value:
      value = value[name]
  return value
