"""Train a HeMix model on the sequence job's (or the Transform component's) TFRecords, evaluate it,
export a SavedModel.

The TFX Trainer's `run_fn` (below) and the quick path of `make demo` both call `train_and_evaluate`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from hemix_tf.data.examples import make_dataset
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.preprocessing import TransformGraph
from hemix_tf.distribute import is_chief, strategy_for, write_dir
from hemix_tf.metrics import auc, between_group_auc, group_auc, logloss
from hemix_tf.model.accounting import forward_flops, parameter_counts
from hemix_tf.version import code_version
from hemix_tf.model.config import preset
from hemix_tf.model.export import export_saved_model
from hemix_tf.model.training import (FailOnNonFiniteLoss, build_and_compile, hashing_preprocessor, with_labels,
                                     with_oov_dropout)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  train_pattern: str | list[str]
  eval_pattern: str | list[str]
  output_dir: str  # metrics.json and TensorBoard logs
  saved_model_dir: str | None = None  # default: <output_dir>/saved_model
  feature_config: str = "synthetic-lbs"
  model_preset: str = "cpu-small"
  model_overrides: dict = dataclasses.field(default_factory=dict)  # HeMixConfig fields over the preset
  batch_size: int = 256  # the paper's
  train_steps: int = 400
  learning_rate: float = 1e-3
  shuffle_buffer: int = 20_000
  seed: int = 0
  distribution: str = "auto"  # hemix_tf.distribute.strategy_for
  checkpoint_steps: int = 100  # BackupAndRestore saves every this many steps
  backup_dir: str | None = None  # stable across restarts of the same run: a killed run resumes from it
  # The patterns are raw examples. The Transform component's output: its graph encodes them in the input
  # pipeline (the Transform materialises nothing) and inside the exported model; None: ids hashed
  # (HashingPreprocessor).
  transform_output: str | None = None
  xla: str = "interaction"  # XLA: off | step (the whole step) | interaction (HeMix after the gathers + Adam)
  warm_start_from: str | None = None  # a SavedModel this package exported: training starts from its weights


# Training progress records; a pipeline run shows them on the terminal under the Trainer
# (pipelines/progress.py), while the libraries' logs go to a file.
PROGRESS = logging.getLogger("hemix_tf.progress")


class ProgressLogger(keras.callbacks.Callback):
  """A line every `every` optimizer steps and at the last one, to `write`:

      step 120/400  loss 0.2841  1,512 examples/s  ETA 19 s

  examples/s since the previous line; the ETA from the rate since training (or its resumption) began."""

  def __init__(self, every: int, total_steps: int, batch_size: int, write: Callable[[str], None] = PROGRESS.info):
    super().__init__()
    self.every, self.total_steps, self.batch_size, self.write = every, total_steps, batch_size, write

  def on_train_begin(self, logs=None):
    self.start = self.last_time = time.perf_counter()
    self.first = self.last_step = int(self.model.optimizer.iterations.numpy())

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    if step % self.every and step != self.total_steps:
      return
    now = time.perf_counter()
    rate = (step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
    eta = (self.total_steps - step) * (now - self.start) / max(step - self.first, 1)
    self.write(f"step {step:,}/{self.total_steps:,}  loss {logs['loss']:.4f}  {rate:,.0f} examples/s  "
               f"ETA {eta:.0f} s")
    self.last_step, self.last_time = step, now


def _ranking(y: np.ndarray, p: np.ndarray, group: np.ndarray | None) -> dict:
  """AUC, mean label / prediction and example count of some examples; with their groups (users) also
  the GAUC (the order within each user) and the between-user AUC (the users' order)."""
  out = {"auc": auc(y, p), "mean_label": float(y.mean()), "mean_prediction": float(p.mean()),
         "examples": int(len(y))}
  if group is not None:
    out.update(gauc=group_auc(y, p, group), between_auc=between_group_auc(y, p, group))
  return out


def _name(value) -> str:
  return str(value.decode() if isinstance(value, bytes) else value)


def evaluate(model, dataset: tf.data.Dataset, tasks: tuple[str, ...], group_key: str | None = None,
             slice_key: str | None = None, within_slice_key: str | None = None) -> dict:
  """AUC, LogLoss, mean label / prediction and example count per task over the whole dataset; with
  `group_key` (a feature holding e.g. the raw user id) also the GAUC and the between-user AUC
  (`metrics.between_group_auc`); with `slice_key` (a feature of a few values, e.g. whether the user was
  seen in train) the same but the LogLoss per value of it, under "slices"; with `within_slice_key` too
  (another such feature, e.g. whether the example has a behaviour history) each slice's examples split
  again by its values, under the slice's "by_<within_slice_key>"."""
  labels, preds, oracle, groups, slices, within = {t: [] for t in tasks}, {t: [] for t in tasks}, [], [], [], []
  for features in dataset:
    out = model(features, training=False)
    for t in tasks:
      labels[t].append(features[t].numpy())
      preds[t].append(out[t].numpy())
    if "oracle_ctr" in features:
      oracle.append(features["oracle_ctr"].numpy())
    if group_key:
      groups.append(features[group_key].numpy())
    if slice_key:
      slices.append(features[slice_key].numpy())
    if slice_key and within_slice_key:
      within.append(features[within_slice_key].numpy())
  group = np.concatenate(groups) if group_key else None
  values = np.concatenate(slices) if slice_key else None
  sub_values = np.concatenate(within) if within else None
  metrics = {}
  for t in tasks:
    y, p = np.concatenate(labels[t]), np.concatenate(preds[t]).astype(np.float64)
    metrics[t] = {**_ranking(y, p, group), "logloss": logloss(y, p)}

    def ranked(m: np.ndarray) -> dict:  # the examples where m holds
      return _ranking(y[m], p[m], None if group is None else group[m])

    if slice_key:
      metrics[t]["slices"] = {_name(v): ranked(values == v) for v in np.unique(values)}
      if sub_values is not None:
        for v in np.unique(values):
          metrics[t]["slices"][_name(v)][f"by_{within_slice_key}"] = {
              _name(w): ranked((values == v) & (sub_values == w)) for w in np.unique(sub_values[values == v])}
  if oracle and "click" in tasks:  # synthetic data: the best achievable AUC on the same examples
    metrics["click"]["oracle_auc"] = auc(np.concatenate(labels["click"]), np.concatenate(oracle))
  return metrics


def warm_start(model, saved_model_dir: str, features: dict) -> None:
  """Initialises `model` with the weights of a SavedModel that `export_saved_model` wrote for the same
  model config and table sizes (a pushed model); anything else is an error naming the directory."""
  if not model.built:
    with model.distribute_strategy.scope():
      model(features)
  try:
    model.load_weights(f"{saved_model_dir}/variables/variables").assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.NotFoundError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f"cannot warm-start from {saved_model_dir}: not a SavedModel of this model config and "
                     f"these vocabularies ({first_line})") from e


def epoch_steps(cfg: TrainerConfig) -> int:
  """Steps per Keras epoch: BackupAndRestore saves at the end of each."""
  return math.gcd(cfg.train_steps, cfg.checkpoint_steps)


def resumed_steps(cfg: TrainerConfig) -> int:
  """The steps a killed run's backup in `cfg.backup_dir` already trained (0 without a backup): a resumed
  run restores those weights, and its input stream must start after as many batches."""
  latest = tf.train.latest_checkpoint(os.path.join(cfg.backup_dir, "chief")) if cfg.backup_dir else None
  if latest is None:
    return 0
  last_epoch = tf.train.load_checkpoint(latest).get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")
  return (int(last_epoch) + 1) * epoch_steps(cfg)


def build(model, features: dict) -> None:
  """Creates the model's variables on a batch of encoded features (BackupAndRestore restores into them)."""
  with model.distribute_strategy.scope():
    model(features)


def fit(model, train: tf.data.Dataset, cfg: TrainerConfig, callbacks=()) -> keras.callbacks.History:
  """`train_steps` steps in epochs of `checkpoint_steps` (a divisor of train_steps), with
  BackupAndRestore when `backup_dir` is set: a killed run restarted with the same backup_dir resumes
  after its last completed epoch and ends at exactly `train_steps` steps, on the batches an
  uninterrupted run would see if `train` starts at `resumed_steps(cfg)` (make_dataset's skip_batches).
  The model must then be built (`build`) on a batch from another dataset: an iterator of `train` would
  shift its shuffles."""
  if cfg.backup_dir and not model.built:
    raise ValueError("fit with a backup_dir needs a built model (trainer.build); else the restored weights "
                     "would wait for the first step")
  steps = epoch_steps(cfg)
  callbacks = list(callbacks)
  if cfg.backup_dir:
    callbacks.append(keras.callbacks.BackupAndRestore(cfg.backup_dir))
  return model.fit(train, steps_per_epoch=steps, epochs=cfg.train_steps // steps, verbose=0,
                   callbacks=[FailOnNonFiniteLoss(), *callbacks])


def train_and_evaluate(cfg: TrainerConfig) -> dict:
  keras.utils.set_random_seed(cfg.seed)
  fc = load_feature_config(cfg.feature_config)
  model_config = preset(cfg.model_preset, **cfg.model_overrides)
  tasks = model_config.tasks
  strategy = strategy_for(cfg.distribution)
  if cfg.transform_output:
    preprocessor = TransformGraph(cfg.transform_output, fc, model_config.time_gap_buckets)
  else:
    preprocessor = hashing_preprocessor(fc, model_config)
  spec, preprocess = preprocessor.raw_spec, preprocessor
  done = resumed_steps(cfg)
  if done:
    PROGRESS.info(f"resuming from the backup at step {done}: the input stream starts after its first {done} batches")
  train = make_dataset(cfg.train_pattern, spec, cfg.batch_size, shuffle_buffer=cfg.shuffle_buffer,
                       repeat=True, seed=cfg.seed, preprocess=preprocess, pad_for=fc, skip_batches=done)
  train = with_oov_dropout(train, model_config, preprocessor, cfg.seed, first_batch=done
                           ).map(lambda f: with_labels(f, tasks))
  with strategy.scope():
    model = build_and_compile(fc, model_config, preprocessor.table_sizes, cfg.learning_rate, cfg.xla)
  first = next(iter(make_dataset(cfg.train_pattern, spec, cfg.batch_size, preprocess=preprocess, pad_for=fc).take(1)))
  build(model, first)  # on its own dataset: an iterator of `train` would shift its shuffles (fit)
  if cfg.warm_start_from:
    warm_start(model, cfg.warm_start_from, first)
  PROGRESS.info(f"training {cfg.model_preset} for {cfg.train_steps} steps of {cfg.batch_size} "
                f"({strategy.num_replicas_in_sync} replica(s))")
  fit(model, train, cfg, [ProgressLogger(max(1, cfg.train_steps // 10), cfg.train_steps, cfg.batch_size),
                          keras.callbacks.TensorBoard(str(Path(cfg.output_dir) / "logs"), update_freq=50)])
  start = time.perf_counter()
  metrics = evaluate(model, make_dataset(cfg.eval_pattern, spec, 1024, preprocess=preprocess, pad_for=fc), tasks)
  PROGRESS.info(f"scored the eval split in {time.perf_counter() - start:.0f} s")
  start = time.perf_counter()
  destination = cfg.saved_model_dir or str(Path(cfg.output_dir) / "saved_model")
  saved_model = export_saved_model(model, preprocessor, fc, write_dir(destination, strategy))
  PROGRESS.info(f"exported the serving signatures in {time.perf_counter() - start:.0f} s")
  if not is_chief(strategy):  # every worker saves (collective ops); only the chief's copy is kept
    tf.io.gfile.rmtree(saved_model)
    return {"metrics": metrics, "saved_model": destination, "config": dataclasses.asdict(cfg)}
  record = {"trainer": dataclasses.asdict(cfg), "model": dataclasses.asdict(model_config),
            "code_version": code_version(), "feature_config": fc.name,
            "parameters": parameter_counts(model, fc), "forward_gflops": forward_flops(model, fc) / 1e9}
  tf.io.gfile.makedirs(f"{saved_model}/assets.extra")
  with tf.io.gfile.GFile(f"{saved_model}/assets.extra/hemix_training.json", "w") as f:
    f.write(json.dumps(record, indent=2, default=str) + "\n")  # what trained this model
  result = {"metrics": metrics, "saved_model": saved_model, "config": dataclasses.asdict(cfg)}
  tf.io.gfile.makedirs(cfg.output_dir)
  with tf.io.gfile.GFile(str(Path(cfg.output_dir) / "metrics.json"), "w") as f:
    f.write(json.dumps(result, indent=2) + "\n")
  return result


def run_fn(fn_args) -> None:
  """TFX Trainer entry point (generic trainer): `custom_config` carries the TrainerConfig fields."""
  custom = dict(fn_args.custom_config or {})
  for key in ("code_version", "feature_config_content"):  # only there to invalidate the pipeline cache
    custom.pop(key, None)
  train_and_evaluate(TrainerConfig(
      train_pattern=fn_args.train_files, eval_pattern=fn_args.eval_files,
      output_dir=fn_args.model_run_dir, saved_model_dir=fn_args.serving_model_dir,
      train_steps=fn_args.train_steps, transform_output=fn_args.transform_output, **custom))
