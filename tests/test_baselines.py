"""The baselines, HyFormer and LONGER + RankMixer under HeMix's feature interface: each trains (its loss
falls), and the accounting is the same for all (same embeddings, params split, profiler FLOPs)."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.padding import pad_lists
from hemix_tf.model.accounting import forward_flops, parameter_counts
from hemix_tf.model.baselines import TargetAttentionPooling
from hemix_tf.model.config import BASELINES, ENCODERS, BaselineConfig, HyFormerConfig, MixFormerConfig, preset
from hemix_tf.model.training import build_and_compile, build_model, hashing_preprocessor, with_labels

from model_inputs import encoded, random_features

_FULL = load_feature_config("synthetic-lbs")
# Short sequences (the models pad to L_G / L_R): the behaviour under test does not need 256 events.
FC = dataclasses.replace(_FULL, sequence=dataclasses.replace(_FULL.sequence, global_length=24, realtime_length=6))
SMALL = preset("cpu-small")
SHARED = {k: getattr(SMALL, k) for k in ("embedding_dim", "hash_buckets", "time_gap_buckets", "tasks", "head_hidden")}
CONFIGS = {name: BaselineConfig(model=name, **SHARED) for name in BASELINES} | {"hemix": SMALL}  # SMALL searches
CONFIGS |= {f"hyformer-{e}": HyFormerConfig(**SHARED, encoder=e) for e in ENCODERS}
CONFIGS["longer+rankmixer"] = HyFormerConfig(**SHARED, two_stage=True)
CONFIGS["mixformer"] = MixFormerConfig(**SHARED)
CONFIGS["ui-mixformer"] = MixFormerConfig(**SHARED, user_heads=4)
CONFIGS["dlrm+search"] = BaselineConfig(model="dlrm", global_search=True, realtime_search=True, **SHARED)
CONFIGS["dnn w/o sequences"] = BaselineConfig(model="dnn", use_sequences=False, **SHARED)
CONFIGS["din+search"] = BaselineConfig(model="din", global_search=True, realtime_search=True, **SHARED)
TABLES = hashing_preprocessor(FC, SMALL).table_sizes


@pytest.fixture(scope="module")
def batch():
  features = random_features(FC, 128, seed=5, max_lengths={"global": 24, "realtime": 6})
  features["click"] = tf.constant(np.random.default_rng(5).integers(0, 2, 128), tf.int64)
  return encoded(FC, features, SMALL)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_model_trains(name, batch):
  config = CONFIGS[name]
  keras.utils.set_random_seed(0)
  model = build_and_compile(FC, config, TABLES, learning_rate=3e-3)
  # Batches of unknown size, as from files: a layer that needs a static token count must not lose it.
  data = tf.data.Dataset.from_tensor_slices(batch).batch(64).map(lambda f: with_labels(f, config.tasks)).repeat()
  losses = model.fit(data, steps_per_epoch=10, epochs=4, verbose=0).history["loss"]  # epoch means
  assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_accounting_is_consistent_across_models():
  counts, flops = {}, {}
  for name, config in CONFIGS.items():
    model = build_model(FC, config, TABLES)
    counts[name] = parameter_counts(model, FC)
    assert counts[name]["dense_params"] + counts[name]["embedding_params"] == model.count_params(), name
    flops[name] = forward_flops(model, FC)
  # The same tables for everyone, but the events' own tables for a model that reads no sequence.
  assert len({c["embedding_params"] for name, c in counts.items() if name != "dnn w/o sequences"}) == 1
  assert counts["dnn w/o sequences"]["embedding_params"] < counts["dnn"]["embedding_params"]
  assert all(f > 0 for f in flops.values())
  # A transformer over every sequence event costs more than pairwise dots of a few fields.
  assert flops["mtgr"] > 3 * flops["dlrm"]


def test_unknown_baseline_and_bad_rankmixer_width_are_errors():
  with pytest.raises(ValueError, match="unknown baseline"):
    BaselineConfig(model="widedeep")
  with pytest.raises(ValueError, match="divisible"):
    build_model(FC, dataclasses.replace(CONFIGS["rankmixer"], d=30, tokens=16), TABLES)


def test_hyformer_queries_read_their_own_sequence(batch):
  """Multi-sequence modelling (HyFormer 3.7): changing only the real-time events changes the output,
  and a HyFormer whose d does not divide by T is refused."""
  model = build_model(FC, CONFIGS["hyformer-longer"], TABLES)
  base = model(batch)["click"].numpy()
  rt = batch["realtime_item_id"]
  changed = dict(batch, realtime_item_id=rt.with_flat_values((rt.flat_values + 7) % 1000))
  assert not np.allclose(model(changed)["click"].numpy(), base)
  with pytest.raises(ValueError, match="divide"):
    HyFormerConfig(**SHARED, d=30)


def test_ui_mixformer_user_heads_depend_on_the_user_alone(batch):
  """UI-MixFormer: masked HeadMixing keeps item sub-vectors out of the user heads, so they are the same
  whatever the candidate; the item heads do change. Plain MixFormer mixes everything."""
  other = encoded(FC, random_features(FC, 128, seed=9), SMALL)
  item = {f.name for f in FC.features if f.group.value != "user"}
  swapped = dict(batch, **{k: other[k] for k in item})
  model = build_model(FC, CONFIGS["ui-mixformer"], TABLES)
  a, b = model.head_tokens(batch).numpy(), model.head_tokens(swapped).numpy()
  np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
  assert not np.allclose(a[:, 4:], b[:, 4:])
  plain = build_model(FC, CONFIGS["mixformer"], TABLES)
  assert not np.allclose(plain.head_tokens(batch).numpy()[:, :4], plain.head_tokens(swapped).numpy()[:, :4])


def test_transformer_block_computes_only_the_tokens_read():
  """MTGR's last block computes only the field tokens: the same values as the full block's first k, with
  padded tokens still masked."""
  from hemix_tf.model.mixer import TransformerBlock
  tokens = tf.random.stateless_normal([3, 9, 8], seed=[0, 1])
  mask = tf.constant([[1] * 9, [1] * 6 + [0] * 3, [1] * 4 + [0] * 5], tf.float32)
  block = TransformerBlock(heads=2, expansion=2)
  full = block(tokens, mask=mask)
  np.testing.assert_allclose(block(tokens, mask=mask, outputs=4), full[:, :4], rtol=1e-5, atol=1e-6)
  padded_changed = tf.where(mask[:, :, None] > 0, tokens, 100.0)
  np.testing.assert_allclose(block(padded_changed, mask=mask, outputs=4), full[:, :4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_get_config_rebuilds_the_same_model(name, batch):
  """get_config is JSON and from_config(get_config()) is the same architecture: with the weights
  copied, the same outputs (a model can be cloned, reloaded or warm-started)."""
  model = build_model(FC, CONFIGS[name], TABLES)
  expected = model(batch)
  config = json.loads(json.dumps(model.get_config()))
  clone = type(model).from_config(config)
  assert clone.config == model.config and clone.feature_config == FC and clone.table_sizes == TABLES
  clone(batch)
  clone.set_weights(model.get_weights())
  for task, p in clone(batch).items():
    np.testing.assert_allclose(p.numpy(), expected[task].numpy(), atol=1e-6)


def test_a_saved_keras_model_loads_with_its_weights(tmp_path, batch):
  """The Keras format rebuilds the model from get_config and its input shapes (padded inputs, as the
  input pipeline gives them), then loads the weights."""
  batch = pad_lists(batch, FC)
  model = build_model(FC, CONFIGS["hemix"], TABLES)
  expected = model(batch)["click"].numpy()
  model.save(tmp_path / "hemix.keras")
  loaded = keras.models.load_model(tmp_path / "hemix.keras")
  assert type(loaded) is type(model) and loaded.config == model.config
  np.testing.assert_allclose(loaded(batch)["click"].numpy(), expected, atol=1e-6)


def test_din_pooling_with_hard_search_reads_the_searched_events_scaled_by_their_share():
  keras.utils.set_random_seed(0)
  pooling = TargetAttentionPooling(8)
  candidate = tf.random.normal([2, 4])
  events = tf.random.normal([2, 5, 3])
  mask = tf.constant([[1.0, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  search = tf.constant([[1.0, 0, 1, 0, 1], [0, 0, 1, 1, 1]])  # row 2 finds no real event
  searched = pooling([candidate, events, mask], search).numpy()
  # Row 1: the same as the plain pooling of the two searched real events, times their share 2 / 4.
  alone = pooling([candidate[:1], tf.gather(events[:1], [0, 2], axis=1), tf.ones([1, 2])]).numpy()
  np.testing.assert_allclose(searched[0], alone[0] * 0.5, atol=1e-6)
  np.testing.assert_array_equal(searched[1], np.zeros(3))


def _with_other_events(batch, sequences=("global", "realtime")):
  changed = dict(batch)
  for s in sequences:
    ids = batch[f"{s}_item_id"]
    changed[f"{s}_item_id"] = ids.with_flat_values((ids.flat_values + 7) % 1000)
  return changed


@pytest.mark.parametrize("name,reads_sequences", [("dnn", True), ("din", True), ("dnn w/o sequences", False)])
def test_dnn_and_din_read_the_sequences_unless_told_not_to(name, reads_sequences, batch):
  model = build_model(FC, CONFIGS[name], TABLES)
  moved = not np.allclose(model(batch)["click"].numpy(), model(_with_other_events(batch))["click"].numpy())
  assert moved == reads_sequences


@pytest.mark.parametrize("model_name", ["din+search", "dlrm"])
@pytest.mark.parametrize("left_out", ["global", "realtime"])
def test_a_baseline_reads_only_the_sequences_it_is_given(model_name, left_out, batch):
  """HeMix's sequence ablations (Figure 3) on a baseline: without one sequence its events no longer move
  the prediction (nor its hard search), the other's still do."""
  kept = "realtime" if left_out == "global" else "global"
  config = dataclasses.replace(CONFIGS[model_name], **{f"use_{left_out}_sequence": False})
  model = build_model(FC, config, TABLES)
  base = model(batch)["click"].numpy()
  np.testing.assert_allclose(model(_with_other_events(batch, (left_out,)))["click"].numpy(), base, rtol=0, atol=1e-7)
  assert not np.allclose(model(_with_other_events(batch, (kept,)))["click"].numpy(), base)


def test_dlrm_without_dense_features_reads_the_dot_products_only():
  """DLRM's interaction (its paper; FuxiCTR's DLRM) on data with no dense feature (MovieLens): no bottom
  MLP, no constant field of zeros: the top MLP reads the F (F - 1) / 2 dot products of the fields."""
  full = load_feature_config("movielens")
  fc = dataclasses.replace(full, sequence=dataclasses.replace(full.sequence, global_length=8, realtime_length=4))
  tables = hashing_preprocessor(fc, SMALL).table_sizes
  features = random_features(fc, 16, seed=1, max_lengths={"global": 8, "realtime": 4})
  model = build_model(fc, CONFIGS["dlrm"], tables)
  model(encoded(fc, features, SMALL))
  assert not any("bottom" in w.name for w in model.weights)
  fields = len(fc.features) + 2 * 2  # a mean and a DIN pooling per sequence
  top_in = next(w for w in model.weights if "top_0/kernel" in w.name)
  assert top_in.shape[0] == fields * (fields - 1) // 2
