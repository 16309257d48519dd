"""Interaction blocks (HeMix Section 3.4, Table 4): HeteroMixer, and the RankMixer / Transformer blocks.

All take and return tokens [B, N, d_T]. Per-token and per-head weights are applied with one batched
einsum each, never a Python loop over tokens or heads.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


def sliced_glorot(slices: int) -> keras.initializers.Initializer:
  """Glorot-uniform for each [in, out] slice of a [slices, in, out] weight (Keras would divide the
  variance by `slices` too, treating the slice axis as a receptive field)."""
  return keras.initializers.VarianceScaling(scale=float(slices), mode="fan_avg", distribution="uniform")


def fuse(tokens: tf.Tensor, heads: int) -> tf.Tensor:
  """Multi-head token fusion, Eqs. 13-15: [B, N, d_T] -> G [B, M, N * d_h], d_h = d_T / M.

  G^(i) concatenates the i-th sub-token of every token.
  """
  n, d_t = tokens.shape[1], tokens.shape[2]
  x = tf.reshape(tokens, [-1, n, heads, d_t // heads])
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, heads, n * (d_t // heads)])


def reconstruct(mixed: tf.Tensor, n: int) -> tf.Tensor:
  """Group-aligned token reconstruction: the exact inverse of `fuse`; [B, M, N * d_h] -> [B, N, d_T]."""
  heads, width = mixed.shape[1], mixed.shape[2]
  d_h = width // n
  x = tf.transpose(tf.reshape(mixed, [-1, heads, n, d_h]), [0, 2, 1, 3])
  return tf.reshape(x, [-1, n, heads * d_h])


def add_and_norm(x: tf.Tensor, sublayer, norm: keras.layers.Layer, pre_norm: bool) -> tf.Tensor:
  """The residual around a sub-layer: post-LN, LN(x + f(x)) (the paper's Add&Norm, Eqs. 11, 21), or
  pre-LN, x + f(LN(x)) (HeMixConfig.pre_norm), which leaves the residual stream unnormalised."""
  return x + sublayer(norm(x)) if pre_norm else norm(x + sublayer(x))


class PerTokenFFN(keras.layers.Layer):
  """Eqs. 19-20: an independent FFN per token, Ŝ^(i) = W_2^(i) ReLU(S^(i) W_1^(i) + b_1^(i)) + b_2^(i)."""

  def __init__(self, expansion: int, **kwargs):
    super().__init__(**kwargs)
    self.expansion = expansion

  def build(self, input_shape):
    n, d_t = input_shape[1], input_shape[2]
    hidden = self.expansion * d_t
    self.w1 = self.add_weight(name="w1", shape=[n, d_t, hidden], initializer=sliced_glorot(n))
    self.b1 = self.add_weight(name="b1", shape=[n, hidden], initializer="zeros")
    self.w2 = self.add_weight(name="w2", shape=[n, hidden, d_t], initializer=sliced_glorot(n))
    self.b2 = self.add_weight(name="b2", shape=[n, d_t], initializer="zeros")
    super().build(input_shape)

  def call(self, s: tf.Tensor) -> tf.Tensor:
    h = tf.nn.relu(tf.einsum("bnd,ndh->bnh", s, self.w1) + self.b1)
    return tf.einsum("bnh,nhd->bnd", h, self.w2) + self.b2


class HeteroMixing(keras.layers.Layer):
  """Eqs. 13-18: fuse -> per-head low-rank MLP Ĝ_m = W^R_m ReLU(W^L_m G_m) -> reconstruct.

  Returns T̂ [B, N, d_T]; the block adds the residual and LayerNorm once (Eq. 18 is Eq. 11's Add&Norm).
  `identity_interaction=True` replaces the low-rank MLP by the identity (a test of the round trip).
  """

  def __init__(self, heads: int, rank: int, identity_interaction: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.heads, self.rank, self.identity_interaction = heads, rank, identity_interaction

  def build(self, input_shape):
    n, d_t = input_shape[1], input_shape[2]
    width = n * d_t // self.heads
    self.w_l = self.add_weight(name="w_l", shape=[self.heads, width, self.rank],
                               initializer=sliced_glorot(self.heads))
    self.w_r = self.add_weight(name="w_r", shape=[self.heads, self.rank, width],
                               initializer=sliced_glorot(self.heads))
    super().build(input_shape)

  def call(self, tokens: tf.Tensor) -> tf.Tensor:
    g = fuse(tokens, self.heads)  # Eqs. 13-15
    if not self.identity_interaction:
      g = tf.einsum("bmr,mrx->bmx", tf.nn.relu(tf.einsum("bmx,mxr->bmr", g, self.w_l)), self.w_r)  # 16-17
    return reconstruct(g, tokens.shape[1])


class HeteroMixerBlock(keras.layers.Layer):
  """Eqs. 11-12 / 18 / 21: S = LN(HeteroMixing(T) + T); T' = LN(HeteroFFN(S) + S) (or pre-LN)."""

  def __init__(self, heads: int, rank: int, expansion: int, pre_norm: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.pre_norm = pre_norm
    self.mixing = HeteroMixing(heads, rank, name="hetero_mixing")
    self.ffn = PerTokenFFN(expansion, name="hetero_ffn")
    self.norm1 = keras.layers.LayerNormalization(name="ln_mixing")
    self.norm2 = keras.layers.LayerNormalization(name="ln_ffn")

  def call(self, tokens: tf.Tensor) -> tf.Tensor:
    s = add_and_norm(tokens, self.mixing, self.norm1, self.pre_norm)
    return add_and_norm(s, self.ffn, self.norm2, self.pre_norm)


class RankMixerBlock(keras.layers.Layer):
  """RankMixer (Zhu et al. 2025) as HeMix's Table 4 baseline: parameter-free token mixing + per-token FFN.

  Token mixing splits every token into N parts and re-concatenates the i-th parts into token i, i.e.
  `fuse` with M = N heads (so the mixed tokens are again N tokens of width d_T); d_T must divide by N.
  """

  def __init__(self, expansion: int, pre_norm: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.pre_norm = pre_norm
    self.ffn = PerTokenFFN(expansion, name="pffn")
    self.norm1 = keras.layers.LayerNormalization(name="ln_mixing")
    self.norm2 = keras.layers.LayerNormalization(name="ln_ffn")

  def call(self, tokens: tf.Tensor) -> tf.Tensor:
    n, d_t = tokens.shape[1], tokens.shape[2]
    if d_t % n:
      raise ValueError(f"RankMixer token mixing needs d_T ({d_t}) divisible by N ({n})")
    s = add_and_norm(tokens, lambda t: tf.reshape(fuse(t, n), [-1, n, d_t]), self.norm1, self.pre_norm)
    return add_and_norm(s, self.ffn, self.norm2, self.pre_norm)


class TransformerBlock(keras.layers.Layer):
  """A post-LN Transformer encoder block over the tokens (Table 4 baseline), shared FFN."""

  def __init__(self, heads: int, expansion: int, **kwargs):
    super().__init__(**kwargs)
    self.heads, self.expansion = heads, expansion
    self.norm1 = keras.layers.LayerNormalization(name="ln_attention")
    self.norm2 = keras.layers.LayerNormalization(name="ln_ffn")

  def build(self, input_shape):
    d_t = input_shape[-1]
    policy = self.dtype_policy  # sub-layers built here compute as this layer does (model/precision.py)
    self.attention = keras.layers.MultiHeadAttention(self.heads, d_t // self.heads, name="mhsa", dtype=policy)
    self.ffn = keras.Sequential([keras.layers.Dense(self.expansion * d_t, activation="relu", dtype=policy),
                                 keras.layers.Dense(d_t, dtype=policy)], name="ffn")
    super().build(input_shape)

  def call(self, tokens: tf.Tensor, mask: tf.Tensor | None = None, outputs: int | None = None) -> tf.Tensor:
    """tokens [B, N, d_T]; mask [B, N] (1 = real token): padded tokens are never attended to. -> [B, N, d_T],
    or with `outputs` = k only the first k tokens' outputs, [B, k, d_T] (each still attends to all N): the
    same values as the full block's [:, :k] at a fraction of its cost when only those are read."""
    queries = tokens if outputs is None else tokens[:, :outputs]
    attention_mask = None if mask is None else tf.cast(mask[:, None, :], tf.bool)
    s = self.norm1(self.attention(queries, tokens, attention_mask=attention_mask) + queries)
    return self.norm2(self.ffn(s) + s)
