"""HeMix layers and model (HeMix Section 3): shapes, masking, decoupling, round trips, learning."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import roc_auc_score

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.padding import pad_lists
from hemix_tf.model.accounting import eq24_params, forward_flops, parameter_counts
from hemix_tf.model.config import Interaction, model_config_from_dict, model_config_to_dict, preset
from hemix_tf.model.export import export_saved_model, serving_function
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.mixer import HeteroMixerBlock, HeteroMixing, PerTokenFFN, fuse, reconstruct
from hemix_tf.model.tokenization import NORMALIZATIONS, MixedHeteroAttention, NSTokenizer
from hemix_tf.model.training import Adam, LinearWarmup, FailOnNonFiniteLoss, build_and_compile, hashing_preprocessor, with_labels
from hemix_tf.trainer import warm_start

from model_inputs import encoded, hemix, random_features, replace, serialize

FC = load_feature_config("synthetic-lbs")
SMALL = preset("cpu-small")
TABLES = hashing_preprocessor(FC, SMALL).table_sizes

ABLATIONS = {
    "full": {}, "no_fixed_queries": {"use_fixed_queries": False},
    "no_mixed_queries": {"use_mixed_queries": False}, "no_global": {"use_global_sequence": False},
    "no_realtime": {"use_realtime_sequence": False}, "rankmixer": {"interaction": Interaction.RANKMIXER},
    "transformer": {"interaction": Interaction.TRANSFORMER}, "flatten_pooling": {"pooling": "flatten"},
    "transformer_in_mixed_bfloat16": {"interaction": Interaction.TRANSFORMER, "precision": "mixed_bfloat16"},
    "rankmixer_in_mixed_bfloat16": {"interaction": Interaction.RANKMIXER, "precision": "mixed_bfloat16"},
    "field_dots": {"ns_dots": 8},
}


@pytest.fixture(scope="module")
def raw_batch():
  return random_features(FC, 8, seed=1)


@pytest.fixture(scope="module")
def batch(raw_batch):
  return encoded(FC, raw_batch, SMALL)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_shapes_for_every_ablation(batch, ablation):
  config = dataclasses.replace(SMALL, **ABLATIONS[ablation])
  model = hemix(FC, config)
  tokens = model.tokens(batch)
  assert tokens.shape == (8, config.num_tokens, config.d_t)
  out = model(batch)
  assert set(out) == {"click", "conversion"}
  for p in out.values():
    assert p.shape == (8,) and p.dtype == tf.float32 and np.all((p.numpy() > 0) & (p.numpy() < 1))


def test_paper_small_token_budget_and_forward():
  config = preset("paper-small")
  assert (config.global_dynamic_queries, config.realtime_dynamic_queries) == (16, 4)
  assert config.num_tokens == 60  # N = N_S + N_NS = 40 + 20 (Section 4.1.4)
  model = hemix(FC, config)
  assert model.tokens(encoded(FC, random_features(FC, 2), config)).shape == (2, 60, 256)


@pytest.mark.slow
def test_paper_large_builds_and_runs_one_example():
  config = preset("paper-large")
  model = hemix(FC, config)
  out = model(encoded(FC, random_features(FC, 1), config))
  assert out["click"].shape == (1,)
  dense = parameter_counts(model, FC)["dense_params"]
  assert 1.4e9 < dense < 1.7e9  # Table 2: HeMix-Large 1,484M


def test_ns_tokenizer_splits_the_last_layer():
  tok = NSTokenizer(5, 4, (8,))
  e = tf.random.normal([3, 7])
  t = tok(e)
  assert t.shape == (3, 5, 4)
  flat = tok.out(tok.hidden[0](e))  # F_NS(E): the split is a reshape of the last layer's output
  np.testing.assert_array_equal(tf.reshape(t, [3, 20]).numpy(), flat.numpy())


def test_field_dot_products_are_dots_of_per_field_projections():
  """HeMixConfig.ns_dots: F_NS reads E_{U,I,C} and <P_f(e_f), P_g(e_g)> for every pair of fields f < g,
  where P_f sees only field f's columns."""
  widths, k = (3, 1, 2), 4
  tok = NSTokenizer(5, 4, (8,), field_widths=widths, dot_width=k)
  e = tf.random.normal([2, 6], seed=0)
  tok(e)
  dots = tok.field_dots
  dots.bias.assign(tf.random.normal([3 * k], seed=1))  # a trained bias: not only the kernel's blocks
  kernel, bias = (dots.kernel * dots.block_mask).numpy(), dots.bias.numpy()
  starts = np.cumsum((0,) + widths)
  p = [e.numpy()[:, starts[f]:starts[f + 1]] @ kernel[starts[f]:starts[f + 1], f * k:(f + 1) * k]
       + bias[f * k:(f + 1) * k] for f in range(3)]
  expected = np.stack([(p[f] * p[g]).sum(-1) for f, g in ((0, 1), (0, 2), (1, 2))], axis=1)
  np.testing.assert_allclose(dots(e).numpy(), expected, rtol=1e-5, atol=1e-6)
  # The kernel outside the blocks never acts, even after an update puts weight there.
  dots.kernel.assign(dots.kernel + 1.0)
  changed = e.numpy().copy()
  changed[:, 3] += 1.0  # field 1 (width 1): only the pairs with field 1 move
  moved = np.abs(dots(tf.constant(changed)).numpy() - dots(e).numpy()) > 1e-6
  assert not moved[:, 1].any() and moved[:, 0].all() and moved[:, 2].all()
  assert tok(e).shape == (2, 5, 4) and tok.hidden[0].kernel.shape == (6 + 3, 8)


def _attention_inputs(seed=0, batch=4, length=6, d_i=5, valid=(6, 3, 1, 0)):
  rng = np.random.default_rng(seed)
  queries = tf.constant(rng.normal(size=(batch, 3, 8)), tf.float32)
  seq = rng.normal(size=(batch, length, d_i)).astype(np.float32)
  mask = (np.arange(length)[None] < np.array(valid)[:, None]).astype(np.float32)
  return queries, seq, mask


def test_attention_ignores_padding_appended_or_permuted():
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=8, heads=2)
  queries, seq, mask = _attention_inputs()
  base = att([queries, tf.constant(seq * mask[..., None]), tf.constant(mask)]).numpy()
  # Garbage in padded positions, more padding appended, padded positions permuted: same output.
  rng = np.random.default_rng(5)
  longer = np.concatenate([seq, rng.normal(size=(4, 5, 5)).astype(np.float32)], axis=1)
  longer_mask = np.concatenate([mask, np.zeros((4, 5), np.float32)], axis=1)
  for row in range(4):
    pad = np.flatnonzero(longer_mask[row] == 0)
    longer[row, pad] = longer[row, rng.permutation(pad)]
  out = att([queries, tf.constant(longer), tf.constant(longer_mask)]).numpy()
  np.testing.assert_allclose(out, base, atol=1e-6)
  assert np.all(np.isfinite(base))
  # The empty sequence (row 3) gives W_O's bias only.
  np.testing.assert_allclose(base[3], np.tile(att.w_o.bias.numpy(), (3, 1)), atol=1e-6)
  # A real (unmasked) change does change the output.
  changed = seq.copy()
  changed[0, 0] += 1.0
  assert not np.allclose(att([queries, tf.constant(changed * mask[..., None]), tf.constant(mask)]), base)


@pytest.mark.parametrize("options", [{"normalization": "sigmoid"}, {"normalization": "sink"},
                                     {"qk_norm": True, "event_norm": True}])
def test_attention_options_keep_padding_out(options):
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=8, heads=2, **options)
  queries, seq, mask = _attention_inputs()
  base = att([queries, tf.constant(seq * mask[..., None]), tf.constant(mask)]).numpy()
  garbage = seq + (1 - mask[..., None]) * np.random.default_rng(7).normal(size=seq.shape).astype(np.float32)
  np.testing.assert_allclose(att([queries, tf.constant(garbage), tf.constant(mask)]).numpy(), base, atol=1e-5)
  assert np.all(np.isfinite(base))


def _share_inputs(matches: int, length: int = 8):
  """One query and `length` events of which `matches` equal the query direction (the rest orthogonal)."""
  query = np.zeros([1, 1, 4], np.float32)
  query[..., 0] = 1.0
  events = np.zeros([1, length, 4], np.float32)
  events[0, :matches, 0] = 1.0
  events[0, matches:, 1] = 1.0
  return tf.constant(query), tf.constant(events), tf.ones([1, length])


def _total_weight(att: MixedHeteroAttention, matches: int) -> float:
  queries, events, mask = _share_inputs(matches)
  return float(tf.reduce_sum(att.attention_weights(queries, slice(None), att.keys_values(events)[0], mask)))


def _matching_attention(normalization: str) -> MixedHeteroAttention:
  att = MixedHeteroAttention(num_queries=1, d_t=4, d=4, heads=1, normalization=normalization)
  att(_share_inputs(1))
  att.w_q.assign(40.0 * np.eye(4, dtype=np.float32)[None])  # matching events score 20, others 0
  att.w_k.assign(np.eye(4, dtype=np.float32))
  return att


def test_sigmoid_and_sink_attention_say_how_many_events_match_softmax_does_not():
  """The reason for the sigmoid and sink options: the total weight on the events (what multiplies the
  values' bias b_V, or what moves the output away from the null value v_0) is 1 under softmax whether
  1 or 6 of 8 events match the query; under sigmoid it is the mean gate, under the sink n / (n + e^{b_0 - 20})."""
  totals = {"softmax": [_total_weight(_matching_attention("softmax"), m) for m in (1, 3, 6)]}
  np.testing.assert_allclose(totals["softmax"], [1.0, 1.0, 1.0], atol=1e-6)  # normalised: no count
  sigmoid = [_total_weight(_matching_attention("sigmoid"), m) for m in (1, 3, 6)]
  np.testing.assert_allclose(sigmoid, [(m * 1.0 + (8 - m) * 0.5) / 8 for m in (1, 3, 6)], atol=1e-3)
  sink = _matching_attention("sink")
  sink.null_logit.assign([20.0 + np.log(4.0)])  # the null key weighs as much as 4 matching events
  np.testing.assert_allclose([_total_weight(sink, m) for m in (1, 3, 6)], [m / (m + 4) for m in (1, 3, 6)],
                             atol=1e-3)


def test_searched_sigmoid_gates_still_average_over_every_real_event():
  """With a search mask the unsearched events get weight 0, and the gates are still divided by all n
  real events, so the output keeps the share of the sequence the search found."""
  att = _matching_attention("sigmoid")
  queries, events, mask = _share_inputs(3)
  search = tf.constant([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])  # 2 of the 3 matching + 5 others
  weights = att.attention_weights(queries, slice(None), att.keys_values(events)[0], mask, search).numpy()
  np.testing.assert_allclose(weights[0, 0, 0], [1 / 8, 1 / 8, 0, 0, 0.5 / 8, 0.5 / 8, 0.5 / 8, 0.5 / 8],
                             atol=1e-3)


def test_sink_attention_of_an_empty_sequence_is_the_null_value():
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=8, heads=2, normalization="sink")
  queries, seq, mask = _attention_inputs()
  out = att([queries, tf.constant(seq), tf.constant(mask)]).numpy()
  null = att.w_o(tf.reshape(att.null_value, [1, 8])).numpy()  # heads concatenated, then W_O (Eq. 8)
  np.testing.assert_allclose(out[3], np.tile(null, (3, 1)), atol=1e-5)  # row 3 has no event
  assert not np.allclose(out[0], out[3])


def test_qk_norm_scores_do_not_depend_on_the_embedding_scale():
  keras.utils.set_random_seed(0)
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=32, heads=2, qk_norm=True, event_norm=True)
  queries, seq, mask = _attention_inputs()
  att([queries, tf.constant(seq), tf.constant(mask)])
  small = att.attention_weights(queries * 0.05, slice(None), att.keys_values(tf.constant(seq * 0.05))[0], tf.constant(mask))
  large = att.attention_weights(queries, slice(None), att.keys_values(tf.constant(seq))[0], tf.constant(mask))
  np.testing.assert_allclose(small.numpy(), large.numpy(), atol=2e-3)  # inputs at Keras' embedding scale


def test_attention_uses_one_query_projection_per_position():
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=8, heads=2)
  queries, seq, mask = _attention_inputs()
  att([queries, tf.constant(seq), tf.constant(mask)])
  assert att.w_q.shape == (3, 8, 8) and att.w_k.shape == (5, 8) and att.w_v.shape == (5, 8)
  same = tf.tile(queries[:, :1], [1, 3, 1])  # identical queries at all positions
  out = att([same, tf.constant(seq), tf.constant(mask)]).numpy()
  assert not np.allclose(out[:, 0], out[:, 1])  # heterogeneous W_Q^(l): different outputs


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("event_norm", [False, True])
def test_the_attention_reads_the_events_or_their_keys_and_values_to_the_same_numbers(normalization, event_norm):
  """`attend_events`, (q W_K^T) E^T and (Att E) W_V, is `attend` over K̃ = E W_K, Ṽ = E W_V in another
  order: the same outputs and gradients, with a search, padding, an empty sequence, and one row of queries
  shared by every row (the fixed queries Q^s)."""
  keras.utils.set_random_seed(0)
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=8, heads=2, normalization=normalization, event_norm=event_norm)
  queries, seq, mask = _attention_inputs()
  att([queries, tf.constant(seq), tf.constant(mask)])
  for w in att.trainable_weights:  # the sink's and the bias' parameters start at zero: make them count
    w.assign(tf.random.normal(w.shape, stddev=0.5))
  search = tf.constant(np.random.default_rng(1).integers(0, 2, mask.shape), tf.float32)
  seq, mask = tf.constant(seq), tf.constant(mask)
  for q, s in ((queries, search), (queries[:1], None)):
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(seq)
      by_keys = att.attend(q, slice(None), *att.keys_values(seq), mask, s)
      by_events = att.attend_events(q, slice(None), att.events(seq), mask, s)
    assert by_events.shape == by_keys.shape == (4, 3, 8)
    np.testing.assert_allclose(by_events.numpy(), by_keys.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(by_events, att.trainable_weights + [seq]),
                    tape.gradient(by_keys, att.trainable_weights + [seq])):
      if b is None:
        assert a is None
      else:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_the_attention_reads_the_events_where_that_takes_fewer_flops():
  """paper-small's global attention (n 32, L 256, d_I 160, d 256, h 4): 13.1M multiply-adds from the
  events against 25.2M through K̃, Ṽ; many queries over short events the other way; never with QK-norm."""
  att = MixedHeteroAttention(num_queries=32, d_t=256, d=256, heads=4)
  assert att.reads_events(32, 256, 160) and not att.reads_events(256, 8, 160)
  assert not att.reads_events(32, None, 160)
  assert not MixedHeteroAttention(num_queries=32, d_t=256, d=256, heads=4, qk_norm=True).reads_events(32, 256, 160)


@pytest.mark.parametrize("leading", [[4], [2, 2]], ids=["batch", "users_by_candidates"])
def test_the_query_projections_gradient_is_a_dot_not_a_batch_of_weight_sized_products(leading):
  """W_Q's gradient once materialised [B, n, d_T, d] and summed it over B (TensorFlow's gradient of an
  einsum whose "..." broadcasts against a weight): 1 GiB and ~0.3 s of every paper-small step. No tensor
  of the gradient graph may hold B x |W_Q| numbers, whatever the leading dimensions of the queries."""
  att = MixedHeteroAttention(num_queries=3, d_t=8, d=32, heads=2)
  queries, seq, mask = _attention_inputs()
  att([queries, tf.constant(seq), tf.constant(mask)])
  queries = tf.reshape(queries, leading + [3, 8])
  k, v = att.keys_values(seq)
  mask = tf.constant(mask)
  if len(leading) == 2:  # U = 2 users' K̃, Ṽ [U, 1, h, L, d_h] against their M = 2 candidates' queries
    k, v, mask = (t[:2, None] for t in (k, v, mask))

  @tf.function
  def gradient():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(att.attend(queries, slice(None), k, v, mask))
    return tape.gradient(loss, att.w_q)

  graph = gradient.get_concrete_function().graph
  sizes = {op.name: out.shape.num_elements() for op in graph.get_operations() for out in op.outputs
           if out.shape.is_fully_defined()}
  assert max(sizes.values()) < 4 * att.w_q.shape.num_elements(), max(sizes.items(), key=lambda kv: kv[1])
  np.testing.assert_allclose(att.project_queries(queries, slice(None)).numpy(),  # Eq. 4, as written
                             tf.einsum("...qt,qtd->...qd", queries, att.w_q).numpy(), rtol=1e-5, atol=1e-6)


def test_fixed_query_tokens_do_not_depend_on_the_candidate(raw_batch, batch):
  """Only the dynamic (NS-token) queries see the item; the fixed-query tokens are the user's alone."""
  model = hemix(FC, SMALL)
  other = random_features(FC, 8, seed=99)
  swapped = encoded(FC, replace(raw_batch, **{f.name: other[f.name] for f in FC.features
                                              if f.group.value == "item"}), SMALL)
  a, b = model.tokens(batch).numpy(), model.tokens(swapped).numpy()
  g_dyn, g_fix = SMALL.global_dynamic_queries, SMALL.global_fixed_queries
  r_dyn, r_fix = SMALL.realtime_dynamic_queries, SMALL.realtime_fixed_queries
  fixed = list(range(g_dyn, g_dyn + g_fix)) + list(range(g_dyn + g_fix + r_dyn, g_dyn + g_fix + r_dyn + r_fix))
  dynamic = list(range(g_dyn)) + list(range(g_dyn + g_fix, g_dyn + g_fix + r_dyn))
  np.testing.assert_array_equal(a[:, fixed], b[:, fixed])  # bit-identical
  assert not np.allclose(a[:, dynamic], b[:, dynamic])


def _with_candidate_category_in_history(raw: dict, sequence: str, seed: int = 3) -> dict:
  """The raw batch with about a third of each row's `sequence` events set to the candidate's category."""
  rng = np.random.default_rng(seed)
  cats = raw[f"{sequence}_category"]
  per_event_candidate = tf.gather(raw["category"], cats.value_rowids())
  hit = rng.random(int(tf.size(cats.flat_values))) < 0.3
  return replace(raw, **{f"{sequence}_category": cats.with_flat_values(
      tf.where(hit, per_event_candidate, cats.flat_values))})


@pytest.mark.parametrize("sequence", ["global", "realtime"])
def test_search_attends_only_to_the_candidates_category(raw_batch, sequence):
  """SIM hard search: a searched sequence's dynamic-query tokens depend on the events of the candidate's
  category only (and on how many real events there are); the fixed-query tokens still read every event,
  and the other sequence is not searched."""
  raw = _with_candidate_category_in_history(raw_batch, sequence)
  cats = raw[f"{sequence}_category"]
  other = cats.flat_values != tf.gather(raw["category"], cats.value_rowids())
  assert 0 < int(tf.reduce_sum(tf.cast(other, tf.int32))) < int(tf.size(other))
  changed = replace(raw, **{name: raw[name].with_flat_values(tf.where(other, raw[name].flat_values + 1000,
                                                                      raw[name].flat_values))
                            for name in (f"{sequence}_item_id", f"{sequence}_cell")})
  n_dyn = SMALL.global_dynamic_queries if sequence == "global" else SMALL.realtime_dynamic_queries
  searched = {"global_search": sequence == "global", "realtime_search": sequence == "realtime"}
  not_searched = {"global_search": sequence != "global", "realtime_search": sequence != "realtime"}
  for config, dynamic_unchanged in ((dataclasses.replace(SMALL, **searched), True),
                                    (dataclasses.replace(SMALL, **not_searched), False)):
    model = hemix(FC, config)
    a = model.token_groups(encoded(FC, raw, config))[sequence].numpy()
    b = model.token_groups(encoded(FC, changed, config))[sequence].numpy()
    assert np.allclose(a[:, :n_dyn], b[:, :n_dyn], atol=1e-6) == dynamic_unchanged
    assert not np.allclose(a[:, n_dyn:], b[:, n_dyn:])  # the fixed queries see every event


def test_search_reads_the_whole_sequences_on_data_without_a_search_key(raw_batch, batch):
  no_key = dataclasses.replace(FC, sequence=dataclasses.replace(FC.sequence, search=None))
  searching = HeMix(no_key, dataclasses.replace(SMALL, global_search=True, realtime_search=True), TABLES)
  plain = HeMix(no_key, dataclasses.replace(SMALL, global_search=False, realtime_search=False), TABLES)
  plain(batch)
  searching(batch)
  searching.set_weights(plain.get_weights())
  np.testing.assert_array_equal(searching.tokens(batch).numpy(), plain.tokens(batch).numpy())


def test_fusion_round_trip_and_identity_mixing():
  t = tf.random.normal([3, 6, 8])
  g = fuse(t, 4)
  assert g.shape == (3, 4, 12)
  # G^(i) is the concatenation of the i-th sub-token of every token (Eq. 14).
  np.testing.assert_array_equal(g[:, 1, :2].numpy(), t[:, 0, 2:4].numpy())
  np.testing.assert_array_equal(g[:, 1, 2:4].numpy(), t[:, 1, 2:4].numpy())
  np.testing.assert_array_equal(reconstruct(g, 6).numpy(), t.numpy())
  np.testing.assert_array_equal(HeteroMixing(4, 3, identity_interaction=True)(t).numpy(), t.numpy())
  mixed = HeteroMixing(4, 3)(t)
  assert mixed.shape == t.shape and not np.allclose(mixed, t)


def test_heterogeneous_ffn_is_per_token():
  ffn = PerTokenFFN(expansion=2)
  t = tf.random.normal([2, 5, 4]).numpy()
  base = ffn(tf.constant(t)).numpy()
  t2 = t.copy()
  t2[:, 3] += 1.0
  out = ffn(tf.constant(t2)).numpy()
  np.testing.assert_array_equal(np.delete(out, 3, axis=1), np.delete(base, 3, axis=1))
  same = np.repeat(t[:, :1], 5, axis=1)  # identical tokens, different per-token weights
  out = ffn(tf.constant(same)).numpy()
  assert not np.allclose(out[:, 0], out[:, 1])


def test_heteromixer_block_parameters_match_the_equations():
  n, d_t, m, d_r, k = 6, 8, 4, 3, 2
  block = HeteroMixerBlock(m, d_r, k)
  block(tf.zeros([1, n, d_t]))
  mixing = 2 * m * (n * d_t // m) * d_r  # Eqs. 16-17: W^L_m and W^R_m per head
  ffn = n * (2 * d_t * k * d_t + k * d_t + d_t)  # Eq. 19 per token
  norms = 2 * 2 * d_t
  assert block.count_params() == mixing + ffn + norms


def test_paper_preset_is_exactly_eqs_2_to_23(batch):
  """The `paper` preset: token counts and shapes of Eqs. 2-10, and exactly the parameters of Eqs. 2-22
  (no normalisation or module that the paper does not have)."""
  config = preset("paper")
  assert (config.attention_normalization, config.qk_norm, config.event_norm, config.pre_norm,
          config.embedding_init_stddev) == ("softmax", False, False, False, 1.0)
  model = hemix(FC, config)
  model(batch)  # builds every layer under the model's name scope
  groups = model.token_groups(batch)
  n_g = config.global_dynamic_queries + config.global_fixed_queries
  n_r = config.realtime_dynamic_queries + config.realtime_fixed_queries
  assert {k: tuple(v.shape) for k, v in groups.items()} == {
      "global": (8, n_g, config.d_t), "realtime": (8, n_r, config.d_t), "ns": (8, config.n_ns, config.d_t)}
  assert n_g + n_r + config.n_ns == config.num_tokens
  d_ns = model.embedding.non_sequential(batch).shape[-1]
  d_i = model.embedding.sequence(batch, "global")[0].shape[-1]
  d_t, d, (hidden,) = config.d_t, config.attention_dim, config.ns_hidden
  n, m, r, k = config.num_tokens, config.mixer_heads, config.low_rank, config.ffn_expansion
  expected = {
      "ns_tokenizer": d_ns * hidden + hidden + hidden * config.n_ns * d_t + config.n_ns * d_t,  # Eq. 2
      **{f"qmie_{s}": q * d_t * d + 2 * d_i * d + d * d_t + d_t + fixed * d_t  # Eqs. 4, 5, 8; Q^s
         for s, q, fixed in (("global", n_g, config.global_fixed_queries),
                             ("realtime", n_r, config.realtime_fixed_queries))},
      **{f"heteromixer_{i}": 2 * m * (n * d_t // m) * r  # Eqs. 16-17
         + n * (2 * d_t * k * d_t + k * d_t + d_t) + 2 * 2 * d_t  # Eq. 19; the two Add&Norms
         for i in range(config.num_blocks)},
      **{f"head_{t}": d_t * 64 + 64 + 64 + 1 for t in config.tasks},  # Eq. 22 (head_hidden = (64,))
  }
  counted = {}
  for v in model.trainable_variables:
    module = v.name.split("/")[1]
    counted[module] = counted.get(module, 0) + int(np.prod(v.shape))
  assert counted.pop("embedding") > 0
  assert counted == expected
  # The embeddings start as PyTorch's nn.Embedding (the reading of finding 22), not Keras' uniform ±0.05.
  user_ids = model.embedding.tables["user_id"].embeddings.numpy()
  assert abs(user_ids.std() - 1.0) < 0.02


def test_flatten_pooling_reads_every_token(batch):
  """pooling="flatten": the heads read [B, N * d_T], so swapping two tokens of T_L changes the prediction;
  the paper's mean pooling is invariant to it."""
  for pooling, invariant in (("mean", True), ("flatten", False)):  # the heads read o alone
    model = hemix(FC, dataclasses.replace(SMALL, pooling=pooling, heads_read=()))
    model(batch)
    t = model.tokens(batch)
    t_l = model.mixed(t)[-1]
    swapped = tf.concat([t_l[:, 1:2], t_l[:, :1], t_l[:, 2:]], axis=1)
    heads, pool = model.heads["click"], model.pool
    np.testing.assert_allclose(heads(pool(t_l)).numpy(), model(batch)["click"].numpy(), rtol=1e-5)
    same = np.allclose(heads(pool(swapped)).numpy(), heads(pool(t_l)).numpy(), rtol=1e-5)
    assert same == invariant
    assert heads.hidden[0].kernel.shape[0] == (SMALL.d_t if pooling == "mean" else SMALL.num_tokens * SMALL.d_t)


@pytest.mark.parametrize("groups", [("user",), ("user", "item", "context")])
def test_heads_read_the_embeddings_of_their_groups_beside_the_mean_token(batch, groups):
  """heads_read: Eq. 22 on [o, E_G], so a prediction moves with the embeddings of the groups G even when
  the tokens are held fixed, and not with another group's; the paper's heads read o alone."""
  model = hemix(FC, dataclasses.replace(SMALL, heads_read=groups))
  model(batch)
  fields = model.embedding.fields(batch)
  read = [f.group.value in groups for f in FC.features]
  width = sum(x.shape[-1] for x, r in zip(fields, read) if r)
  assert model.heads["click"].hidden[0].kernel.shape[0] == SMALL.d_t + width
  t, expected = model.tokens(batch), model(batch)["click"].numpy()
  np.testing.assert_allclose(model._predict(t, model._head_fields(fields))["click"].numpy(), expected, rtol=1e-5)
  for i, f in enumerate(FC.features):
    shifted = fields[:i] + [fields[i] + 1.0] + fields[i + 1:]
    moved = np.abs(model._predict(t, model._head_fields(shifted))["click"].numpy() - expected).max()
    assert (moved > 1e-4) == read[i], f.name


def test_heads_read_only_feature_groups():
  with pytest.raises(ValueError, match="feature groups"):
    dataclasses.replace(SMALL, heads_read=("users",))


def test_a_config_saved_with_the_heads_reading_every_embedding_loads():
  """Models saved in the twenty-fifth session stored `heads_read_embeddings: true`: every group's embeddings."""
  saved = {k: v for k, v in model_config_to_dict(SMALL).items() if k != "heads_read"}
  assert model_config_from_dict({**saved, "heads_read_embeddings": True}).heads_read == ("user", "item", "context")
  assert model_config_from_dict({**saved, "heads_read_embeddings": False}).heads_read == ()
  assert model_config_from_dict(model_config_to_dict(SMALL)) == SMALL


def test_embedding_tables_start_different(batch):
  """Every table draws its own initial values (a shared unseeded Keras initializer repeats them)."""
  model = hemix(FC, dataclasses.replace(SMALL, embedding_init_stddev=0.25))
  model(batch)
  same_shape = [t.embeddings.numpy() for t in model.embedding.tables.values()
                if t.embeddings.shape == model.embedding.tables["user_id"].embeddings.shape]
  assert len(same_shape) > 2
  for a, b in zip(same_shape, same_shape[1:]):
    assert not np.allclose(a, b)
  assert abs(same_shape[0].std() - 0.25) < 0.01


def test_accounting_of_presets():
  model = hemix(FC, SMALL)
  counts = parameter_counts(model, FC)
  assert counts["dense_params"] + counts["embedding_params"] == model.count_params()
  assert eq24_params(SMALL) == 2 * 2 * 2 * 32 * 32 ** 2
  flops = forward_flops(model, FC)
  # At least the interaction blocks' per-token FFN multiply-adds: 2 * 2 k N d_T^2 per block.
  assert flops > 2 * eq24_params(SMALL)


@pytest.mark.parametrize("equation,shapes,flops", [
    ("bnd,ndh->bnh", ([2, 3, 4], [3, 4, 5]), 2 * 2 * 3 * 4 * 5),
    # An ellipsis stands for the operand's leading dimensions (the per-query W_Q of Eq. 4: 2 x B q t d).
    ("...qt,qtd->...qd", ([2, 3, 4], [3, 4, 5]), 2 * 2 * 3 * 4 * 5),
    ("...qt,qtd->...qd", ([6, 2, 3, 4], [3, 4, 5]), 2 * 6 * 2 * 3 * 4 * 5),
    # Ellipsis dimensions broadcast as in NumPy, aligned from the right.
    ("...hnd,...hd->...hn", ([6, 2, 7, 4], [1, 2, 4]), 2 * 6 * 2 * 7 * 4),
])
def test_einsum_flops_are_registered(equation, shapes, flops):
  @tf.function
  def f(a, b):
    return tf.einsum(equation, a, b)
  graph = f.get_concrete_function(*(tf.TensorSpec(shape) for shape in shapes)).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  assert tf.compat.v1.profiler.profile(graph, options=options).total_float_ops == flops


def test_forward_flops_do_not_depend_on_xla():
  """The profiler counts the traced graph; the interaction's XLA cluster would hide its ops."""
  flops = {xla: forward_flops(build_and_compile(FC, SMALL, TABLES, xla=xla), FC) for xla in ("off", "interaction")}
  assert flops["interaction"] == flops["off"] > 1e6


def test_saved_model_round_trip(tmp_path, raw_batch, batch):
  model = hemix(FC, SMALL)
  eager = model(batch)
  examples = tf.constant(serialize(raw_batch))
  preprocessor = hashing_preprocessor(FC, SMALL)
  before = serving_function(model, preprocessor, FC)(examples=examples)
  export_saved_model(model, preprocessor, FC, str(tmp_path / "m"))
  loaded = tf.saved_model.load(str(tmp_path / "m"))
  after = loaded.signatures["serving_default"](examples=examples)
  for task in SMALL.tasks:
    np.testing.assert_array_equal(after[task].numpy(), before[task].numpy())  # the same graph
    np.testing.assert_allclose(after[task].numpy(), eager[task].numpy(), atol=1e-6)  # vs eager ops
  # A new run warm-starts from the exported model: same weights, same outputs; another model is refused.
  fresh = hemix(FC, SMALL)
  warm_start(fresh, str(tmp_path / "m"), batch)
  for task, p in fresh(batch).items():
    np.testing.assert_array_equal(p.numpy(), eager[task].numpy())
  with pytest.raises(ValueError, match="cannot warm-start from .*/m: not a SavedModel of this model config"):
    warm_start(hemix(FC, dataclasses.replace(SMALL, ns_hidden=(64,))), str(tmp_path / "m"), batch)


@pytest.mark.parametrize("optimizer", [Adam, keras.optimizers.Adam])
def test_a_saved_model_carries_no_compiled_optimizer_update(tmp_path, optimizer):
  """With xla="interaction" Adam's update is compiled; Keras' own compiled Adam (the control) drags one
  traced update per variable into every SavedModel that tracks it (about a minute per export of a
  model), ours does not."""
  module = tf.Module()
  module.weights, module.optimizer = [tf.Variable(tf.ones([4])), tf.Variable(tf.ones([2, 3]))], optimizer(jit_compile=True)
  module.optimizer.apply_gradients([(tf.ones_like(w), w) for w in module.weights])
  assert module.weights[0].numpy()[0] < 1  # it did update
  tf.saved_model.save(module, str(tmp_path))
  serialised = (tmp_path / "saved_model.pb").read_bytes().count(b"update_step_xla")
  assert serialised == 0 if optimizer is Adam else serialised > 0


def test_compiled_adam_updates_a_table_as_keras_does_from_a_sparse_gradient():
  """An embedding table's gradient (one row per lookup, rows repeated) through our compiled Adam (a
  segment sum into the table's shape, no deduplication) moves the table as Keras' uncompiled sparse
  update does, over steps that touch different rows: every row's moments decay in both."""
  init = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
  tables = {}
  for name, optimizer in (("ours", Adam(1e-2, jit_compile=True)), ("keras", keras.optimizers.Adam(1e-2))):
    table = tf.Variable(init)
    for step, rows in enumerate(([0, 2, 2, 5], [1, 1, 1, 3], [5, 0, 4, 4])):
      values = tf.constant(np.arange(12, dtype=np.float32).reshape(4, 3) - 5.0 * step)
      optimizer.apply_gradients([(tf.IndexedSlices(values, tf.constant(rows), tf.constant([6, 3])), table)])
    tables[name] = table.numpy()
  assert not np.allclose(tables["ours"], init)
  np.testing.assert_allclose(tables["ours"], tables["keras"], rtol=1e-6, atol=1e-7)


def test_a_non_finite_loss_stops_training_naming_the_step(batch):
  """Before: Keras trained on `loss nan` for every step and the run died later inside sklearn."""
  keras.utils.set_random_seed(0)
  model = build_and_compile(FC, SMALL, TABLES, learning_rate=1e-3)
  features, labels = with_labels(batch, SMALL.tasks)
  labels = {task: tf.fill(tf.shape(y), float("nan")) for task, y in labels.items()}  # bad data
  data = tf.data.Dataset.from_tensors((features, labels)).repeat()
  with pytest.raises(FloatingPointError, match="the training loss is nan at step 1"):
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, callbacks=[FailOnNonFiniteLoss()])


def test_memorises_a_few_hundred_examples():
  features = random_features(FC, 300, seed=3)
  labels = np.random.default_rng(3).integers(0, 2, 300)
  features["click"] = tf.constant(labels, tf.int64)
  config = dataclasses.replace(SMALL, tasks=("click",))
  keras.utils.set_random_seed(0)
  # The product's learning rate. At 3e-3 on batches of 50 the default can diverge in its first steps
  # (whatever the embedding init; docs/ARCHITECTURE.md finding 19).
  model = build_and_compile(FC, config, TABLES, learning_rate=1e-3)
  ds = tf.data.Dataset.from_tensor_slices(encoded(FC, features, config)).batch(50).map(lambda f: with_labels(f, config.tasks))
  history = model.fit(ds.repeat(), steps_per_epoch=6, epochs=40, verbose=0)
  assert history.history["loss"][-1] < 0.3 * np.log(2)  # far below the label entropy (ln 2)


# The planted rules need no long sequences: L_G = 40, L_R = 8. 200 steps of 128: the default reaches AUC
# 0.9999-1.0 on both rules by step 150 (and stays at chance without the sequence), measured.
PLANTED_FC = dataclasses.replace(FC, sequence=dataclasses.replace(FC.sequence, global_length=40,
                                                                  realtime_length=8))


def _planted_realtime(batch: int, seed: int) -> dict:
  """click = 1 iff the candidate's category occurs among today's (real-time) events: a target-attention
  rule that only the real-time sequence reveals (the global sequence has the same distribution but is
  independent of the label)."""
  features = random_features(PLANTED_FC, batch, seed=seed, max_lengths={"global": 20, "realtime": 4})
  rng = np.random.default_rng(seed + 1)
  category = rng.integers(1, 9, batch)
  rt = features["realtime_category"]
  rt = tf.RaggedTensor.from_row_splits(
      tf.constant(rng.integers(1, 9, int(rt.flat_values.shape[0])), tf.int64), rt.row_splits)
  click = np.array([c in row for c, row in zip(category, rt.to_list())], np.int64)
  return replace(features, category=tf.constant(category, tf.int64), realtime_category=rt,
                 click=tf.constant(click))


def _planted_global(batch: int, seed: int) -> dict:
  """click = 1 iff the candidate's category is at least a third of the user's long history (global
  events, 12 to 40 of them, each user favouring one of 4 categories): a rule about *how many* events
  match, which only the global sequence reveals (the real-time events are independent of the label)."""
  features = random_features(PLANTED_FC, batch, seed=seed, max_lengths={"global": 40, "realtime": 4})
  rng = np.random.default_rng(seed + 1)
  lengths = rng.integers(12, 41, batch)
  favourite = rng.integers(1, 5, batch)
  share = rng.uniform(0.1, 0.7, batch)
  events = [np.where(rng.random(n) < p, f, rng.integers(1, 5, n)) for n, f, p in zip(lengths, favourite, share)]
  category = np.where(rng.random(batch) < 0.5, favourite, rng.integers(1, 5, batch))
  click = np.array([np.mean(row == c) >= 1 / 3 for c, row in zip(category, events)], np.int64)
  ragged = {name: tf.RaggedTensor.from_row_lengths(
      tf.constant(rng.integers(1, 50, lengths.sum()) if name != "global_category" else np.concatenate(events),
                  features[name].dtype), lengths)
            for name in features if name.startswith("global_") and features[name].dtype == tf.int64}
  ragged["global_behavior"] = tf.RaggedTensor.from_row_lengths(tf.constant(["click"] * int(lengths.sum())),
                                                                lengths)
  return replace(features, category=tf.constant(category, tf.int64), click=tf.constant(click), **ragged)


def _auc_after_training(config, planted) -> float:
  keras.utils.set_random_seed(0)
  model = build_and_compile(PLANTED_FC, config, TABLES, learning_rate=1e-3)
  train = tf.data.Dataset.from_tensor_slices(encoded(PLANTED_FC, planted(20_000, seed=10), config))
  model.fit(train.shuffle(20_000, seed=0).batch(128).map(lambda f: with_labels(f, config.tasks)).repeat(),
            steps_per_epoch=200, epochs=1, verbose=0)
  test = encoded(PLANTED_FC, planted(2000, seed=20), config)
  return roc_auc_score(test["click"].numpy(), model(test)["click"].numpy())


@pytest.mark.slow
@pytest.mark.parametrize("use_realtime", [True, False])
def test_learns_a_rule_only_the_realtime_sequence_reveals(use_realtime):
  config = dataclasses.replace(SMALL, tasks=("click",), use_realtime_sequence=use_realtime)
  auc = _auc_after_training(config, _planted_realtime)
  print(f"use_realtime={use_realtime}: AUC {auc:.3f}")
  if use_realtime:
    assert auc > 0.9
  else:
    assert auc < 0.6


@pytest.mark.slow
@pytest.mark.parametrize("use_global", [True, False])
def test_learns_a_rule_only_the_global_sequence_reveals(use_global):
  config = dataclasses.replace(SMALL, tasks=("click",), use_global_sequence=use_global)
  auc = _auc_after_training(config, _planted_global)
  print(f"use_global={use_global}: AUC {auc:.3f}")
  if use_global:
    assert auc > 0.9
  else:
    assert auc < 0.6


def test_a_warmup_scales_the_first_steps():
  """With warmup_steps = W, step k of Adam runs at (k + 1) / W of the rate (Adam's first steps move every
  coordinate by about the rate, whatever the gradient's scale), and from step W - 1 at the full rate."""
  config = dataclasses.replace(SMALL, tasks=("click",))
  data = with_labels(pad_lists(encoded(PLANTED_FC, _planted_realtime(64, seed=5), config), PLANTED_FC),
                     config.tasks)
  moved = {}
  for warmup in (0, 50):
    keras.utils.set_random_seed(0)
    model = build_and_compile(PLANTED_FC, config, TABLES, learning_rate=1e-3, warmup_steps=warmup)
    head = model.heads["click"].logit
    model.train_on_batch(*data)  # builds, then one step
    before = head.kernel.numpy()
    model.train_on_batch(*data)
    moved[warmup] = np.abs(head.kernel.numpy() - before).max()
  # The second step at 2/50 of the rate: after a tiny first step the gradient has barely changed, so
  # Adam's m/sqrt(v) is ~1 and the largest coordinate moves by the step's rate; the plain run's moves
  # by a good share of the full rate.
  assert moved[50] == pytest.approx(1e-3 * 2 / 50, rel=0.05)
  assert moved[0] > 10 * moved[50]
  assert [float(LinearWarmup(1e-3, 50)(step)) for step in (0, 49, 50, 10_000)] == pytest.approx(
      [2e-5, 1e-3, 1e-3, 1e-3])


def test_the_masks_are_data_the_interaction_differentiates_the_embeddings_only(batch):
  """Compiled, `interaction` is a function whose backward pass computes a gradient for each float input
  it is given: the padding and hard-search masks must get none (the sequence masks' cost ~40 ms of a
  paper-small step), the embeddings must."""
  model = hemix(FC, SMALL)
  fields, sequences, search = model.lookups(batch)
  masks = [mask for _, mask in sequences.values()] + list(search.values())
  embeddings = fields + [part for parts, _ in sequences.values() for part in parts]
  assert len(masks) == 4  # both sequences, both searched
  with tf.GradientTape() as tape:
    tape.watch(masks + embeddings)
    loss = tf.add_n([tf.reduce_sum(p) for p in model.interaction(fields, sequences, search).values()])
  gradients = tape.gradient(loss, masks + embeddings)
  assert [g is None for g in gradients] == [True] * len(masks) + [False] * len(embeddings)


@pytest.mark.parametrize("xla", ["step", "interaction"])
def test_training_step_compiles_with_xla_and_follows_the_same_loss_curve(xla):
  """Padded inputs (hemix_tf.data.padding) make the whole step XLA-compilable, and the dense part after
  the gathers compiles on its own, as does Adam's update; over 50 steps the losses match the uncompiled
  step's from the same seed (float reassociation only)."""
  config = dataclasses.replace(SMALL, tasks=("click",))
  data = pad_lists(encoded(PLANTED_FC, _planted_realtime(3200, seed=5), config), PLANTED_FC)  # 50 new batches
  ds = tf.data.Dataset.from_tensor_slices(data).batch(64).map(lambda f: with_labels(f, config.tasks)).repeat()
  curves = {}
  for jit in (False, True):
    keras.utils.set_random_seed(0)
    model = build_and_compile(PLANTED_FC, config, TABLES, learning_rate=1e-3, xla=xla if jit else "off")
    curves[jit] = [model.train_on_batch(*batch)[0] for batch in ds.take(50)]
    if jit and xla == "interaction":  # compiled: the dense part as one XLA cluster, and Adam's update of
      # every variable, the embedding tables' too
      graph = model.train_function.get_concrete_function(iter(ds)).graph.as_graph_def()
      compiled = [f.signature.name for f in graph.library.function if f.attr["_XlaMustCompile"].b]
      assert any("_interaction" in name for name in compiled)
      assert model.embedding.trainable_variables
      assert sum("_update_step_xla" in name for name in compiled) == len(model.trainable_variables)
      # The gathers' concatenation (E_{U,I,C}, the events) and the events' mask are compiled too: outside
      # the cluster no gradient is sliced back into per-field pieces.
      assert not [n.name for n in graph.node if n.op == "Slice"]
      # ... and in the training step only: inference (evaluation, export) traces the plain graph
      features = next(iter(ds))[0]
      inference = tf.function(lambda f: model(f, training=False)).get_concrete_function(features).graph
      assert not any(f.attr["_XlaMustCompile"].b for f in inference.as_graph_def().library.function)
  assert curves[False][-1] < curves[False][0] - 0.05  # it learns
  # Float reassociation under XLA: the first steps agree closely (the first four to 1e-5); later the two
  # runs drift apart as any two float orders of the same training do (with both searches by step 12 past
  # 1e-3), so the rest of the curve is compared on 10-step means.
  np.testing.assert_allclose(curves[True][:4], curves[False][:4], rtol=1e-5)
  np.testing.assert_allclose(curves[True][:10], curves[False][:10], rtol=1e-3)
  means = {jit: np.reshape(curve, [5, 10]).mean(axis=1) for jit, curve in curves.items()}
  # With both searches the planted rule is learned to a loss near 0 by step 40, where a relative
  # tolerance means nothing: 5% of the first window's loss bounds the difference there.
  np.testing.assert_allclose(means[True], means[False], rtol=0.05, atol=0.05 * means[False][0])
