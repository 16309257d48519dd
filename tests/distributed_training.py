"""Helper process for the distribution and resume tests: trains cpu-small on a fixed sample of 520 raw
examples in gzip TFRecords, read as the Trainer reads them (a seeded, shuffled, repeated stream whose
passes do not align with the epochs of 8 batches of 64).

  python tests/distributed_training.py --mode=single|mirrored|multi_worker --out=result.json
  [--backup_dir=D] [--kill_at_step=K]   (K: the process dies with exit code 3 after step K)

Beside result.json it writes result.json.weights-<step>.json, a fingerprint (the sum of every variable)
of the model's weights when training begins (the first step's weights: restored ones on a resume) and
at the end of every epoch.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--mode", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--backup_dir")
  parser.add_argument("--kill_at_step", type=int, default=0)
  parser.add_argument("--steps", type=int, default=24)
  args = parser.parse_args()
  if args.mode == "mirrored":  # two logical CPU devices, as two GPUs would be
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

  import dataclasses
  import tf_keras as keras
  import tempfile
  from model_inputs import random_features, serialize
  from hemix_tf.data.examples import make_dataset
  from hemix_tf.data.feature_config import load_feature_config
  from hemix_tf.distribute import strategy_for
  from hemix_tf.model.config import preset
  from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels
  from hemix_tf.trainer import TrainerConfig, build, fit, resumed_steps

  full = load_feature_config("synthetic-lbs")  # short sequences: the model pads to L_G / L_R
  fc = dataclasses.replace(full, sequence=dataclasses.replace(full.sequence, global_length=16, realtime_length=4))
  config = dataclasses.replace(preset("cpu-small"), tasks=("click",))
  keras.utils.set_random_seed(0)
  strategy = strategy_for({"single": "none"}.get(args.mode, args.mode))
  records = serialize(random_features(fc, 520, seed=0, max_lengths={"global": 16, "realtime": 4}))
  examples = tempfile.mkdtemp()
  for shard in range(3):
    with tf.io.TFRecordWriter(f"{examples}/part-{shard}.tfrecord.gz", options="GZIP") as writer:
      for record in records[shard::3]:
        writer.write(record)
  cfg = TrainerConfig(train_pattern=f"{examples}/part-*", eval_pattern="-", output_dir="-", train_steps=args.steps,
                      checkpoint_steps=8, shuffle_buffer=256, backup_dir=args.backup_dir)
  preprocessor = hashing_preprocessor(fc, config)
  data = make_dataset(cfg.train_pattern, preprocessor.raw_spec, 64, shuffle_buffer=cfg.shuffle_buffer, repeat=True,
                      seed=cfg.seed, preprocess=preprocessor, pad_for=fc, skip_batches=resumed_steps(cfg))
  data = data.map(lambda f: with_labels(f, config.tasks))
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  data = data.with_options(options)
  with strategy.scope():
    model = build_and_compile(fc, config, preprocessor.table_sizes, learning_rate=1e-3)
  build(model, next(iter(make_dataset(cfg.train_pattern, preprocessor.raw_spec, 64, preprocess=preprocessor,
                                      pad_for=fc))))

  def dump_weights(step):
    with open(f"{args.out}.weights-{step}.json", "w") as f:
      json.dump({f"{i} {v.name}": float(tf.reduce_sum(tf.cast(v, tf.float64)))
                 for i, v in enumerate(model.trainable_variables)}, f)

  class Fingerprint(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
      if not hasattr(self, "began"):
        self.began = True
        dump_weights(f"begin-{int(self.model.optimizer.iterations.numpy())}")

    def on_epoch_end(self, epoch, logs=None):
      dump_weights(int(self.model.optimizer.iterations.numpy()))

  class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if args.kill_at_step and int(self.model.optimizer.iterations.numpy()) >= args.kill_at_step:
        os._exit(3)  # a crash: no cleanup, no final checkpoint

  history = fit(model, data, cfg, [Fingerprint(), Kill()])
  result = {"replicas": strategy.num_replicas_in_sync, "steps": int(model.optimizer.iterations.numpy()),
            "epochs_run": len(history.history["loss"]), "final_loss": float(history.history["loss"][-1])}
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  if task.get("index", 0) == 0:
    with open(args.out, "w") as f:
      json.dump(result, f)


if __name__ == "__main__":
  main()
