"""MixFormer and UI-MixFormer, from the second-hand notes (the project's MixFormer notes; only the
abstract of the paper is available), under HeMix's feature interface (same embeddings, same heads).

Shapes: B batch, N heads (tokens) of width D, L events (both sequences, concatenated), D_h = D / N.

  X = [W_j slice_j(concat of the non-sequential embeddings)]_j                         [B, N, D]
  block l (pre-norm, RMSNorm), L times:
    1. Query Mixer    P = HeadMixing(RMSNorm(X)) + X;  q_i = SwiGLU_i(RMSNorm(p_i)) + p_i
    2. Cross-attention h_t = SwiGLU^(l)(RMSNorm(s_t)) + s_t, s_t in R^{N·D} (events projected once);
                       head i takes the i-th D-wide part of h_t as key and value:
                       z_i = sum_t softmax_t(q_i · k_t^i / sqrt(D)) v_t^i + q_i
    3. Output Fusion   o_i = SwiGLU_i(RMSNorm(z_i)) + z_i
  output: the last block's heads, flattened, to the task heads.

Readings (docs/ARCHITECTURE.md): "per-head FFNs shared between the dense and sequence paths" is read as
steps 1 and 3 using the same SwiGLU_i weights (the residual form, not the concatenation one); k = v = the
head's part of h_t, with no further projection; the global and the real-time sequence are one key/value
stream (concatenated, each event tagged with a learned sequence-type vector), since MixFormer has one.
UI-MixFormer: the first N_U heads are cut from the user features only and HeadMixing is masked so that
they never receive sub-vectors of the item heads; with the event FFN and their attention they depend on
the user alone (tested), the item heads still read the user heads.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES
from hemix_tf.data.feature_config import FeatureConfig, FeatureGroup
from hemix_tf.model.config import MixFormerConfig
from hemix_tf.model.embedding import FeatureEmbedding
from hemix_tf.model.hemix import PredictionHead
from hemix_tf.model.hyformer import SwiGLU
from hemix_tf.model.mixer import sliced_glorot
from hemix_tf.model.tokenization import NEG_INF
from hemix_tf.model.serializable import RankingModel


class RMSNorm(keras.layers.Layer):
  def build(self, input_shape):
    self.scale = self.add_weight(name="scale", shape=[input_shape[-1]], initializer="ones")
    super().build(input_shape)

  def call(self, x):
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-6) * self.scale


class PerHeadSwiGLU(keras.layers.Layer):
  """SwiGLU_i for every head i at once: [B, N, D] -> [B, N, D]."""

  def __init__(self, expansion: int, **kwargs):
    super().__init__(**kwargs)
    self.expansion = expansion

  def build(self, input_shape):
    n, d = input_shape[1], input_shape[2]
    hidden = self.expansion * d
    self.w1, self.w2 = (self.add_weight(name=k, shape=[n, d, hidden], initializer=sliced_glorot(n))
                        for k in ("w1", "w2"))
    self.w3 = self.add_weight(name="w3", shape=[n, hidden, d], initializer=sliced_glorot(n))
    super().build(input_shape)

  def call(self, x):
    gate = tf.nn.swish(tf.einsum("bnd,ndh->bnh", x, self.w1)) * tf.einsum("bnd,ndh->bnh", x, self.w2)
    return tf.einsum("bnh,nhd->bnd", gate, self.w3)


def head_mixing(x: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
  """RankMixer's parameter-free token mixing: token i <- concat_j (i-th sub-vector of token j).
  mask [N, N] (target i, source j) zeroes the sub-vectors a target may not receive (UI-MixFormer)."""
  n, d = x.shape[1], x.shape[2]
  parts = tf.reshape(x, [-1, n, n, d // n])  # [B, source j, part i, D/N]
  mixed = tf.transpose(parts, [0, 2, 1, 3])  # [B, target i, source j, D/N]
  if mask is not None:
    mixed = mixed * mask[None, :, :, None]
  return tf.reshape(mixed, [-1, n, d])


class MixFormerBlock(keras.layers.Layer):
  def __init__(self, expansion: int, mixing_mask, **kwargs):
    super().__init__(**kwargs)
    self.mixing_mask = mixing_mask
    self.norm_x, self.norm_p, self.norm_s, self.norm_z = (RMSNorm(name=n) for n in ("rms_x", "rms_p", "rms_s", "rms_z"))
    self.head_ffn = PerHeadSwiGLU(expansion, name="head_swiglu")  # steps 1 and 3 (shared)
    self.event_ffn = SwiGLU(expansion, name="event_swiglu")

  def call(self, inputs):
    x, events, mask = inputs  # [B, N, D], [B, L, N·D], [B, L]
    n, d = x.shape[1], x.shape[2]
    p = head_mixing(self.norm_x(x), self.mixing_mask) + x
    q = self.head_ffn(self.norm_p(p)) + p  # 1. Query Mixer
    h = self.event_ffn(self.norm_s(events)) + events
    kv = tf.reshape(h, [tf.shape(h)[0], -1, n, d])  # [B, L, N, D]: head i's keys and values
    scores = tf.einsum("bnd,blnd->bnl", q, kv) / float(d) ** 0.5
    att = tf.nn.softmax(scores + (1.0 - mask[:, None, :]) * NEG_INF, axis=-1) * mask[:, None, :]
    z = tf.einsum("bnl,blnd->bnd", att, kv) + q  # 2. cross-attention
    return self.head_ffn(self.norm_z(z)) + z, h  # 3. Output Fusion; the refined events feed the next block


@keras.utils.register_keras_serializable(package="hemix_tf")
class MixFormer(RankingModel):
  """Encoded features -> {task: probability [B]}; UI-MixFormer when `user_heads` > 0."""

  def __init__(self, feature_config: FeatureConfig, config: MixFormerConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(feature_config, config, table_sizes, **kwargs)
    c = config
    self.embedding = FeatureEmbedding(feature_config, config, table_sizes, name="embedding")
    features = feature_config.features
    user = [i for i, f in enumerate(features) if f.group == FeatureGroup.USER]
    # Parts of the input cut into heads: all features (MixFormer), or user | item + context (UI-MixFormer).
    self.parts = ([user, [i for i in range(len(features)) if i not in user]] if c.user_heads
                  else [list(range(len(features)))])
    part_heads = [c.user_heads, c.heads - c.user_heads] if c.user_heads else [c.heads]
    width = [1 if f.kind.value == "dense" else c.embedding_dim[f.group.value] for f in features]
    self.slicing = []  # per part: (heads, slice width, W_j for every slice [heads, slice width, D])
    for k, (part, n) in enumerate(zip(self.parts, part_heads)):
      per = -(-sum(width[i] for i in part) // n)
      self.slicing.append((n, per, self.add_weight(name=f"slices_{k}", shape=[n, per, c.d],
                                                   initializer=sliced_glorot(n))))
    self.event_projection = keras.layers.Dense(c.heads * c.d, name="events")
    self.sequence_type = self.add_weight(name="sequence_type", shape=[len(SEQUENCES), c.heads * c.d],
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))
    mask = None
    if c.user_heads:  # user targets (rows) never receive sub-vectors of item sources (columns)
      user_target = tf.range(c.heads)[:, None] < c.user_heads
      item_source = tf.range(c.heads)[None, :] >= c.user_heads
      mask = 1.0 - tf.cast(user_target & item_source, tf.float32)
    self.blocks = [MixFormerBlock(c.expansion, mask, name=f"mixformer_{l}") for l in range(c.layers)]
    self.heads = {task: PredictionHead(c.head_hidden, name=f"head_{task}") for task in c.tasks}

  def head_tokens(self, features: dict) -> tf.Tensor:
    """The last block's heads [B, N, D] (the first N_U are the user heads of UI-MixFormer)."""
    fields = self.embedding.fields(features)
    x = []
    for part, (n, per, w) in zip(self.parts, self.slicing):
      flat = tf.concat([fields[i] for i in part], axis=-1)
      flat = tf.pad(flat, [[0, 0], [0, n * per - flat.shape[-1]]])
      x.append(tf.einsum("bnw,nwd->bnd", tf.reshape(flat, [-1, n, per]), w))
    x = tf.concat(x, axis=1)
    events, masks = [], []
    for k, s in enumerate(SEQUENCES):
      e, m = self.embedding.sequence(features, s)
      events.append(self.event_projection(e) + self.sequence_type[k])
      masks.append(m)
    events, mask = tf.concat(events, axis=1), tf.concat(masks, axis=1)
    for block in self.blocks:
      x, events = block([x, events, mask])
    return x

  def call(self, features: dict, training=None) -> dict:
    c = self.config
    pooled = tf.reshape(self.head_tokens(features), [-1, c.heads * c.d])
    return {task: head(pooled) for task, head in self.heads.items()}
