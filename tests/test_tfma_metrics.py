"""Our TFMA metrics (pipelines/tfma_metrics.py) on TFMA's per-example inputs, without a pipeline."""
import numpy as np
import pytest
from sklearn.metrics import log_loss
from tensorflow_model_analysis.metrics import metric_types

from hemix_tf.metrics import group_auc
from pipelines.tfma_metrics import EPSILON, GroupAUC, LogLoss

N = 400
RNG = np.random.default_rng(0)
USERS = RNG.integers(0, 30, N)
LABELS = {t: (RNG.random(N) < 0.4).astype(np.float32) for t in ("click", "conversion")}
SCORES = {t: RNG.random(N).astype(np.float32) for t in ("click", "conversion")}
SCORES["conversion"][:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # the clip


def evaluated(metric, model_name: str) -> float:
  """The metric of the `conversion` output as TFMA computes it: per example, two workers' partial
  results merged. `model_name`: "" for one model; else the candidate's, its predictions nested by model
  name beside a baseline's (labels are not)."""
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
  (value,) = combiner.extract_output(combiner.merge_accumulators(halves)).values()
  return value


@pytest.mark.parametrize("model_name", ["", "candidate"])
def test_group_auc_of_each_output_for_one_model_or_beside_a_baseline(model_name):
  expected = group_auc(LABELS["conversion"], SCORES["conversion"], USERS)
  assert evaluated(GroupAUC(), model_name) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("model_name", ["", "candidate"])
def test_log_loss_is_keras_binary_cross_entropy_merged_exactly(model_name):
  """Keras' binary cross-entropy (predictions clipped to [1e-7, 1 - 1e-7]); two workers' partial sums
  merge exactly (TFMA 0.52's own BinaryCrossEntropy counts the first of them twice)."""
  clipped = np.clip(SCORES["conversion"].astype(np.float64), EPSILON, 1 - EPSILON)
  expected = log_loss(LABELS["conversion"], clipped, labels=[0, 1])
  assert evaluated(LogLoss(), model_name) == pytest.approx(expected, rel=1e-9)
