"""TFMA metrics of our own, computed by the Evaluator beside its built-in ones.

    GroupAUC   user-level GAUC (hemix_tf.metrics.group_auc): the AUC within each user who has both labels,
               averaged with the user's number of examples as weight; per output and per slice, for this
               model and the last blessed one. The group is the raw `user_id` feature of the examples.

`eval_config` names it with `module="pipelines.tfma_metrics"`: the Evaluator imports this module where it
runs (locally, or in the pipeline image, which installs the package).
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from hemix_tf.data.feature_config import USER_ID
from hemix_tf.metrics import group_auc

GROUP_AUC_NAME = "gauc"


class GroupAUC(metric_types.Metric):
  """GAUC over the groups of `group_key` (the raw user id by default)."""

  def __init__(self, name: str = GROUP_AUC_NAME, group_key: str = USER_ID):
    super().__init__(_group_auc, name=name, group_key=group_key)


metric_types.register_metric(GroupAUC)


def _group_auc(name: str = GROUP_AUC_NAME, group_key: str = USER_ID, eval_config=None, model_names=None,
               output_names=None, example_weighted: bool = False) -> metric_types.MetricComputations:
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                   example_weighted=example_weighted)
      computations.append(metric_types.MetricComputation(
          keys=[key], preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[group_key])],
          combiner=_GroupAUCCombiner(key, eval_config, group_key)))
  return computations


class _GroupAUCCombiner(beam.CombineFn):
  """Collects (group, label, prediction) of every example; the GAUC at the end (one pass is not
  possible: a group's AUC needs all its examples)."""

  def __init__(self, key: metric_types.MetricKey, eval_config, group_key: str):
    self._key, self._eval_config, self._group_key = key, eval_config, group_key

  def create_accumulator(self) -> tuple[list, list, list]:
    return [], [], []

  def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
    groups, labels, predictions = accumulator
    label, prediction, _ = next(metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config, model_name=self._key.model_name,
        output_name=self._key.output_name, flatten=True))
    group = np.asarray(element.features[self._group_key]).reshape(-1)
    groups.extend(np.broadcast_to(group, label.shape).tolist())
    labels.extend(label.tolist())
    predictions.extend(prediction.tolist())
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
