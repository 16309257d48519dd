"""with_oov_dropout: training ids read as out of vocabulary at a given rate, reproducibly."""
import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.training import hashing_preprocessor, with_oov_dropout


class _Vocabularies:
  """What with_oov_dropout reads of a vocabulary encoder: the table sizes (the last row out of vocabulary)."""
  table_sizes = {"user_id": 11, "item_id": 101}


def _batches(n: int = 8, size: int = 2000) -> tf.data.Dataset:
  rng = np.random.default_rng(0)
  return tf.data.Dataset.from_tensor_slices({
      "user_id": rng.integers(0, 10, (n, size)), "item_id": rng.integers(0, 100, (n, size))})


def _ids(dataset) -> list[np.ndarray]:
  return [batch["user_id"] for batch in dataset.as_numpy_iterator()]


def test_a_fifth_of_the_users_become_the_out_of_vocabulary_row_and_nothing_else_changes():
  config = dataclasses.replace(preset("cpu-small"), oov_dropout=0.2)
  dropped = list(with_oov_dropout(_batches(), config, _Vocabularies(), seed=0).as_numpy_iterator())
  original = list(_batches().as_numpy_iterator())
  for before, after in zip(original, dropped):
    oov = after["user_id"] == 10
    assert 0.17 < oov.mean() < 0.23
    np.testing.assert_array_equal(after["user_id"][~oov], before["user_id"][~oov])
    np.testing.assert_array_equal(after["item_id"], before["item_id"])  # not in oov_dropout_tables


def test_the_draws_depend_on_the_seed_and_the_batch_index_only():
  """A resumed run (first_batch=k on the stream from batch k) draws what the uninterrupted run did."""
  config = dataclasses.replace(preset("cpu-small"), oov_dropout=0.3)
  whole = _ids(with_oov_dropout(_batches(), config, _Vocabularies(), seed=5))
  again = _ids(with_oov_dropout(_batches(), config, _Vocabularies(), seed=5))
  resumed = _ids(with_oov_dropout(_batches().skip(3), config, _Vocabularies(), seed=5, first_batch=3))
  other_seed = _ids(with_oov_dropout(_batches(), config, _Vocabularies(), seed=6))
  for a, b in zip(whole, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(whole[3:], resumed):
    np.testing.assert_array_equal(a, b)
  assert any((a != b).any() for a, b in zip(whole, other_seed))


def test_off_in_the_paper_preset_and_for_hashed_ids(caplog):
  config = dataclasses.replace(preset("cpu-small"), oov_dropout=0.1)
  data = _batches()
  assert with_oov_dropout(data, preset("paper"), _Vocabularies(), seed=0) is data  # the paper's: 0
  hashed = hashing_preprocessor(load_feature_config("synthetic-lbs"), config)
  with caplog.at_level(logging.WARNING):  # a CLI run earlier in this process may have quietened the root logger
    assert with_oov_dropout(data, config, hashed, seed=0) is data
  assert "hashed ids have no out-of-vocabulary row" in caplog.text
  with pytest.raises(ValueError, match=r"oov_dropout=1.0 must be in \[0, 1\)"):
    dataclasses.replace(config, oov_dropout=1.0)


def test_every_model_of_the_experiments_shares_the_default_but_the_papers():
  from hemix_tf.experiments.harness import ExperimentConfig
  cfg = ExperimentConfig(suite="table2", dataset="ml-100k")
  assert {cfg.model_config(n).oov_dropout for n in ("HeMix", "DIN", "DNN", "DNN w/o sequences", "DLRM")} == {0.2}
  assert cfg.model_config("HeMix (paper)").oov_dropout == 0
