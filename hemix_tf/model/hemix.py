"""The HeMix network (HeMix Section 3): embedding -> tokens -> L interaction blocks -> mean pool -> heads.

  features ──FeatureEmbedding──> E_{U,I,C} [B, d_NS], G [B, L_G, d_I], R [B, L_R, d_I] (+ masks)
  T_NS = NSTokenizer(E) [B, N_NS, d_T]  (Eq. 2), split 4:1 into T_NS^G, T_NS^R
  O^G = QMIE([T_NS^G, Q^G], G), O^R = QMIE([T_NS^R, Q^R], R)   (Eqs. 3-9)
  T = [O^G, O^R, T_NS] [B, N, d_T]  (Eq. 10)
  T_L = blocks(T)  (Eqs. 11-21);  o = mean_n T_L  [B, d_T] (or flattened);  ŷ_task = σ(f_task(o))  (Eq. 22),
  or σ(f_task([o, E_G])) with the embeddings of the feature groups G = `heads_read` (e.g. the user's)
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES
from hemix_tf.data.feature_config import FeatureConfig, FeatureGroup
from hemix_tf.model.config import HeMixConfig, Interaction
from hemix_tf.model.embedding import FeatureEmbedding, events
from hemix_tf.model.mixer import HeteroMixerBlock, RankMixerBlock, TransformerBlock
from hemix_tf.model.precision import autocast, cast_floats, compute_dtype, policy_scope
from hemix_tf.model.search import search_ids, search_mask, search_masks, searched_sequences
from hemix_tf.model.tokenization import NSTokenizer, QueryMixedInterestExtraction, mlp
from hemix_tf.model.serializable import RankingModel


def interaction_block(config: HeMixConfig, index: int) -> keras.layers.Layer:
  name = f"{config.interaction.value}_{index}"
  if config.interaction == Interaction.HETEROMIXER:
    return HeteroMixerBlock(config.mixer_heads, config.low_rank, config.ffn_expansion, config.pre_norm,
                            name=name)
  if config.interaction == Interaction.RANKMIXER:
    return RankMixerBlock(config.ffn_expansion, config.pre_norm, name=name)
  return TransformerBlock(config.mixer_heads, config.ffn_expansion, name=name)


class PredictionHead(keras.layers.Layer):
  """Eq. 22 for one task: ŷ = σ(f(o)) with f an MLP (or LR when `hidden` is empty)."""

  def __init__(self, hidden: tuple[int, ...], **kwargs):
    super().__init__(**kwargs)
    self.hidden = mlp(hidden, "hidden")
    self.logit = keras.layers.Dense(1, name="logit")

  def call(self, pooled: tf.Tensor) -> tf.Tensor:
    x = pooled
    for layer in self.hidden:
      x = layer(x)
    return tf.sigmoid(tf.cast(self.logit(x), tf.float32))[:, 0]  # float32 whatever the compute dtype


@keras.utils.register_keras_serializable(package="hemix_tf")
class HeMix(RankingModel):
  """Encoded features (hemix_tf.data.preprocessing) -> {task: probability [B]}.

  `table_sizes`: rows of every embedding table, from the preprocessor.
  """

  def __init__(self, feature_config: FeatureConfig, config: HeMixConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(feature_config, config, table_sizes, **kwargs)
    self.embedding = FeatureEmbedding(feature_config, config, table_sizes, name="embedding")
    with policy_scope(config.precision):
      self._build_interaction(feature_config, config)
    # XLA on `interaction` in the training step (build_and_compile(xla="interaction")): the embedding
    # gathers and their sparse gradients stay outside the compiled cluster. An execution choice, not
    # part of the config.
    self.xla_interaction = False

  def _build_interaction(self, feature_config: FeatureConfig, config: HeMixConfig):
    """The layers after the lookups (Eqs. 2-22), constructed under the dtype policy of `config.precision`."""
    self.ns_tokenizer = NSTokenizer(config.n_ns, config.d_t, config.ns_hidden, self.embedding.field_widths(),
                                    config.ns_dots, name="ns_tokenizer")
    self.extractors = {}
    for seq, dyn, fixed, used in (
        ("global", config.global_dynamic_queries, config.global_fixed_queries, config.use_global_sequence),
        ("realtime", config.realtime_dynamic_queries, config.realtime_fixed_queries,
         config.use_realtime_sequence)):
      if used:
        self.extractors[seq] = QueryMixedInterestExtraction(
            dyn, fixed if config.use_fixed_queries else 0, config.d_t, config.attention_dim,
            config.attention_heads, use_mixed_queries=config.use_mixed_queries,
            normalization=config.attention_normalization, qk_norm=config.qk_norm,
            event_norm=config.event_norm, name=f"qmie_{seq}")
    self.searched = tuple(s for s in searched_sequences(feature_config, config) if s in self.extractors)
    self.blocks = [interaction_block(config, i) for i in range(config.num_blocks)]
    self.heads = {task: PredictionHead(config.head_hidden, name=f"head_{task}") for task in config.tasks}

  def _dynamic_queries(self, t_ns: tf.Tensor) -> dict:
    """T_NS [..., N_NS, d_T] -> the 4:1 split into T_NS^G and T_NS^R."""
    n_global = self.config.global_dynamic_queries
    return {"global": t_ns[..., :n_global, :], "realtime": t_ns[..., n_global:, :]}

  def lookups(self, features: dict) -> tuple:
    """The gathers of the step: (the fields of E_{U,I,C}, {sequence: (per-field events [B, L, width],
    mask [B, L])}, {searched sequence: hard-search mask [B, L]}). Their concatenation and masking are
    left to `interaction`, compiled with it."""
    fields, sequences = self.embedding(features)
    return fields, sequences, search_masks(self.feature_config, self.searched, features)

  def _head_fields(self, fields: list) -> list:
    """The fields of E_{U,I,C} (`FeatureEmbedding.fields`) of the groups the heads read beside o."""
    groups = {FeatureGroup(g) for g in self.config.heads_read}
    return [x for f, x in zip(self.feature_config.features, fields) if f.group in groups]

  def _token_groups(self, fields: list, sequence_lookups: dict, search: dict) -> tuple[dict, list]:
    """The lookups -> the parts of Eq. 10 and the fields the heads read beside o (`_head_fields`),
    computed in the dtype of `config.precision`."""
    e_uic = tf.concat(fields, axis=-1)
    sequences = {s: (events(parts, mask), mask) for s, (parts, mask) in sequence_lookups.items()}
    e_uic, sequences, search, beside = cast_floats((e_uic, sequences, search, self._head_fields(fields)),
                                                   compute_dtype(self.config.precision))
    t_ns = self.ns_tokenizer(e_uic)
    dynamic = self._dynamic_queries(t_ns)
    groups = {s: self.extractors[s]([dynamic[s], *sequences[s]], search=search.get(s))
              for s in SEQUENCES if s in self.extractors}
    return {**groups, "ns": t_ns}, beside

  def token_groups(self, features: dict) -> dict:
    """{"global": O^G [B, n_G, d_T], "realtime": O^R [B, n_R, d_T], "ns": T_NS [B, N_NS, d_T]}, the
    parts of Eq. 10 (an ablated sequence is absent)."""
    return self._token_groups(*self.lookups(features))[0]

  def tokens(self, features: dict) -> tf.Tensor:
    """T = [T_S, T_NS] (Eq. 10): [B, N, d_T]."""
    return tf.concat(list(self.token_groups(features).values()), axis=1)

  def mixed(self, t: tf.Tensor) -> list[tf.Tensor]:
    """The output of every interaction block (Eqs. 11-21), [B, N, d_T] each; the last one is T_L."""
    outputs = []
    for block in self.blocks:
      t = block(t)
      outputs.append(t)
    return outputs

  def pool(self, t_l: tf.Tensor) -> tf.Tensor:
    """T_L [B, N, d_T] -> o: the mean over tokens [B, d_T] (Section 3.5), or with pooling="flatten" the
    concatenated tokens [B, N * d_T]."""
    if self.config.pooling == "mean":
      return tf.reduce_mean(t_l, axis=1)
    return tf.reshape(t_l, [-1, self.config.num_tokens * self.config.d_t])

  def _predict(self, t: tf.Tensor, beside: list) -> dict:
    """T [B, N, d_T] and the fields the heads read beside o (`_head_fields`, each [B, width]) ->
    {task: probability [B]}: Eq. 22 on [o, E_G] (on o alone when `beside` is empty, the paper's)."""
    pooled = self.pool(self.mixed(t)[-1] if self.blocks else t)
    pooled = tf.concat([pooled, *[tf.cast(x, pooled.dtype) for x in beside]], axis=-1)
    return {task: head(pooled) for task, head in self.heads.items()}

  def interaction(self, fields: list, sequence_lookups: dict, search: dict) -> dict:
    """Everything after the gathers (`lookups`; Eqs. 2-22): dense tensors in, {task: probability [B]} out.
    The masks are data: compiled, this is a function whose backward pass computes a gradient for every
    float input it is given, so they enter behind `tf.stop_gradient` (the sequence masks' gradients
    cost ~40 ms of every paper-small step, docs/BENCHMARKS.md)."""
    sequence_lookups = {s: (parts, tf.stop_gradient(mask)) for s, (parts, mask) in sequence_lookups.items()}
    search = {s: tf.stop_gradient(mask) for s, mask in search.items()}
    groups, beside = self._token_groups(fields, sequence_lookups, search)
    return self._predict(tf.concat(list(groups.values()), axis=1), beside)

  def call(self, features: dict, training=None) -> dict:
    # Compiled in the training step only: evaluation and FLOP counting trace the plain graph (every new
    # eval batch shape would compile again), and so does export (`export_saved_model` also clears the flag).
    compiled = self.xla_interaction and training
    interaction = tf.function(self.interaction, jit_compile=True) if compiled else self.interaction
    return interaction(*self.lookups(features))

  # User-item decoupled scoring (beyond the paper): U users with M candidates each. The sequences'
  # embeddings, K̃ / Ṽ and the fixed-query tokens are computed once per user; only T_NS and the
  # dynamic-query attention run per candidate. Same numbers as `call` on the U·M joined examples.

  def user_states(self, user_features: dict) -> dict:
    """Encoded sequences of U users -> per sequence the candidate-independent state, each tensor
    [U, 1, ...] so that it broadcasts over the user's candidates."""
    dtype = compute_dtype(self.config.precision)
    with autocast(self.config.precision):
      states = {s: {k: tf.expand_dims(t, 1) for k, t in extractor.user_state(
                    *cast_floats(self.embedding.sequence(user_features, s), dtype)).items()}
                for s, extractor in self.extractors.items()}
    for s in self.searched:
      states[s]["search_ids"] = tf.expand_dims(search_ids(self.feature_config, user_features, s), 1)  # [U, 1, L]
    return states

  def score_candidates(self, candidate_features: dict, user_states: dict, candidates_per_user) -> dict:
    """Encoded non-sequential features of U·M candidates (user-major; each user's own features repeated
    on its M rows) and the U users' `user_states` -> {task: probability [U, M]}."""
    with autocast(self.config.precision):
      return self._score_candidates(candidate_features, user_states, candidates_per_user)

  def _score_candidates(self, candidate_features: dict, user_states: dict, candidates_per_user) -> dict:
    fields = self.embedding.fields(candidate_features)
    t_ns = self.ns_tokenizer(tf.concat(fields, axis=-1))  # [U·M, N_NS, d_T]
    t_ns = tf.reshape(t_ns, [-1, candidates_per_user, self.config.n_ns, self.config.d_t])  # [U, M, ...]
    dynamic = self._dynamic_queries(t_ns)
    search = {}
    if self.searched:
      candidate_ids = tf.reshape(candidate_features[self.feature_config.sequence.search], [-1, candidates_per_user])
      search = {s: tf.cast(search_mask(user_states[s]["search_ids"], candidate_ids), t_ns.dtype)
                for s in self.searched}  # [U, M, L]
    seq_tokens = [self.extractors[s].extract(dynamic[s], user_states[s], search.get(s)) for s in SEQUENCES
                  if s in self.extractors]
    t = tf.concat(seq_tokens + [t_ns], axis=-2)
    scores = self._predict(tf.reshape(t, [-1, self.config.num_tokens, self.config.d_t]), self._head_fields(fields))
    return {task: tf.reshape(p, [-1, candidates_per_user]) for task, p in scores.items()}
