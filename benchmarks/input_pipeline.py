"""Examples/s of the tf.data input alone (read gzip TFRecords, shuffle, batch, parse with ragged
sequences, hash the ids, pad the lists to fixed shapes, prefetch: the harness's and the Trainer's path)
next to the training step's examples/s on the same batches, as JSON.

  .venv/bin/python benchmarks/input_pipeline.py --examples=runs/demo/examples/train/*
  .venv/bin/python benchmarks/input_pipeline.py \
      --examples='runs/experiments/synthetic/data/examples/train/*' --batches=400   # the 1M logs
If the input alone is much faster than input + training, the input is not the bottleneck.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import time

from absl import app, flags

from hemix_tf.data.examples import make_dataset
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels

flags.DEFINE_string("examples", "runs/demo/examples/train/*", "TFRecord pattern (the sequence job's).")
flags.DEFINE_string("feature_config", "synthetic-lbs", "Feature config of the examples.")
flags.DEFINE_string("preset", "cpu-small", "Model preset for the training step.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_integer("batches", 100, "Timed batches.")
flags.DEFINE_enum("xla", "interaction", ["off", "step", "interaction"], "XLA mode of the training step "
                  "(build_and_compile; the Trainer's and the harness's default).")
FLAGS = flags.FLAGS


def timed(iterator, n: int) -> float:
  next(iterator)  # warm-up: graph tracing, file opening
  start = time.perf_counter()
  for _ in range(n):
    next(iterator)
  return time.perf_counter() - start


def main(argv):
  del argv
  fc = load_feature_config(FLAGS.feature_config)
  config = preset(FLAGS.preset)
  preprocessor = hashing_preprocessor(fc, config)
  ds = make_dataset(FLAGS.examples, preprocessor.raw_spec, FLAGS.batch_size, shuffle_buffer=10_000,
                    repeat=True, seed=0, preprocess=preprocessor, pad_for=fc)
  input_seconds = timed(iter(ds), FLAGS.batches)
  model = build_and_compile(fc, config, preprocessor.table_sizes, xla=FLAGS.xla)
  train = ds.map(lambda f: with_labels(f, config.tasks))
  model.fit(train, steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm up
  start = time.perf_counter()
  model.fit(train, steps_per_epoch=FLAGS.batches, epochs=1, verbose=0)
  train_seconds = time.perf_counter() - start
  n = FLAGS.batches * FLAGS.batch_size
  print(json.dumps({"benchmark": "input_pipeline", "cpu_count": os.cpu_count(), "preset": FLAGS.preset,
                    "xla": FLAGS.xla, "batch_size": FLAGS.batch_size, "batches": FLAGS.batches,
                    "input_only_examples_per_s": round(n / input_seconds),
                    "input_plus_training_examples_per_s": round(n / train_seconds),
                    "input_over_training": round(train_seconds / input_seconds, 2)}, indent=2))


if __name__ == "__main__":
  app.run(main)
