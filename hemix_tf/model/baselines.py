"""The baselines of HeMix Table 2 under HeMix's feature interface (the papers' baseline notes).

Every baseline reads the same encoded features through the same `FeatureEmbedding` (same tables and
widths) and ends in the same per-task heads (Eq. 22); `use_sequences=False` drops the sequences,
`use_global_sequence=False` / `use_realtime_sequence=False` one of them (HeMix's ablations).
The two a user knows from FuxiCTR read the concatenated embeddings with an MLP:
  DNN         each sequence as its masked mean event
  DIN         each sequence as its target-attention pooling (DIN's activation unit, the candidate item as
              the target)
The others have no sequence module, so each sequence enters as two fields (docs/ARCHITECTURE.md): its
masked mean event and the DIN pooling. Fields are then projected to a common width d:

  fields [B, F, d]   F = non-sequential features + 2 per sequence
  DLRM        bottom MLP on the dense features; pairwise dot products of all fields and the bottom output
              (tfrs DotInteraction), concatenated with the bottom output; top MLP. Without dense features
              (MovieLens) there is no bottom: the top MLP reads the fields' dot products only, as the
              paper's interaction defines it (and FuxiCTR's DLRM does)
  DCNv2       Cross layers x_{l+1} = x_0 * (W x_l + b) + x_l (tfrs Cross) on the flattened fields, then a
              DNN (stacked) or beside a DNN (parallel)
  AutoInt+    multi-head self-attention over fields with a projected residual, plus a parallel DNN
  Hiformer    heterogeneous attention (per-field Q/K/V projections) whose keys / values also get a
              low-rank composite projection of all fields, then a per-field FFN
  MTGR        one transformer over all tokens: the fields and every sequence event (masked)
  RankMixer   T tokens by automatic split of the concatenated fields (a projection per slice), RankMixer
              blocks (parameter-free token mixing + per-token FFN)
  Transformer the same tokens through Transformer blocks
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from hemix_tf.data.examples import SEQUENCES
from hemix_tf.data.feature_config import FeatureConfig, FeatureGroup, FeatureKind
from hemix_tf.model.config import BaselineConfig
from hemix_tf.model.embedding import FeatureEmbedding
from hemix_tf.model.hemix import PredictionHead
from hemix_tf.model.mixer import RankMixerBlock, TransformerBlock, sliced_glorot
from hemix_tf.model.tokenization import NEG_INF, mlp
from hemix_tf.model.search import search_masks, searched_sequences
from hemix_tf.model.serializable import RankingModel

def masked_mean(events: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """[B, L, d_I], [B, L] -> [B, d_I]; an empty sequence gives zeros."""
  return tf.math.divide_no_nan(tf.reduce_sum(events, axis=1), tf.reduce_sum(mask, axis=1, keepdims=True))


class TargetAttentionPooling(keras.layers.Layer):
  """DIN (Zhou et al. 2018) pooling of a sequence with the candidate as target: the activation unit
  MLP([e, t, e - t, e * t]) scores each event. Reading: DIN leaves the weights unnormalised; we take a
  masked softmax over the events (a bounded scale whatever the sequence length). With a hard-search mask
  (SIM) the softmax runs over the searched events and the pooling is scaled by their share of the
  sequence, so that how many events the search found is not normalised away."""

  def __init__(self, hidden: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden = hidden

  def build(self, input_shape):
    d_i = input_shape[1][-1]
    self.target = keras.layers.Dense(d_i, name="target")
    self.unit = keras.Sequential([keras.layers.Dense(self.hidden, activation="sigmoid"), keras.layers.Dense(1)],
                                 name="activation_unit")
    super().build(input_shape)

  def call(self, inputs, search: tf.Tensor | None = None):
    candidate, events, mask = inputs  # [B, d_c], [B, L, d_I], [B, L]; search [B, L]
    valid = mask if search is None else mask * search
    t = tf.broadcast_to(self.target(candidate)[:, None], tf.shape(events))
    scores = self.unit(tf.concat([events, t, events - t, events * t], axis=-1))[..., 0]
    weights = tf.nn.softmax(scores + (1.0 - valid) * NEG_INF, axis=-1) * valid
    pooled = tf.einsum("bl,bld->bd", weights, events)
    if search is None:
      return pooled
    return pooled * tf.math.divide_no_nan(tf.reduce_sum(valid, axis=1), tf.reduce_sum(mask, axis=1))[:, None]


class HeterogeneousAttention(keras.layers.Layer):
  """Hiformer layer: per-field Q/K/V [F, d, d]; keys and values add a low-rank composite projection of
  the flattened fields; multi-head attention over fields, residual + LN, per-field FFN, residual + LN."""

  def __init__(self, heads: int, expansion: int, rank: int = 16, **kwargs):
    super().__init__(**kwargs)
    self.heads, self.expansion, self.rank = heads, expansion, rank

  def build(self, input_shape):
    f, d = input_shape[1], input_shape[2]
    self.w_q, self.w_k, self.w_v = (self.add_weight(name=n, shape=[f, d, d], initializer=sliced_glorot(f))
                                    for n in ("w_q", "w_k", "w_v"))
    self.composite = keras.Sequential([keras.layers.Dense(self.rank), keras.layers.Dense(2 * f * d)],
                                      name="composite")
    self.ffn_in = self.add_weight(name="ffn_in", shape=[f, d, self.expansion * d], initializer=sliced_glorot(f))
    self.ffn_out = self.add_weight(name="ffn_out", shape=[f, self.expansion * d, d], initializer=sliced_glorot(f))
    self.norm1 = keras.layers.LayerNormalization()
    self.norm2 = keras.layers.LayerNormalization()
    super().build(input_shape)

  def _heads(self, x):  # [B, F, d] -> [B, h, F, d/h]
    f, d = x.shape[1], x.shape[2]
    return tf.transpose(tf.reshape(x, [-1, f, self.heads, d // self.heads]), [0, 2, 1, 3])

  def call(self, x):
    f, d = x.shape[1], x.shape[2]
    composite = tf.reshape(self.composite(tf.reshape(x, [-1, f * d])), [-1, 2, f, d])
    q = self._heads(tf.einsum("bfd,fde->bfe", x, self.w_q))
    k = self._heads(tf.einsum("bfd,fde->bfe", x, self.w_k) + composite[:, 0])
    v = self._heads(tf.einsum("bfd,fde->bfe", x, self.w_v) + composite[:, 1])
    att = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / (d // self.heads) ** 0.5, axis=-1)
    o = tf.reshape(tf.transpose(tf.matmul(att, v), [0, 2, 1, 3]), [-1, f, d])
    s = self.norm1(x + o)
    h = tf.einsum("bfe,fed->bfd", tf.nn.relu(tf.einsum("bfd,fde->bfe", s, self.ffn_in)), self.ffn_out)
    return self.norm2(s + h)


class AutoIntLayer(keras.layers.Layer):
  """AutoInt (Song et al. 2019): multi-head self-attention over fields, ReLU(attention + W_res x)."""

  def __init__(self, heads: int, **kwargs):
    super().__init__(**kwargs)
    self.heads = heads

  def build(self, input_shape):
    d = input_shape[-1]
    self.attention = keras.layers.MultiHeadAttention(self.heads, d // self.heads, name="mhsa")
    self.residual = keras.layers.Dense(d, use_bias=False, name="w_res")
    super().build(input_shape)

  def call(self, x):
    return tf.nn.relu(self.attention(x, x) + self.residual(x))


@keras.utils.register_keras_serializable(package="hemix_tf")
class Baseline(RankingModel):
  """Encoded features -> {task: probability [B]}, for every baseline of BASELINES."""

  def __init__(self, feature_config: FeatureConfig, config: BaselineConfig, table_sizes: Mapping[str, int],
               **kwargs):
    super().__init__(feature_config, config, table_sizes, **kwargs)
    used = {"global": config.use_global_sequence, "realtime": config.use_realtime_sequence}
    self.sequences = tuple(s for s in SEQUENCES if config.use_sequences and used[s])
    self.searched = tuple(s for s in searched_sequences(feature_config, config) if s in self.sequences)
    self.embedding = FeatureEmbedding(feature_config, config, table_sizes, name="embedding")
    kinds = [f.kind for f in feature_config.features]
    self.dense_fields = [i for i, k in enumerate(kinds) if k == FeatureKind.DENSE]
    self.item_fields = [i for i, f in enumerate(feature_config.features) if f.group == FeatureGroup.ITEM]
    self.pooling = {s: TargetAttentionPooling(config.din_hidden, name=f"din_{s}") for s in self.sequences}
    self.heads = {task: PredictionHead(config.head_hidden, name=f"head_{task}") for task in config.tasks}
    if config.model in ("dnn", "din"):
      self.dnn = mlp(config.hidden, "dnn")
      return
    n_fields = len(kinds) + 2 * len(self.sequences)
    if config.model == "dlrm":  # dense features go through the bottom MLP instead of a projection
      n_fields -= len(self.dense_fields)
      if self.dense_fields:
        self.bottom = mlp((config.hidden[-1],), "bottom") + [keras.layers.Dense(config.d, name="bottom_out")]
    self.n_fields = n_fields
    self.projections = [keras.layers.Dense(config.d, name=f"field_{i}") for i in range(n_fields)]
    self._build_interaction(config, n_fields)

  def _build_interaction(self, c: BaselineConfig, n_fields: int) -> None:
    if c.model == "dlrm":
      self.interaction = tfrs.layers.feature_interaction.DotInteraction(self_interaction=False)
      self.top = mlp(c.hidden, "top")
    elif c.model.startswith("dcnv2"):
      self.cross = [tfrs.layers.dcn.Cross(projection_dim=c.cross_rank, name=f"cross_{i}") for i in range(c.layers)]
      self.dnn = mlp(c.hidden, "dnn")
    elif c.model == "autoint":
      self.attention = [AutoIntLayer(c.heads, name=f"autoint_{i}") for i in range(c.layers)]
      self.dnn = mlp(c.hidden, "dnn")
    elif c.model == "hiformer":
      self.attention = [HeterogeneousAttention(c.heads, c.expansion, name=f"hiformer_{i}") for i in range(c.layers)]
    elif c.model == "mtgr":
      self.event_projection = keras.layers.Dense(c.d, name="event_projection")
      self.blocks = [TransformerBlock(c.heads, c.expansion, name=f"mtgr_{i}") for i in range(c.layers)]
    else:  # rankmixer, transformer: automatic split into T tokens, one projection per slice
      if c.d % c.tokens and c.model == "rankmixer":
        raise ValueError(f"RankMixer token mixing needs d ({c.d}) divisible by tokens ({c.tokens})")
      self.slice_width = -(-n_fields * c.d // c.tokens)  # the projected fields, cut into T slices
      self.split = self.add_weight(name="auto_split", shape=[c.tokens, self.slice_width, c.d],
                                   initializer=sliced_glorot(c.tokens))
      self.blocks = [RankMixerBlock(c.expansion, name=f"rankmixer_{i}") if c.model == "rankmixer"
                     else TransformerBlock(c.heads, c.expansion, name=f"transformer_{i}") for i in range(c.layers)]

  def pooled_sequences(self, embedded: list[tf.Tensor], sequences: dict, search: dict,
                       poolings: tuple[str, ...]) -> list[tf.Tensor]:
    """Per sequence, its `poolings` in order: "mean" the masked mean event [B, d_I], "din" the
    target-attention pooling [B, d_I] (over the hard-searched events where `search` has a mask)."""
    candidate = tf.concat([embedded[i] for i in self.item_fields], axis=-1)
    pooled = []
    for s in self.sequences:
      events, mask = sequences[s]
      pooled += [masked_mean(events, mask) if kind == "mean" else
                 self.pooling[s]([candidate, events, mask], search.get(s)) for kind in poolings]
    return pooled

  def fields(self, embedded: list[tf.Tensor], sequences: dict, search: dict) -> tf.Tensor:
    """[B, F, d]: the projected non-sequential fields (DLRM: without the dense ones), then per sequence
    its mean and target-attention pooling."""
    raw = [x for i, x in enumerate(embedded) if self.config.model != "dlrm" or i not in self.dense_fields]
    raw += self.pooled_sequences(embedded, sequences, search, ("mean", "din"))
    return tf.stack([proj(x) for proj, x in zip(self.projections, raw)], axis=1)

  def _run(self, layers, x):
    for layer in layers:
      x = layer(x)
    return x

  def representation(self, features: dict) -> tf.Tensor:
    """The vector the task heads read, [B, ·]."""
    c = self.config
    embedded = self.embedding.fields(features)
    sequences = {s: self.embedding.sequence(features, s) for s in self.sequences}
    search = search_masks(self.feature_config, self.searched, features)
    if c.model in ("dnn", "din"):
      pooled = self.pooled_sequences(embedded, sequences, search, ("mean",) if c.model == "dnn" else ("din",))
      return self._run(self.dnn, tf.concat(embedded + pooled, axis=-1))
    fields = self.fields(embedded, sequences, search)
    flat = tf.reshape(fields, [-1, self.n_fields * c.d])
    if c.model == "dlrm":
      if not self.dense_fields:
        return self._run(self.top, self.interaction(tf.unstack(fields, axis=1)))
      bottom = self._run(self.bottom, tf.concat([embedded[i] for i in self.dense_fields], axis=-1))
      dots = self.interaction(tf.unstack(tf.concat([bottom[:, None], fields], axis=1), axis=1))
      return self._run(self.top, tf.concat([bottom, dots], axis=-1))
    if c.model.startswith("dcnv2"):
      x = flat
      for cross in self.cross:
        x = cross(flat, x)
      if c.model == "dcnv2":
        return self._run(self.dnn, x)
      return tf.concat([x, self._run(self.dnn, flat)], axis=-1)
    if c.model == "autoint":
      attended = tf.reshape(self._run(self.attention, fields), [-1, self.n_fields * c.d])
      return tf.concat([attended, self._run(self.dnn, flat)], axis=-1)
    if c.model == "hiformer":
      return tf.reshape(self._run(self.attention, fields), [-1, self.n_fields * c.d])
    if c.model == "mtgr":
      tokens, masks = [fields], [tf.ones_like(fields[:, :, 0])]
      for s in self.sequences:
        events, mask = sequences[s]
        tokens.append(self.event_projection(events))
        masks.append(mask)
      x, mask = tf.concat(tokens, axis=1), tf.concat(masks, axis=1)
      for block in self.blocks[:-1]:
        x = block(x, mask=mask)
      # Only the field tokens (they carry the candidate) are read: the last block computes only theirs.
      return tf.reduce_mean(self.blocks[-1](x, mask=mask, outputs=self.n_fields), axis=1)
    return tf.reduce_mean(self._run(self.blocks, self._auto_split(flat)), axis=1)

  def _auto_split(self, flat: tf.Tensor) -> tf.Tensor:
    """[B, F·d] -> [B, T, d]: T contiguous slices (zero-padded to equal width), each projected by its W_j."""
    c = self.config
    padded = tf.pad(flat, [[0, 0], [0, self.slice_width * c.tokens - flat.shape[-1]]])
    return tf.einsum("btw,twd->btd", tf.reshape(padded, [-1, c.tokens, self.slice_width]), self.split)

  def call(self, features: dict, training=None) -> dict:
    pooled = self.representation(features)
    return {task: head(pooled) for task, head in self.heads.items()}
