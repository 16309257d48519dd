"""Feature tokenization (HeMix Section 3.3): NS tokens (Eq. 2) and Query-Mixed Interest Extraction (Eqs. 3-10).

Shapes: B batch, d_NS concatenated U/I/C width, d_T token width, L sequence length, d_I event width,
L_Q queries (dynamic T_NS^s then fixed Q^s), d attention width, h heads (d_h = d / h).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from hemix_tf.model.mixer import sliced_glorot

NEG_INF = -1e9


def mlp(hidden: tuple[int, ...], name: str) -> list[keras.layers.Layer]:
  return [keras.layers.Dense(units, activation="relu", name=f"{name}_{i}") for i, units in enumerate(hidden)]


class NSTokenizer(keras.layers.Layer):
  """Eq. 2, "interact-then-split": T_NS = Split(F_NS(E_{U,I,C}), d_T); [B, d_NS] -> [B, N_NS, d_T].

  F_NS is an MLP whose last layer has N_NS * d_T units, so its output splits evenly into tokens.
  """

  def __init__(self, n_tokens: int, d_t: int, hidden: tuple[int, ...], **kwargs):
    super().__init__(**kwargs)
    self.n_tokens, self.d_t = n_tokens, d_t
    self.hidden = mlp(hidden, "f_ns")
    self.out = keras.layers.Dense(n_tokens * d_t, name="f_ns_out")

  def call(self, e_uic: tf.Tensor) -> tf.Tensor:
    x = e_uic
    for layer in self.hidden:
      x = layer(x)
    return tf.reshape(self.out(x), [-1, self.n_tokens, self.d_t])


class MixedHeteroAttention(keras.layers.Layer):
  """Eqs. 3-9: queries [B, L_Q, d_T] attend over a sequence [B, L, d_I] -> O [B, L_Q, d_T].

  Heterogeneous query projections: one W_Q^(l) in R^{d_T x d} per query position l (Eq. 4);
  shared W_K, W_V in R^{d_I x d} (Eq. 5); per-head softmax(Q̃ K̃^T / sqrt(d_h)) (Eq. 6) over the real
  events only; O^(l) = Att^(l) Ṽ (Eq. 7); [heads] W_O with W_O in R^{d x d_T} (Eq. 8).
  A query row never mixes with another, so the outputs of the fixed queries depend only on the sequence.
  An empty sequence gives all-zero attention outputs (then W_O's bias), never NaN.

  Reading: Eq. 6 scales by sqrt(d); with h heads we scale each head by sqrt(d / h), the usual
  multi-head form the paper's "multi-head attention architecture" remark points to.
  """

  def __init__(self, num_queries: int, d_t: int, d: int, heads: int, **kwargs):
    super().__init__(**kwargs)
    self.num_queries, self.d_t, self.d, self.heads = num_queries, d_t, d, heads

  def build(self, input_shape):
    d_i = input_shape[1][-1]
    self.w_q = self.add_weight(name="w_q", shape=[self.num_queries, self.d_t, self.d],
                               initializer=sliced_glorot(self.num_queries))
    self.w_k = self.add_weight(name="w_k", shape=[d_i, self.d], initializer="glorot_uniform")
    self.w_v = self.add_weight(name="w_v", shape=[d_i, self.d], initializer="glorot_uniform")
    self.w_o = keras.layers.Dense(self.d_t, name="w_o")
    super().build(input_shape)

  def _heads(self, x: tf.Tensor) -> tf.Tensor:  # [B, n, d] -> [B, h, n, d_h]
    b, n = tf.shape(x)[0], tf.shape(x)[1]
    return tf.transpose(tf.reshape(x, [b, n, self.heads, self.d // self.heads]), [0, 2, 1, 3])

  def call(self, inputs):
    queries, sequence, mask = inputs
    q = self._heads(tf.einsum("bqt,qtd->bqd", queries, self.w_q))  # Eq. 4
    k = self._heads(tf.einsum("bli,id->bld", sequence, self.w_k))  # Eq. 5
    v = self._heads(tf.einsum("bli,id->bld", sequence, self.w_v))
    scores = tf.einsum("bhqd,bhld->bhql", q, k) / tf.sqrt(float(self.d // self.heads))
    valid = mask[:, None, None, :]  # [B, 1, 1, L]
    att = tf.nn.softmax(scores + (1.0 - valid) * NEG_INF, axis=-1) * valid  # Eq. 6; empty -> 0
    o = tf.einsum("bhql,bhld->bhqd", att, v)  # Eq. 7
    b = tf.shape(o)[0]
    o = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, self.num_queries, self.d])
    return self.w_o(o)  # Eq. 8


class QueryMixedInterestExtraction(keras.layers.Layer):
  """Section 3.3.2 for one sequence: mixed queries [T_NS^s, Q^s] -> O^s [B, n_dyn + n_fixed, d_T] (Eq. 9).

  Q^s are learnable fixed queries (context-independent interests). With `use_mixed_queries=False`
  (the "w/o Mixed-Queries" ablation) the same number of tokens comes from AutoSplit of the masked
  mean of the sequence instead.
  """

  def __init__(self, n_dynamic: int, n_fixed: int, d_t: int, d: int, heads: int,
               use_mixed_queries: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.n_dynamic, self.n_fixed, self.d_t = n_dynamic, n_fixed, d_t
    self.use_mixed_queries = use_mixed_queries
    if use_mixed_queries:
      self.attention = MixedHeteroAttention(n_dynamic + n_fixed, d_t, d, heads, name="mha")
    else:
      self.autosplit = keras.layers.Dense((n_dynamic + n_fixed) * d_t, name="autosplit")

  def build(self, input_shape):
    if self.n_fixed:
      self.fixed_queries = self.add_weight(name="fixed_queries", shape=[self.n_fixed, self.d_t],
                                           initializer=keras.initializers.RandomNormal(stddev=0.02))
    super().build(input_shape)

  def call(self, inputs):
    dynamic, sequence, mask = inputs  # [B, n_dyn, d_T], [B, L, d_I], [B, L]
    if not self.use_mixed_queries:
      pooled = tf.math.divide_no_nan(tf.reduce_sum(sequence, axis=1),
                                     tf.reduce_sum(mask, axis=1, keepdims=True))
      return tf.reshape(self.autosplit(pooled), [-1, self.n_dynamic + self.n_fixed, self.d_t])
    queries = dynamic
    if self.n_fixed:
      fixed = tf.tile(self.fixed_queries[None], [tf.shape(dynamic)[0], 1, 1])
      queries = tf.concat([dynamic, fixed], axis=1)
    return self.attention([queries, sequence, mask])
