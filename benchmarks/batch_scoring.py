"""Examples/s of the Beam batch-scoring job (hemix-batch-score) on the DirectRunner, as JSON.

  .venv/bin/python benchmarks/batch_scoring.py            # the demo's 100,000 examples and pushed model
  .venv/bin/python benchmarks/batch_scoring.py --beam_mode=multi_processing
Run `make demo` first (it makes runs/demo/examples and runs/demo/serving/<version>).
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import resource
import tempfile
import time

import tensorflow as tf
from absl import app, flags

from pipelines.batch_scoring import BatchScoringConfig, run

flags.DEFINE_string("examples", "runs/demo/examples/*/part-*.tfrecord.gz", "tf.Example TFRecords to score.")
flags.DEFINE_string("saved_model", None, "SavedModel (default: the newest version in runs/demo/serving).")
flags.DEFINE_enum("beam_mode", "in_memory", ["in_memory", "multi_processing"], "DirectRunner mode.")
flags.DEFINE_integer("batch_size", 512, "Examples per inference call.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  model = FLAGS.saved_model or max(tf.io.gfile.glob("runs/demo/serving/*"), key=lambda p: int(p.rsplit("/", 1)[1]))
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    summary = run(BatchScoringConfig(saved_model=model, output_dir=out, examples=FLAGS.examples,
                                     batch_size=FLAGS.batch_size),
                  ["--runner=DirectRunner", f"--direct_running_mode={FLAGS.beam_mode}", "--direct_num_workers=0"])
    seconds = time.perf_counter() - start
  counters = summary["counters"]
  print(json.dumps({"benchmark": "batch_scoring", "cpu_count": os.cpu_count(), "beam_mode": FLAGS.beam_mode,
                    "saved_model": model, "batch_size": FLAGS.batch_size, **counters,
                    "seconds": round(seconds, 1), "examples_per_s": round(counters["scored"] / seconds, 1),
                    "main_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
                   indent=2))


if __name__ == "__main__":
  app.run(main)
