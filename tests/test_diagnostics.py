"""The instruments of hemix_tf.experiments.diagnostics: probes, attention entropy, hidden quantities."""
import numpy as np
import pytest

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator
from hemix_tf.experiments.diagnostics import attention_entropy, hidden_quantities, linear_probes, stage_activations
from hemix_tf.experiments.isolated_attention import IsolatedTargetAttention, category_share
from hemix_tf.model.config import preset
from hemix_tf.model.training import hashing_preprocessor

from model_inputs import encoded, hemix, random_features

FC = load_feature_config("synthetic-lbs")


def test_linear_probe_finds_a_linear_signal_and_not_noise():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4000, 20))
  target = (x[:, 3] - x[:, 7] > 0).astype(int)
  noise = rng.integers(0, 2, 4000)
  probes = linear_probes({"stage": x}, {"linear": target, "noise": noise})["stage"]
  assert probes["linear"] > 0.95
  assert abs(probes["noise"] - 0.5) < 0.05


@pytest.mark.parametrize("name, keras_init, starts_uniform", [
    ("paper", True, True),  # Keras' small embeddings: the softmax starts uniform (ARCHITECTURE, finding 1)
    ("paper", False, False),  # the preset's N(0, 1) embeddings: scores at unit scale (finding 22)
    ("cpu-small", False, False)])  # QK-norm: unit-scale scores whatever the embeddings
def test_stages_and_attention_entropy(name, keras_init, starts_uniform):
  config = preset(name, **({"embedding_init_stddev": None} if keras_init else {}))
  batch = encoded(FC, random_features(FC, 16, seed=2), config)
  model = hemix(FC, config)
  model(batch)
  stages = stage_activations(model, batch)
  assert list(stages) == ["tokens/global", "tokens/realtime", "tokens/ns", "block_0", "block_1", "pooled"]
  # What the heads read: the mean token (`paper`), the flattened tokens (cpu-small's pooling="flatten").
  assert stages["pooled"].shape == (16, config.d_t if config.pooling == "mean" else config.num_tokens * config.d_t)
  entropy = attention_entropy(model, batch)
  assert set(entropy) == {"global", "realtime"}
  if starts_uniform:
    assert min(entropy.values()) > 0.999
  else:
    assert max(entropy.values()) < 0.999


def test_hidden_quantities_are_the_generators():
  cfg = SyntheticConfig(num_impressions=200)
  generator = SyntheticGenerator(cfg, FC)
  imp, _ = generator.user(3)
  rows = np.arange(0, len(imp["timestamp"]), 2)
  hidden = hidden_quantities(generator, np.full(len(rows), 3), imp["timestamp"][rows], imp["item_id"][rows])
  np.testing.assert_array_equal(hidden["intent_match"], imp["intent_match"][rows])
  assert hidden["intent_match"].any() and not hidden["intent_match"].all()
  assert np.all((hidden["interest"] > 0) & (hidden["interest"] < 1))


def test_category_share_counts_the_real_events_in_the_candidates_category():
  config = preset("cpu-small")
  raw = random_features(FC, 8, seed=4)
  batch = encoded(FC, raw, config)
  share = category_share(batch, FC, "global").numpy()
  cats, seq = batch["category"].numpy(), batch["global_category"].to_list()
  expected = [np.mean(np.array(s) == c) if s else 0.0 for c, s in zip(cats, seq)]
  np.testing.assert_allclose(share, expected, atol=1e-6)


@pytest.mark.parametrize("readout,keys,search", [("sigmoid", "event", False), ("sink", "category", False),
                                                 ("dot", "category", False), ("sigmoid", "event", True)])
def test_isolated_attention_reads_its_own_sequence_and_the_candidates_category_only(readout, keys, search):
  config = preset("cpu-small")
  batch = encoded(FC, random_features(FC, 8, seed=5), config)
  model = IsolatedTargetAttention(FC, config, hashing_preprocessor(FC, config).table_sizes, "global", readout, keys,
                                  search)
  base = model(batch).numpy()
  other = dict(batch, realtime_category=batch["realtime_category"] + 1, user_id=batch["user_id"] + 1)
  np.testing.assert_allclose(model(other).numpy(), base, atol=1e-6)
  changed = dict(batch, global_category=batch["global_category"] + 1)
  assert not np.allclose(model(changed).numpy(), base)
  assert not np.allclose(model(dict(batch, category=batch["category"] + 1)).numpy(), base)
