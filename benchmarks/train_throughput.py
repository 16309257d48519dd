"""Training examples/s and achieved GFLOP/s of a preset next to this machine's matmul GFLOP/s, as JSON.

  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small
Training FLOPs per example are taken as 3 x the profiler's forward FLOPs (forward + backward, the usual
estimate). Inputs are a constant in-memory batch with full-length sequences, so only the model step is
timed (the input pipeline has its own benchmark). Peak: float32 matmuls of --matmul_size squared.
"""
import json
import os
import time

import tensorflow as tf
from absl import app, flags

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.accounting import forward_flops, full_length_features
from hemix_tf.model.config import preset
from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels

flags.DEFINE_string("preset", "cpu-small", "Model preset.")
flags.DEFINE_integer("batch_size", 256, "Training batch size (the paper's).")
flags.DEFINE_integer("steps", 40, "Timed steps (after 5 warm-up steps).")
flags.DEFINE_integer("matmul_size", 2048, "Square matmul size for the peak measurement.")
FLAGS = flags.FLAGS


def matmul_gflops(n: int, repeats: int = 20) -> float:
  a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
  f = tf.function(lambda: tf.matmul(a, b))
  f().numpy()
  start = time.perf_counter()
  for _ in range(repeats):
    out = f()
  out.numpy()
  return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main(argv):
  del argv
  fc = load_feature_config("synthetic-lbs")
  config = preset(FLAGS.preset)
  model = build_and_compile(fc, config, hashing_preprocessor(fc, config).table_sizes)
  flops = forward_flops(model, fc)
  batch = with_labels(full_length_features(fc, FLAGS.batch_size), config.tasks)
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm up
  start = time.perf_counter()
  model.fit(ds, steps_per_epoch=FLAGS.steps, epochs=1, verbose=0)
  seconds = time.perf_counter() - start
  examples_per_s = FLAGS.steps * FLAGS.batch_size / seconds
  achieved = 3 * flops * examples_per_s / 1e9
  peak = matmul_gflops(FLAGS.matmul_size)
  print(json.dumps({"benchmark": "train_throughput", "preset": FLAGS.preset, "cpu_count": os.cpu_count(),
                    "batch_size": FLAGS.batch_size, "steps": FLAGS.steps,
                    "examples_per_s": round(examples_per_s, 1),
                    "forward_gflops_per_example": round(flops / 1e9, 5),
                    "achieved_train_gflops_per_s": round(achieved, 2),
                    "matmul_peak_gflops_per_s": round(peak, 1),
                    "fraction_of_peak": round(achieved / peak, 4)}, indent=2))


if __name__ == "__main__":
  app.run(main)
