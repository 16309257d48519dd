"""Building, compiling and feeding a model (HeMix or a baseline): BCE per task (Eq. 23) on (features, labels)."""
from __future__ import annotations

import logging
from typing import Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.feature_config import FeatureConfig
from hemix_tf.data.preprocessing import HashingPreprocessor
from hemix_tf.model.baselines import Baseline
from hemix_tf.model.config import BaselineConfig, HeMixConfig, HyFormerConfig, InputConfig, MixFormerConfig
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.hyformer import HyFormer
from hemix_tf.model.mixformer import MixFormer


class FailOnNonFiniteLoss(keras.callbacks.Callback):
  """Stops training with an error naming the step at the first NaN / infinite loss (Keras'
  TerminateOnNaN only stops, and the NaN model is then evaluated and exported)."""

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.isfinite(loss):
      step = int(self.model.optimizer.iterations.numpy())
      raise FloatingPointError(f"the training loss is {loss} at step {step}: a non-finite input or a "
                               "diverging learning rate; nothing was exported")


@keras.utils.register_keras_serializable(package="hemix_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """The learning rate rising linearly to `learning_rate` over the first `warmup_steps` steps, then
  constant: Adam's first steps, whose second-moment estimates rest on a handful of gradients, move the
  weights by up to the full rate in every coordinate; a wide read-out can diverge there
  (docs/ARCHITECTURE.md, finding 19)."""

  def __init__(self, learning_rate: float, warmup_steps: int):
    self.learning_rate, self.warmup_steps = learning_rate, warmup_steps

  def __call__(self, step):
    ramp = tf.cast(step + 1, tf.float32) / self.warmup_steps
    return self.learning_rate * tf.minimum(1.0, ramp)

  def get_config(self) -> dict:
    return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


class Adam(keras.optimizers.Adam):
  """Keras' Adam, whose update of each variable is one XLA-compiled loop when `jit_compile` (Keras sets
  it only where it finds a GPU; on this CPU it replaces ~10 element-wise kernels per variable).
  An embedding table's sparse gradient (one row per lookup, indices repeated) enters the compiled update
  as it is and is summed there into a dense gradient of the table's shape: no `tf.unique` deduplication
  (a hash of every lookup of the batch, single-threaded), and XLA's scatter-add runs ~15x faster than TF's
  UnsortedSegmentSum kernel here (docs/BENCHMARKS.md). Keras' Adam decays and applies the moments of every
  row of the table for a sparse gradient too, so the update is the same, float order aside. Its shape is
  fixed by the batch's padded lookups, so each table compiles once per batch size.
  Keras' `_update_step_xla` is a `tf.function` attribute, so a SavedModel of the model serialises its
  traces (one per variable; about a minute of every export); overridden by a plain method, it is not."""

  def _deduplicate_sparse_grad(self, grads):
    return grads if self.jit_compile else super()._deduplicate_sparse_grad(grads)

  def _update_step_xla(self, gradient, variable, key):
    return super()._update_step_xla(gradient, variable, key)

  def update_step(self, gradient, variable):
    if self.jit_compile and isinstance(gradient, tf.IndexedSlices):
      gradient = tf.math.unsorted_segment_sum(gradient.values, gradient.indices, variable.shape[0])
    super().update_step(gradient, variable)


def with_oov_dropout(train: tf.data.Dataset, config: InputConfig, preprocessor, seed: int,
                     first_batch: int = 0) -> tf.data.Dataset:
  """Encoded training batches in which each example's id of every `config.oov_dropout_tables` table is
  replaced by the out-of-vocabulary row (the table's last) with probability `config.oov_dropout`: the row
  an id unseen in train is read as then learns from a representative sample of examples, not only from
  the rare ids the vocabulary left out. Stateless: batch i of the stream draws from (seed, i), so a run
  resumed at `first_batch` draws what an uninterrupted one did. `preprocessor` encoded the batches: a
  vocabulary encoding (TransformGraph, AnalyzedPreprocessor); a hashed table has no such row, so hashed
  batches are returned as they are, with a warning."""
  if not config.oov_dropout:
    return train
  if isinstance(preprocessor, HashingPreprocessor):
    logging.warning("oov_dropout=%s is not applied: hashed ids have no out-of-vocabulary row", config.oov_dropout)
    return train
  tables, table_sizes = config.oov_dropout_tables, preprocessor.table_sizes

  def drop(batch: tf.Tensor, features: dict) -> dict:
    out = dict(features)
    for k, table in enumerate(tables):
      ids = features[table]
      if not isinstance(ids, tf.Tensor) or ids.shape.rank != 1:
        raise ValueError(f"oov_dropout_tables: '{table}' is not a scalar id feature")
      draw = tf.random.stateless_uniform(tf.shape(ids), seed=tf.stack([tf.constant(seed, tf.int64),
                                                                       batch * len(tables) + k]))
      out[table] = tf.where(draw < config.oov_dropout, tf.constant(table_sizes[table] - 1, ids.dtype), ids)
    return out

  return train.enumerate(start=first_batch).map(drop, num_parallel_calls=tf.data.AUTOTUNE)


def with_labels(features: dict, tasks: tuple[str, ...]) -> tuple[dict, dict]:
  """An encoded batch -> (features, {task: float label}) for `model.fit`."""
  return features, {task: tf.cast(features[task], tf.float32) for task in tasks}


def hashing_preprocessor(feature_config: FeatureConfig, config: InputConfig) -> HashingPreprocessor:
  """The preprocessor of a model trained without the Transform component."""
  return HashingPreprocessor(feature_config, config.hash_buckets, config.time_gap_buckets)


def build_model(feature_config: FeatureConfig, config: InputConfig, table_sizes: Mapping[str, int]) -> keras.Model:
  """HeMix, a baseline, HyFormer / LONGER + RankMixer or (UI-)MixFormer by the config's type: the same
  inputs, embeddings and heads."""
  if isinstance(config, HeMixConfig):
    return HeMix(feature_config, config, table_sizes)
  if isinstance(config, BaselineConfig):
    return Baseline(feature_config, config, table_sizes)
  if isinstance(config, HyFormerConfig):
    return HyFormer(feature_config, config, table_sizes)
  if isinstance(config, MixFormerConfig):
    return MixFormer(feature_config, config, table_sizes)
  raise TypeError(f"no model for {type(config).__name__}")


XLA_MODES = ("off", "step", "interaction")


def build_and_compile(feature_config: FeatureConfig, config: InputConfig, table_sizes: Mapping[str, int],
                      learning_rate: float = 1e-3, xla: str = "off", warmup_steps: int = 0) -> keras.Model:
  """`build_model` with one BCE loss per task (Eq. 23, summed), Adam, and AUC per task.
  `xla`: "step" compiles the whole training step with XLA (its inputs must be padded:
  make_dataset(pad_for=...)); "interaction" compiles the dense computations only: HeMix's part
  after the embedding gathers in the training step (whose gradients then stay sparse; other models run
  uncompiled) and Adam's update of each dense-gradient variable (docs/BENCHMARKS.md); "off" compiles
  nothing.
  `warmup_steps` > 0: the learning rate rises linearly over these first steps (LinearWarmup)."""
  if xla not in XLA_MODES:
    raise ValueError(f"xla='{xla}' is not one of {XLA_MODES}")
  model = build_model(feature_config, config, table_sizes)
  if xla == "interaction" and isinstance(model, HeMix):
    model.xla_interaction = True
  optimizer = Adam(LinearWarmup(learning_rate, warmup_steps) if warmup_steps else learning_rate)
  optimizer.jit_compile = xla == "interaction"
  model.compile(optimizer=optimizer,
                loss={task: keras.losses.BinaryCrossentropy() for task in config.tasks},
                metrics={task: [keras.metrics.AUC(name="auc")] for task in config.tasks},
                jit_compile=xla == "step")
  return model
