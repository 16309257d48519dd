"""Our TFMA metrics (pipelines/tfma_metrics.py) on TFMA's per-example inputs, without a pipeline."""
import numpy as np
import pytest
from sklearn.metrics import log_loss
from tensorflow_model_analysis.metrics import metric_types

from hemix_tf.metrics import group_auc
from pipelines.tfma_metrics import EPSILON, ExampleSums, GroupAUC

N = 400
RNG = np.random.default_rng(0)
USERS = RNG.integers(0, 30, N)
LABELS = {t: (RNG.random(N) < 0.4).astype(np.float32) for t in ("click", "conversion")}
SCORES = {t: RNG.random(N).astype(np.float32) for t in ("click", "conversion")}
SCORES["conversion"][:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # the clip


def evaluated(metric, model_name: str) -> dict[str, float]:
  """The metric's values {name: value} of the `conversion` output as TFMA computes them: per example,
  two workers' partial results merged. `model_name`: "" for one model; else the candidate's, its
  predictions nested by model name beside a baseline's (labels are not)."""
  (computation,) = metric.computations(model_names=[model_name], output_names=["conversion"])
  combiner = computation.combiner
  halves = [combiner.create_accumulator(), combiner.create_accumulator()]
  for i in range(N):
    prediction = {t: np.array([SCORES[t][i]]) for t in SCORES}
    if model_name:
      prediction = {model_name: prediction, "baseline": {t: np.array([0.5]) for t in SCORES}}
    element = metric_types.StandardMetricInputs(
        labels={t: np.array([LABELS[t][i]]) for t in LABELS}, predictions=prediction,
        features={"user_id": np.array([USERS[i]])})
    halves[i % 2] = combiner.add_input(halves[i % 2], element)
  values = combiner.extract_output(combiner.merge_accumulators(halves))
  assert {key.output_name for key in values} == {"conversion"}
  assert {key.model_name for key in values} == {model_name}
  return {key.name: value for key, value in values.items()}


@pytest.mark.parametrize("model_name", ["", "candidate"])
def test_group_auc_of_each_output_for_one_model_or_beside_a_baseline(model_name):
  expected = group_auc(LABELS["conversion"], SCORES["conversion"], USERS)
  assert evaluated(GroupAUC(), model_name) == {"gauc": pytest.approx(expected, abs=1e-12)}


@pytest.mark.parametrize("model_name", ["", "candidate"])
def test_example_sums_are_tfma_s_means_and_keras_log_loss_merged_exactly(model_name):
  """TFMA's example_count, mean_label, mean_prediction and calibration, and Keras' binary cross-entropy
  (predictions clipped to [1e-7, 1 - 1e-7]); two workers' partial sums merge exactly (TFMA 0.52's own
  BinaryCrossEntropy counts the first of them twice)."""
  labels, scores = LABELS["conversion"].astype(np.float64), SCORES["conversion"].astype(np.float64)
  clipped = np.clip(scores, EPSILON, 1 - EPSILON)
  assert evaluated(ExampleSums(), model_name) == {
      "example_count": N, "mean_label": pytest.approx(labels.mean(), rel=1e-12),
      "mean_prediction": pytest.approx(scores.mean(), rel=1e-12),
      "calibration": pytest.approx(scores.sum() / labels.sum(), rel=1e-12),
      "binary_crossentropy": pytest.approx(log_loss(labels, clipped, labels=[0, 1]), rel=1e-9)}
