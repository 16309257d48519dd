"""Serving signatures: the raw-tensor and the decoupled candidate-scoring signatures agree with
`serving_default`; warm-up requests; the TF Serving config files."""
import numpy as np
import pytest
import tensorflow as tf

from hemix_tf.data.feature_config import FeatureGroup, load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.export import ROW_LENGTHS, Signatures, model_input_spec
from hemix_tf.model.training import hashing_preprocessor

from model_inputs import hemix, random_features, rows, serialize, serialize_row

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")
USER = {f.name for f in FC.features if f.group == FeatureGroup.USER}
CANDIDATE = {f.name for f in FC.features if f.group != FeatureGroup.USER}


@pytest.fixture(scope="module")
def signatures():
  model = hemix(FC, SMALL)
  sigs = Signatures(model, hashing_preprocessor(FC, SMALL), FC)
  return sigs.all()


def test_score_candidates_equals_per_example_scores(signatures):
  users, per_user = 3, 7
  user_rows = rows(random_features(FC, users, seed=1, max_lengths={"global": 40, "realtime": 6}))
  item_rows = rows(random_features(FC, users * per_user, seed=2))
  user_side = [{k: v for k, v in r.items() if k not in CANDIDATE} for r in user_rows]
  candidates = [{k: v for k, v in r.items() if k in CANDIDATE} for r in item_rows]
  joined = [serialize_row({**user_side[i // per_user], **c}) for i, c in enumerate(candidates)]
  expected = signatures["serving_default"](examples=tf.constant(joined))
  got = signatures["score_candidates"](
      user_example=tf.constant([serialize_row(u) for u in user_side]),
      candidates=tf.reshape(tf.constant([serialize_row(c) for c in candidates]), [users, per_user]))
  for task in SMALL.tasks:
    assert got[task].shape == (users, per_user)
    np.testing.assert_allclose(got[task].numpy().reshape(-1), expected[task].numpy(), atol=1e-5)
  # The candidates matter (different scores), and a user's scores do not depend on the other users.
  assert np.std(got["click"].numpy()) > 1e-4
  alone = signatures["score_candidates"](user_example=tf.constant([serialize_row(user_side[1])]),
                                         candidates=tf.constant([[serialize_row(c) for c in candidates[7:14]]]))
  np.testing.assert_allclose(alone["click"].numpy()[0], got["click"].numpy()[1], atol=1e-5)


def test_predict_features_equals_serving_default(signatures):
  raw = random_features(FC, 6, seed=4)
  expected = signatures["serving_default"](examples=tf.constant(serialize(raw)))
  tensors = {}
  for name in model_input_spec(FC):
    value = raw[name]
    if isinstance(value, tf.RaggedTensor):
      tensors[name], tensors[name + ROW_LENGTHS] = value.flat_values, value.row_lengths()
    else:
      tensors[name] = value
  got = signatures["predict_features"](**tensors)
  for task in SMALL.tasks:
    np.testing.assert_allclose(got[task].numpy(), expected[task].numpy(), atol=1e-6)
