"""Feature tokenization (HeMix Section 3.3): NS tokens (Eq. 2) and Query-Mixed Interest Extraction (Eqs. 3-10).

Shapes: B batch, d_NS concatenated U/I/C width, d_T token width, L sequence length, d_I event width,
L_Q queries (dynamic T_NS^s then fixed Q^s), d attention width, h heads (d_h = d / h).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hemix_tf.model.mixer import sliced_glorot

NEG_INF = -1e9
NORMALIZATIONS = ("softmax", "sigmoid", "sink")


def mlp(hidden: tuple[int, ...], name: str) -> list[keras.layers.Layer]:
  return [keras.layers.Dense(units, activation="relu", name=f"{name}_{i}") for i, units in enumerate(hidden)]


class FieldDotProducts(keras.layers.Layer):
  """DLRM's interaction on the non-sequential fields: each field of E_{U,I,C} projected to `width`
  (its own W_f, b_f), then the dot product of every pair: [B, d_NS] -> [B, F (F - 1) / 2].

  `field_widths` are the fields' widths in E_{U,I,C}'s column order (FeatureEmbedding.field_widths). The
  F projections are one block-diagonal matmul: W [d_NS, F * width] is zero outside field f's rows x
  columns f * width .. (f + 1) * width, each block initialised Glorot-uniform for its own fan-in.
  """

  def __init__(self, field_widths: tuple[int, ...], width: int, **kwargs):
    super().__init__(**kwargs)
    self.field_widths, self.width = tuple(field_widths), width
    n = len(self.field_widths)
    mask, row = np.zeros([sum(self.field_widths), n * width], np.float32), 0
    for f, w in enumerate(self.field_widths):
      mask[row:row + w, f * width:(f + 1) * width], row = 1.0, row + w
    self.block_mask = tf.constant(mask)  # [d_NS, F * width]
    self.pairs = [i * n + j for i in range(n) for j in range(i + 1, n)]  # upper triangle of [F, F]

  def build(self, input_shape):
    if input_shape[-1] != sum(self.field_widths):
      raise ValueError(f"E_{{U,I,C}} is {input_shape[-1]} wide, the fields sum to {sum(self.field_widths)}")
    limits = tf.concat([tf.fill([w], math.sqrt(6.0 / (w + self.width))) for w in self.field_widths], 0)

    def block_glorot(shape, dtype=None):
      return tf.random.uniform(shape, -1.0, 1.0, dtype=dtype) * limits[:, None] * self.block_mask

    self.kernel = self.add_weight(name="kernel", shape=self.block_mask.shape, initializer=block_glorot)
    self.bias = self.add_weight(name="bias", shape=[self.block_mask.shape[1]], initializer="zeros")

  def call(self, e_uic: tf.Tensor) -> tf.Tensor:
    kernel = self.kernel * tf.cast(self.block_mask, self.kernel.dtype)  # stays block-diagonal when trained
    projected = tf.reshape(tf.matmul(e_uic, kernel) + self.bias, [-1, len(self.field_widths), self.width])
    dots = tf.einsum("bfk,bgk->bfg", projected, projected)
    return tf.gather(tf.reshape(dots, [-1, len(self.field_widths) ** 2]), self.pairs, axis=1)


class NSTokenizer(keras.layers.Layer):
  """Eq. 2, "interact-then-split": T_NS = Split(F_NS(E_{U,I,C}), d_T); [B, d_NS] -> [B, N_NS, d_T].

  F_NS is an MLP whose last layer has N_NS * d_T units, so its output splits evenly into tokens.
  `dot_width` > 0 (HeMixConfig.ns_dots): F_NS reads E_{U,I,C} together with the pairwise dot products of
  its fields (FieldDotProducts, of `field_widths`), as DLRM's top MLP does.
  """

  def __init__(self, n_tokens: int, d_t: int, hidden: tuple[int, ...], field_widths: tuple[int, ...] = (),
               dot_width: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.n_tokens, self.d_t = n_tokens, d_t
    self.field_dots = FieldDotProducts(field_widths, dot_width, name="field_dots") if dot_width else None
    self.hidden = mlp(hidden, "f_ns")
    self.out = keras.layers.Dense(n_tokens * d_t, name="f_ns_out")

  def call(self, e_uic: tf.Tensor) -> tf.Tensor:
    x = e_uic if self.field_dots is None else tf.concat([e_uic, self.field_dots(e_uic)], axis=-1)
    for layer in self.hidden:
      x = layer(x)
    return tf.reshape(self.out(x), [-1, self.n_tokens, self.d_t])


def normalize_last_axis(norm: keras.layers.LayerNormalization, x: tf.Tensor) -> tf.Tensor:
  """`norm` over the last axis of x of any rank (Keras fixes a LayerNormalization's axis to a positive
  index at build, so one built on [B, h, n, d_h] would normalise the wrong axis of [U, M, h, n, d_h])."""
  return tf.reshape(norm(tf.reshape(x, [-1, x.shape[-1]])), tf.shape(x))


class MixedHeteroAttention(keras.layers.Layer):
  """Eqs. 3-9: queries [B, L_Q, d_T] attend over a sequence [B, L, d_I] -> O [B, L_Q, d_T].

  Heterogeneous query projections: one W_Q^(l) in R^{d_T x d} per query position l (Eq. 4);
  shared W_K, W_V in R^{d_I x d} (Eq. 5); per-head softmax(Q̃ K̃^T / sqrt(d_h)) (Eq. 6) over the real
  events only; O^(l) = Att^(l) Ṽ (Eq. 7); [heads] W_O with W_O in R^{d x d_T} (Eq. 8).
  A query row never mixes with another, so the outputs of the fixed queries depend only on the sequence.
  An empty sequence gives all-zero attention outputs (then W_O's bias), never NaN.
  `keys_values` and `attend` split the computation for user-item decoupled scoring: K̃, Ṽ of U users
  ([U, 1, h, L, d_h]) broadcast against the queries of their M candidates ([U, M, n, d_T]) uncopied.

  Reading: Eq. 6 scales by sqrt(d); with h heads we scale each head by sqrt(d / h), the usual
  multi-head form the paper's "multi-head attention architecture" remark points to.

  `normalization` (HeMixConfig.attention_normalization) chooses how scores become weights:
    softmax  Eq. 6 as written: the weights of a row sum to 1, so the output says *which* events match
             the query but not *how many* (one matching event and fifty give the same output).
    sink     Eq. 6 with a learned null key joining every softmax (an attention sink, "softmax plus one"):
             per head a key k_0 and logit b_0 give the score q k_0 / sqrt(d_h) + b_0, and its weight
             w_0 falls on a learned null value v_0. With n matching events of score s the events get
             n e^s / (e^{s_0} + n e^s), a sigmoid of log n + s - s_0: the output moves from v_0 towards
             the matching events' values with the log of *how many* match, and it is not a rescaling
             of one vector (a LayerNorm downstream removes a scale, a share read as a scale is lost).
             An empty sequence gives v_0.
    sigmoid  each event gated on its own, σ(score), and averaged over the real events (DIN's reason to
             drop the normalisation), with a bias b_V on the values (Eq. 5 has none): the bias part of
             the output is b_V times the mean gate, a linear read-out of the share of matching events.
  `qk_norm` (HeMixConfig.qk_norm) applies a LayerNorm to every head's query and key before the dot
  product, so the scores start at unit scale whatever the scale of the embeddings (with Keras' embedding
  initialisation they start at ~0.004: the attention is uniform and stays so, docs/ARCHITECTURE.md).
  `event_norm` (HeMixConfig.event_norm) applies a LayerNorm to every event [d_I] before W_K and W_V, so
  keys and values are at unit scale too (padded events stay masked out of the weights). These norms use
  epsilon 1e-6: with Keras' 1e-3, an input of variance ~1e-3 (such embeddings) would stay small.
  """

  def __init__(self, num_queries: int, d_t: int, d: int, heads: int, normalization: str = "softmax",
               qk_norm: bool = False, event_norm: bool = False, **kwargs):
    super().__init__(**kwargs)
    if normalization not in NORMALIZATIONS:
      raise ValueError(f"attention normalization '{normalization}' is not one of {NORMALIZATIONS}")
    self.num_queries, self.d_t, self.d, self.heads = num_queries, d_t, d, heads
    self.normalization, self.qk_norm, self.event_norm = normalization, qk_norm, event_norm

  def build(self, input_shape):
    d_i = input_shape[1][-1]
    self.w_q = self.add_weight(name="w_q", shape=[self.num_queries, self.d_t, self.d],
                               initializer=sliced_glorot(self.num_queries))
    self.w_k = self.add_weight(name="w_k", shape=[d_i, self.d], initializer="glorot_uniform")
    self.w_v = self.add_weight(name="w_v", shape=[d_i, self.d], initializer="glorot_uniform")
    if self.normalization == "sigmoid":
      self.b_v = self.add_weight(name="b_v", shape=[self.d], initializer="zeros")
    if self.normalization == "sink":
      d_h = self.d // self.heads
      self.null_key = self.add_weight(name="null_key", shape=[self.heads, d_h], initializer="zeros")
      self.null_logit = self.add_weight(name="null_logit", shape=[self.heads], initializer="zeros")
      # At the scale of the values W_V x (unit-variance events, Glorot W_V) and unlike them, so that
      # moving between v_0 and the events' values changes the token's direction from the start.
      self.null_value = self.add_weight(name="null_value", shape=[self.heads, d_h],
                                        initializer=keras.initializers.RandomNormal(stddev=1.0))
    policy = self.dtype_policy  # sub-layers built here compute as this layer does (model/precision.py)
    self.w_o = keras.layers.Dense(self.d_t, name="w_o", dtype=policy)
    if self.qk_norm:
      self.q_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="q_norm", dtype=policy)
      self.k_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="k_norm", dtype=policy)
    if self.event_norm:
      self.e_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="event_norm", dtype=policy)
    super().build(input_shape)

  def _heads(self, x: tf.Tensor) -> tf.Tensor:  # [..., n, d] -> [..., h, n, d_h]
    x = tf.reshape(x, tf.concat([tf.shape(x)[:-1], [self.heads, self.d // self.heads]], axis=0))
    return tf.experimental.numpy.swapaxes(x, -2, -3)

  def _per_head(self, w: tf.Variable) -> tf.Tensor:  # W_K or W_V [d_I, d] -> [d_I, h, d_h]
    return tf.reshape(w, [-1, self.heads, self.d // self.heads])

  def events(self, sequence: tf.Tensor) -> tf.Tensor:
    """What W_K and W_V read: the sequence [..., L, d_I], with `event_norm` normalised per event."""
    return normalize_last_axis(self.e_norm, sequence) if self.event_norm else sequence

  def keys_values(self, sequence: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 5: K̃, Ṽ [B, h, L, d_h] of a sequence [B, L, d_I]."""
    sequence = self.events(sequence)
    k = self._heads(tf.einsum("bli,id->bld", sequence, self.w_k))
    v = tf.einsum("bli,id->bld", sequence, self.w_v)
    if self.normalization == "sigmoid":
      v += self.b_v
    return (normalize_last_axis(self.k_norm, k) if self.qk_norm else k), self._heads(v)

  def project_queries(self, queries: tf.Tensor, positions: slice) -> tf.Tensor:
    """Eq. 4: Q̃^(l) = q^(l) W_Q^(l) of the query positions `positions`, queries [..., n, d_T] -> [..., n, d].

    The leading dimensions are flattened into one labelled batch axis first: TensorFlow's gradient of an
    einsum whose "..." broadcasts against a weight materialises the product over every leading index before
    summing it ([B, n, d_T, d] for W_Q: 1 GiB a step at paper-small), where a labelled batch axis is
    contracted by one dot."""
    w_q = self.w_q[positions]  # [n, d_T, d]
    flat = tf.reshape(queries, [-1, w_q.shape[0], self.d_t])
    q = tf.einsum("bqt,qtd->bqd", flat, w_q)
    return tf.reshape(q, tf.concat([tf.shape(queries)[:-1], [self.d]], axis=0))

  def _query_heads(self, queries: tf.Tensor, positions: slice) -> tf.Tensor:
    """Eq. 4 split into heads (and with `qk_norm` normalised): [..., n, d_T] -> [..., h, n, d_h]."""
    q = self._heads(self.project_queries(queries, positions))
    return normalize_last_axis(self.q_norm, q) if self.qk_norm else q

  def _weights(self, q: tf.Tensor, scores: tf.Tensor, mask: tf.Tensor, search: tf.Tensor | None) -> tf.Tensor:
    """Eq. 6 from the raw scores q k^T [..., h, n, L] of the query heads q [..., h, n, d_h]: see
    `attention_weights`."""
    scores /= math.sqrt(self.d // self.heads)
    events = tf.maximum(tf.reduce_sum(mask, axis=-1)[..., None, None, None], 1.0)  # [..., 1, 1, 1]
    valid = (mask if search is None else mask * search)[..., None, None, :]  # [..., 1, 1, L]
    if self.normalization == "softmax":
      return tf.nn.softmax(scores + (1.0 - valid) * NEG_INF, axis=-1) * valid
    if self.normalization == "sink":
      null = (tf.einsum("...hnd,hd->...hn", q, self.null_key) / math.sqrt(self.d // self.heads)
              + self.null_logit[:, None])[..., None]  # [..., h, n, 1]; q may be one row for all (Q^s)
      scores += (1.0 - valid) * NEG_INF
      scores = tf.concat([scores, tf.broadcast_to(null, tf.concat([tf.shape(scores)[:-1], [1]], 0))], axis=-1)
      return tf.nn.softmax(scores, axis=-1)[..., :-1] * valid
    return tf.sigmoid(scores) * valid / events

  def attention_weights(self, queries: tf.Tensor, positions: slice, k: tf.Tensor, mask: tf.Tensor,
                        search: tf.Tensor | None = None) -> tf.Tensor:
    """Eqs. 4, 6: Att [..., h, n, L] of the query positions `positions` (queries [..., n, d_T]); padded
    events get weight 0, and an empty sequence all-zero weights (with the sink: all weight on v_0,
    which is 1 - the events' total). `search` [..., L] (1 = searched) restricts the events the queries
    may weigh (SIM's hard search); the sigmoid gates still average over all of the row's real events,
    so the output keeps the share of the sequence that the search found."""
    q = self._query_heads(queries, positions)
    return self._weights(q, tf.matmul(q, k, transpose_b=True), mask, search)

  def _output(self, att: tf.Tensor, o: tf.Tensor) -> tf.Tensor:
    """Eq. 8 from the weights Att [..., h, n, L] and Att Ṽ [..., h, n, d_h] -> [..., n, d_T] (with the
    sink, the null value's share joins Att Ṽ)."""
    if self.normalization == "sink":
      o += (1.0 - tf.reduce_sum(att, axis=-1, keepdims=True)) * self.null_value[:, None, :]
    o = tf.experimental.numpy.swapaxes(o, -2, -3)  # [..., n, h, d_h]
    o = tf.reshape(o, tf.concat([tf.shape(o)[:-2], [self.d]], axis=0))
    return self.w_o(o)  # Eq. 8

  def attend(self, queries: tf.Tensor, positions: slice, k: tf.Tensor, v: tf.Tensor,
             mask: tf.Tensor, search: tf.Tensor | None = None) -> tf.Tensor:
    """Eqs. 4, 6-8 for the query positions `positions`: queries [..., n, d_T] -> [..., n, d_T].
    k, v [..., h, L, d_h] and mask [..., L] broadcast against the queries' leading dimensions; `search`
    [..., L] as in `attention_weights`."""
    att = self.attention_weights(queries, positions, k, mask, search)  # Eq. 6
    return self._output(att, tf.matmul(att, v))  # Eq. 7: [..., h, n, d_h]

  def reads_events(self, n: int, length: int | None, d_i: int) -> bool:
    """Whether `attend_events` computes n queries over L events of width d_I with fewer FLOPs than
    `attend` with their keys and values (per example; it cannot with `qk_norm`, whose keys are normalised
    vectors, nor for a length unknown when traced): K̃, Ṽ cost 2 L d_I d multiply-adds and their products
    with the queries 2 n L d, against 2 n d d_I for the query-side products and 2 h n L d_I for the
    products with the events. At paper-small (global: n 32, L 256, d_I 160, d 256, h 4) 13.1M against
    25.2M."""
    return (not self.qk_norm and length is not None
            and n * d_i * (self.d + self.heads * length) < length * self.d * (d_i + n))

  def attend_events(self, queries: tf.Tensor, positions: slice, e: tf.Tensor, mask: tf.Tensor,
                    search: tf.Tensor | None = None) -> tf.Tensor:
    """`attend(queries, positions, *keys_values(sequence), mask, search)` in the other order of the same
    products (float order aside): per head the scores are (q W_K,h^T) E^T and the output (Att E) W_V,h, so
    K̃ and Ṽ [B, h, L, d_h] are never formed. Without `qk_norm` only; queries [B or 1, n, d_T], the
    events e = `events(sequence)` [B, L, d_I], mask and search [B, L] -> [B, n, d_T]."""
    q = self._query_heads(queries, positions)  # [B or 1, h, n, d_h]
    batch, heads, n = tf.shape(e)[0], self.heads, q.shape[-2]
    q_k = tf.einsum("bhnd,ihd->bhni", q, self._per_head(self.w_k))  # [B or 1, h, n, d_I]
    q_k = tf.broadcast_to(q_k, tf.concat([[batch], tf.shape(q_k)[1:]], axis=0))
    scores = tf.einsum("bmi,bli->bml", tf.reshape(q_k, [batch, heads * n, -1]), e)  # [B, h n, L]
    att = self._weights(q, tf.reshape(scores, [batch, heads, n, -1]), mask, search)  # Eq. 6
    att_e = tf.einsum("bml,bli->bmi", tf.reshape(att, [batch, heads * n, -1]), e)  # [B, h n, d_I]
    o = tf.einsum("bhni,ihd->bhnd", tf.reshape(att_e, [batch, heads, n, -1]), self._per_head(self.w_v))
    if self.normalization == "sigmoid":  # Att (E W_V + b_V) = (Att E) W_V + (sum of Att) b_V
      o += tf.reduce_sum(att, axis=-1, keepdims=True) * tf.reshape(self.b_v, [heads, 1, -1])
    return self._output(att, o)  # Eqs. 7-8

  def call(self, inputs, search: tf.Tensor | None = None):
    queries, sequence, mask = inputs
    return self.attend(queries, slice(None), *self.keys_values(sequence), mask, search)


class QueryMixedInterestExtraction(keras.layers.Layer):
  """Section 3.3.2 for one sequence: mixed queries [T_NS^s, Q^s] -> O^s [B, n_dyn + n_fixed, d_T] (Eq. 9).

  Q^s are learnable fixed queries (context-independent interests). With `use_mixed_queries=False`
  (the "w/o Mixed-Queries" ablation) the same number of tokens comes from AutoSplit of the masked
  mean of the sequence instead.
  """

  def __init__(self, n_dynamic: int, n_fixed: int, d_t: int, d: int, heads: int,
               use_mixed_queries: bool = True, normalization: str = "softmax", qk_norm: bool = False,
               event_norm: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.n_dynamic, self.n_fixed, self.d_t = n_dynamic, n_fixed, d_t
    self.use_mixed_queries = use_mixed_queries
    if use_mixed_queries:
      self.attention = MixedHeteroAttention(n_dynamic + n_fixed, d_t, d, heads, normalization, qk_norm,
                                            event_norm, name="mha")
    else:
      self.autosplit = keras.layers.Dense((n_dynamic + n_fixed) * d_t, name="autosplit")

  def build(self, input_shape):
    if self.use_mixed_queries:
      self.attention.build(input_shape)  # its methods are called directly (user_state / extract)
    if self.n_fixed:
      self.fixed_queries = self.add_weight(name="fixed_queries", shape=[self.n_fixed, self.d_t],
                                           initializer=keras.initializers.RandomNormal(stddev=0.02))
    super().build(input_shape)

  def user_state(self, sequence: tf.Tensor, mask: tf.Tensor) -> dict:
    """Everything that does not depend on the candidate, from a sequence [U, L, d_I] and mask [U, L]:
    K̃, Ṽ, the mask and the fixed-query tokens [U, n_fixed, d_T] (with AutoSplit: all the tokens)."""
    if not self.use_mixed_queries:
      pooled = tf.math.divide_no_nan(tf.reduce_sum(sequence, axis=1),
                                     tf.reduce_sum(mask, axis=1, keepdims=True))
      return {"tokens": tf.reshape(self.autosplit(pooled), [-1, self.n_dynamic + self.n_fixed, self.d_t])}
    k, v = self.attention.keys_values(sequence)
    state = {"k": k, "v": v, "mask": mask}
    if self.n_fixed:
      # Q^s is the same for every user: projected once ([1, n_fixed, d]), it broadcasts against K̃ [U, h, L, d_h].
      state["tokens"] = self.attention.attend(self.fixed_queries[None], slice(self.n_dynamic, None), k, v, mask)
    return state

  def extract(self, dynamic: tf.Tensor, state: dict, search: tf.Tensor | None = None) -> tf.Tensor:
    """O^s [..., n_dyn + n_fixed, d_T] from the dynamic queries [..., n_dyn, d_T] and a `user_state`
    whose tensors broadcast against them ([B] with [B], or [U, 1] with [U, M] candidates). `search`
    [..., L]: the events the dynamic queries may attend to (the fixed queries see the whole sequence;
    AutoSplit has no queries and ignores it)."""
    batch = tf.shape(dynamic)[:-2]
    if not self.use_mixed_queries:
      return tf.broadcast_to(state["tokens"], tf.concat([batch, [self.n_dynamic + self.n_fixed, self.d_t]], 0))
    out = self.attention.attend(dynamic, slice(0, self.n_dynamic), state["k"], state["v"], state["mask"], search)
    if self.n_fixed:
      fixed = tf.broadcast_to(state["tokens"], tf.concat([batch, [self.n_fixed, self.d_t]], 0))
      out = tf.concat([out, fixed], axis=-2)
    return out

  def call(self, inputs, search: tf.Tensor | None = None):
    """O^s of joined examples: the dynamic queries [B, n_dyn, d_T] over their own sequence [B, L, d_I]
    (mask, search [B, L]). Each row's K̃, Ṽ serve one candidate here, so the attention reads the events
    directly where that takes fewer FLOPs (`MixedHeteroAttention.reads_events`); `user_state` / `extract`
    keep K̃, Ṽ for the M candidates of decoupled scoring."""
    dynamic, sequence, mask = inputs
    attention = self.use_mixed_queries and self.attention
    if not attention or not attention.reads_events(self.n_dynamic + self.n_fixed, *sequence.shape[1:]):
      return self.extract(dynamic, self.user_state(sequence, mask), search)
    events = attention.events(sequence)
    out = attention.attend_events(dynamic, slice(0, self.n_dynamic), events, mask, search)
    if self.n_fixed:  # Q^s projected once ([1, n_fixed, ...]) for every row
      fixed = attention.attend_events(self.fixed_queries[None], slice(self.n_dynamic, None), events, mask)
      out = tf.concat([out, fixed], axis=-2)
    return out
