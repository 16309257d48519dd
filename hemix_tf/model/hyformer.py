"""HyFormer (the HyFormer paper, Section 3) and its LONGER + RankMixer baseline (its Table 1),
under HeMix's feature interface (same FeatureEmbedding, same heads). The two-stage baseline: LONGER
encodes each sequence on its own (layer 1 cross-attention from the L_H most recent events, then
self-attention within them), the generated queries read it once by cross-attention, and RankMixer blocks
mix those tokens with the NS tokens -- no query decoding inside the interaction layers.

Shapes: B batch, D token width, N_s queries of sequence s, M NS tokens, T = sum_s N_s + M, L_s events.

  NS tokens: semantic grouping (3.3.1): one token per feature group (user, item, context), each the
    group's concatenated embeddings projected to D                                  -> [B, M, D]
  Query generation (Eqs. 3-4), per sequence s (3.7: separate queries per sequence):
    Global Info_s = Concat(F_1..F_M, MeanPool(S_s));  Q_s = [FFN_1(.), .., FFN_N(.)]  -> [B, N_s, D]
  Layer l = 1..L (3.6), per sequence s:
    H_l = Enc_l(H_{l-1}), H_0 = S_s W_in        (5) transformer | (6) LONGER cross-attention | (7) SwiGLU
    K_l, V_l = H_l W_l^K, H_l W_l^V             (8)
    Q̂_s = CrossAttn(Q_s, K_l, V_l)              (9) / (16), multi-head, padded events masked
  then Query Boosting over T tokens (Eqs. 10-15): [Q̂_G, Q̂_R, NS] -> RankMixer token mixing ->
    PerToken-FFN -> residual; the boosted query positions are the next layer's queries (Eq. 17) and the
    boosted NS positions its NS tokens.
  Output: the top layer's T tokens, flattened, to the task heads.

Readings (docs/ARCHITECTURE.md): Eqs. 5-7 write Enc_l(S); we chain the encoders (H_l from H_{l-1}) since
"key-value states are recomputed at each layer, allowing sequence features to evolve"; LONGER's short
sequence is the L_H most recent events (our sequences are most recent first) and later layers attend
within it; Eqs. 9 and 15 have no normalisation and we add none.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES
from hemix_tf.data.feature_config import FeatureConfig, FeatureGroup
from hemix_tf.model.baselines import masked_mean
from hemix_tf.model.config import HyFormerConfig
from hemix_tf.model.embedding import FeatureEmbedding
from hemix_tf.model.hemix import PredictionHead
from hemix_tf.model.mixer import PerTokenFFN, RankMixerBlock, TransformerBlock, fuse, sliced_glorot
from hemix_tf.model.serializable import RankingModel

class SwiGLU(keras.layers.Layer):
  """SwiGLU(x) = W_3 (swish(x W_1) * (x W_2)) on the last axis, hidden width `expansion` x the input's."""

  def __init__(self, expansion: int, **kwargs):
    super().__init__(**kwargs)
    self.expansion = expansion

  def build(self, input_shape):
    d = input_shape[-1]
    self.gate = keras.layers.Dense(self.expansion * d, use_bias=False, name="w1")
    self.up = keras.layers.Dense(self.expansion * d, use_bias=False, name="w2")
    self.down = keras.layers.Dense(d, use_bias=False, name="w3")
    super().build(input_shape)

  def call(self, x):
    return self.down(tf.nn.swish(self.gate(x)) * self.up(x))


class CrossAttention(keras.layers.Layer):
  """Multi-head cross-attention of queries [B, n, D] over keys / values [B, L, D] (padded keys masked;
  a query with no valid key gets zeros before the output projection)."""

  def __init__(self, heads: int, project_kv: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.heads, self.project_kv = heads, project_kv

  def build(self, input_shape):
    d = input_shape[0][-1]
    self.w_q = keras.layers.Dense(d, use_bias=False, name="w_q")
    if self.project_kv:
      self.w_k = keras.layers.Dense(d, use_bias=False, name="w_k")
      self.w_v = keras.layers.Dense(d, use_bias=False, name="w_v")
    self.w_o = keras.layers.Dense(d, name="w_o")
    super().build(input_shape)

  def _split(self, x):  # [B, n, D] -> [B, h, n, D/h]
    d = x.shape[-1]
    return tf.transpose(tf.reshape(x, [tf.shape(x)[0], _dim(x, 1), self.heads, d // self.heads]), [0, 2, 1, 3])

  def call(self, inputs):
    queries, keys, values, mask = inputs
    if self.project_kv:
      keys, values = self.w_k(keys), self.w_v(values)
    q, k, v = self._split(self.w_q(queries)), self._split(keys), self._split(values)
    scores = tf.matmul(q, k, transpose_b=True) / float(q.shape[-1]) ** 0.5
    valid = mask[:, None, None, :]
    att = tf.nn.softmax(scores + (1.0 - valid) * -1e9, axis=-1) * valid
    o = tf.transpose(tf.matmul(att, v), [0, 2, 1, 3])
    return self.w_o(tf.reshape(o, [tf.shape(o)[0], _dim(queries, 1), queries.shape[-1]]))


def _dim(x: tf.Tensor, axis: int):
  """The static size of an axis where known (it keeps the number of query tokens static behind a batch
  of unknown size, which the token mixers need), else the dynamic one (sequence lengths)."""
  return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


class SequenceEncoderLayer(keras.layers.Layer):
  """One layer of sequence representation encoding (Section 3.4.1): (H [B, L, D], mask) -> (H', mask')."""

  def __init__(self, kind: str, heads: int, expansion: int, short_length: int, first: bool, **kwargs):
    super().__init__(**kwargs)
    self.kind, self.short_length, self.first = kind, short_length, first
    if kind == "transformer":
      self.block = TransformerBlock(heads, expansion, name="encoder")
    elif kind == "longer":
      self.block = CrossAttention(heads, name="short_attention") if first else TransformerBlock(heads, expansion)
      self.norm = keras.layers.LayerNormalization()
    else:
      self.block = SwiGLU(expansion, name="swiglu")

  def call(self, inputs):
    h, mask = inputs
    if self.kind == "transformer":
      return self.block(h, mask=mask), mask
    if self.kind == "swiglu":
      return self.block(h), mask  # Eq. 7: attention-free
    if self.first:  # Eq. 6: the L_H most recent events attend to the whole sequence
      short, short_mask = h[:, :self.short_length], mask[:, :self.short_length]
      return self.norm(short + self.block([short, h, h, mask])), short_mask
    return self.block(h, mask=mask), mask  # later LONGER layers: self-attention within the short set


class QueryGeneration(keras.layers.Layer):
  """Eqs. 3-4: N independent two-layer FFNs of Global Info -> Q [B, N, D]."""

  def __init__(self, n: int, d: int, hidden: int, **kwargs):
    super().__init__(**kwargs)
    self.n, self.d, self.hidden = n, d, hidden

  def build(self, input_shape):
    width = input_shape[-1]
    self.w1 = self.add_weight(name="w1", shape=[self.n, width, self.hidden], initializer=sliced_glorot(self.n))
    self.b1 = self.add_weight(name="b1", shape=[self.n, self.hidden], initializer="zeros")
    self.w2 = self.add_weight(name="w2", shape=[self.n, self.hidden, self.d], initializer=sliced_glorot(self.n))
    super().build(input_shape)

  def call(self, global_info):
    h = tf.nn.relu(tf.einsum("bw,nwh->bnh", global_info, self.w1) + self.b1)
    return tf.einsum("bnh,nhd->bnd", h, self.w2)


class QueryBoost(keras.layers.Layer):
  """Eqs. 10-15: Q_boost = Q + PerToken-FFN(TokenMixing(Q)), Q [B, T, D]."""

  def __init__(self, expansion: int, **kwargs):
    super().__init__(**kwargs)
    self.ffn = PerTokenFFN(expansion, name="per_token_ffn")

  def call(self, q):
    t, d = q.shape[1], q.shape[2]
    mixed = tf.reshape(fuse(q, t), [-1, t, d])  # Eqs. 11-13: the h-th subspaces of all tokens
    return q + self.ffn(mixed)  # Eqs. 14-15


@keras.utils.register_keras_serializable(package="hemix_tf")
class HyFormer(RankingModel):
  """Encoded features -> {task: probability [B]}; HyFormer, or with `two_stage` LONGER + RankMixer."""

  def __init__(self, feature_config: FeatureConfig, config: HyFormerConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(feature_config, config, table_sizes, **kwargs)
    c = config
    self.embedding = FeatureEmbedding(feature_config, config, table_sizes, name="embedding")
    self.groups = [[i for i, f in enumerate(feature_config.features) if f.group == g] for g in FeatureGroup]
    self.ns_projection = [keras.layers.Dense(c.d, name=f"ns_{g.value}") for g in FeatureGroup]
    self.event_projection = {s: keras.layers.Dense(c.d, name=f"events_{s}") for s in SEQUENCES}
    self.encoders = {s: [SequenceEncoderLayer(c.encoder if not c.two_stage else "longer", c.heads, c.expansion,
                                              c.short_length, first=(l == 0), name=f"encoder_{s}_{l}")
                         for l in range(c.layers)] for s in SEQUENCES}
    n_global, n_realtime = c.queries
    self.query_generation = {s: QueryGeneration(n, c.d, c.query_hidden, name=f"queries_{s}")
                             for s, n in zip(SEQUENCES, c.queries)}
    if c.two_stage:  # LONGER per sequence -> its query outputs as tokens -> RankMixer over all tokens
      self.decoders = {s: CrossAttention(c.heads, name=f"pool_{s}") for s in SEQUENCES}
      self.interaction = [RankMixerBlock(c.expansion, name=f"rankmixer_{l}") for l in range(c.layers)]
    else:
      self.decoders = {s: [CrossAttention(c.heads, name=f"decode_{s}_{l}") for l in range(c.layers)]
                       for s in SEQUENCES}
      self.boosts = [QueryBoost(c.expansion, name=f"boost_{l}") for l in range(c.layers)]
    self.heads = {task: PredictionHead(c.head_hidden, name=f"head_{task}") for task in c.tasks}

  def call(self, features: dict, training=None) -> dict:
    c = self.config
    fields = self.embedding.fields(features)
    groups = [tf.concat([fields[i] for i in group], axis=-1) for group in self.groups]
    ns = tf.stack([proj(g) for proj, g in zip(self.ns_projection, groups)], axis=1)  # [B, M, D]
    flat_fields = tf.concat(fields, axis=-1)
    sequences, queries = {}, {}
    for s in SEQUENCES:
      events, mask = self.embedding.sequence(features, s)
      sequences[s] = (self.event_projection[s](events), mask)
      queries[s] = self.query_generation[s](tf.concat([flat_fields, masked_mean(events, mask)], axis=-1))
    if c.two_stage:
      tokens = [self.decoders[s]([queries[s], *self._encode_all(s, sequences[s])]) for s in SEQUENCES]
      t = tf.concat(tokens + [ns], axis=1)
      for block in self.interaction:
        t = block(t)
    else:
      t = None
      for layer in range(c.layers):
        decoded = []
        for s in SEQUENCES:
          h, mask = self.encoders[s][layer](sequences[s])  # Eqs. 5-7
          sequences[s] = (h, mask)
          decoded.append(self.decoders[s][layer]([queries[s], h, h, mask]))  # Eqs. 8-9 / 16
        t = self.boosts[layer](tf.concat(decoded + [ns], axis=1))  # Eqs. 10-15 / 17
        offsets = [0, c.queries[0], sum(c.queries)]
        queries = {s: t[:, offsets[i]:offsets[i + 1]] for i, s in enumerate(SEQUENCES)}
        ns = t[:, sum(c.queries):]
    pooled = tf.reshape(t, [-1, c.num_tokens * c.d])
    return {task: head(pooled) for task, head in self.heads.items()}

  def _encode_all(self, s: str, sequence):
    h, mask = sequence
    for layer in self.encoders[s]:
      h, mask = layer((h, mask))
    return h, h, mask
