"""Our TFMA metrics (pipelines/tfma_metrics.py) on TFMA's per-example inputs, without a pipeline."""
import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from hemix_tf.metrics import group_auc
from pipelines.tfma_metrics import GroupAUC


@pytest.mark.parametrize("model_name", ["", "candidate"])
def test_group_auc_reads_each_examples_output_for_one_model_or_beside_a_baseline(model_name):
  """TFMA nests an example's predictions by model name when a baseline model is evaluated beside the
  candidate, and labels and predictions by output name: the GAUC of each output is that of its own
  labels and predictions."""
  rng = np.random.default_rng(0)
  n = 400
  users = rng.integers(0, 30, n)
  labels = {t: (rng.random(n) < 0.4).astype(np.float32) for t in ("click", "conversion")}
  scores = {t: rng.random(n).astype(np.float32) for t in ("click", "conversion")}
  (computation,) = [c for c in GroupAUC().computations(model_names=[model_name], output_names=["conversion"])]
  combiner = computation.combiner
  accumulator = combiner.create_accumulator()
  for i in range(n):
    prediction = {t: np.array([scores[t][i]]) for t in scores}
    if model_name:
      prediction = {model_name: prediction, "baseline": {t: np.array([0.5]) for t in scores}}
    element = metric_types.StandardMetricInputs(
        labels={t: np.array([labels[t][i]]) for t in labels}, predictions=prediction,
        features={"user_id": np.array([users[i]])})
    accumulator = combiner.add_input(accumulator, element)
  halves = [combiner.create_accumulator(), accumulator]  # merged as TFMA merges workers' partial results
  (value,) = combiner.extract_output(combiner.merge_accumulators(halves)).values()
  assert value == pytest.approx(group_auc(labels["conversion"], scores["conversion"], users), abs=1e-12)
