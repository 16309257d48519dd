"""The Transform component's analysis (preprocessing_fn over the train examples), as JSON: seconds,
examples/s and a checksum of every vocabulary; with --baseline_revision, the same analysis with that git
revision's preprocessing_fn, alternating in the same run, and whether both wrote the same vocabularies.

  .venv/bin/python benchmarks/transform_analysis.py --impressions=100000 --baseline_revision=1946e7a

The examples come from `hemix-data --dataset=synthetic` and `hemix-sequence-job` (once, shared by both
sides); the analysis is TF Transform's AnalyzeDataset on Beam's FnApiRunner, as the Transform component
runs it, reading the curated schema `schemas/<config>/examples.pbtxt`. Each measurement is its own
process. Progress goes to stderr.
"""
import this_tree  # (first: this checkout's hemix_tf, not the editable install's)
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_integer("impressions", 100_000, "Synthetic impressions to generate.")
flags.DEFINE_string("work_dir", None, "Where the logs and examples go (default: a temporary directory).")
flags.DEFINE_string("baseline_revision", None, "Also measure this git revision's preprocessing_fn.")
flags.DEFINE_integer("repeats", 1, "Measurements per side (alternating with the baseline's).")
flags.DEFINE_string("measure", None, "Internal: measure the train examples under this directory and print JSON.")
flags.DEFINE_string("code_tree", None, "Internal, with --measure: the checkout whose hemix_tf to measure.")
FLAGS = flags.FLAGS

BIN = Path(sys.executable).parent
CONFIG = "synthetic-lbs"
TIME_GAP_BUCKETS, MIN_COUNT = 16, 2  # the pipeline's defaults


def measure(examples: str, code_tree: str) -> dict:
  """One analysis with `code_tree`'s preprocessing_fn."""
  sys.path.insert(0, code_tree)  # before any hemix_tf import
  import apache_beam as beam
  import tensorflow as tf
  import tensorflow_transform.beam as tft_beam
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  from tfx_bsl.public import tfxio

  from hemix_tf.data.preprocessing import preprocessing_fn
  from hemix_tf.data.schemas import SCHEMA_ROOT
  from pipelines.local_runner import LOCAL_OPTIONS

  schema = text_format.Parse((SCHEMA_ROOT / CONFIG / "examples.pbtxt").read_text(), schema_pb2.Schema())
  files = tf.io.gfile.glob(f"{examples}/train/*.tfrecord.gz")
  source = tfxio.TFExampleRecord(file_pattern=f"{examples}/train/*.tfrecord.gz", schema=schema)
  count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
  custom = {"feature_config": CONFIG, "time_gap_buckets": TIME_GAP_BUCKETS, "vocabulary_min_count": MIN_COUNT}
  out = tempfile.mkdtemp(prefix="transform-analysis-")
  start = time.perf_counter()
  with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(list(LOCAL_OPTIONS))) as p, \
      tft_beam.Context(temp_dir=os.path.join(out, "tmp")):
    transform_fn = (p | source.BeamSource(), source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(
        lambda inputs: preprocessing_fn(inputs, custom))
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(out, "transform_fn"))
  seconds = time.perf_counter() - start
  assets = Path(out) / "transform_fn" / "transform_fn" / "assets"
  return {"seconds": round(seconds, 1), "examples": count, "examples_per_s": round(count / seconds, 1),
          "vocabularies": {f.name: hashlib.md5(f.read_bytes()).hexdigest()[:12] for f in sorted(assets.iterdir())}}


def run_measurement(tree: str, examples: Path) -> dict:
  """This script's measurement of `tree`'s preprocessing_fn, in a new process."""
  out = subprocess.run([sys.executable, __file__, f"--measure={examples}", f"--code_tree={tree}"],
                       check=True, capture_output=True, text=True).stdout
  return json.loads(out[out.index("{"):])


def main(argv):
  del argv
  if FLAGS.measure:
    print(json.dumps(measure(FLAGS.measure, FLAGS.code_tree)))
    return
  work = Path(FLAGS.work_dir or tempfile.mkdtemp(prefix="transform-analysis-"))
  raw, examples = work / "raw", work / "examples"
  if not (examples / "job_summary.json").exists():
    print(f"generating {FLAGS.impressions:,} impressions and their examples in {work}", file=sys.stderr, flush=True)
    subprocess.run([str(BIN / "hemix-data"), "--dataset=synthetic", f"--num_impressions={FLAGS.impressions}",
                    f"--output_dir={raw}"], check=True, capture_output=True)
    subprocess.run([str(BIN / "hemix-sequence-job"), f"--dataset_dir={raw}", f"--output_dir={examples}"],
                   check=True, capture_output=True)
  with this_tree.code_trees(FLAGS.baseline_revision) as sides:
    runs = {side: [] for side in sides}
    for i in range(FLAGS.repeats):
      for side, tree in sides.items():
        runs[side].append(run_measurement(tree, examples))
        print(f"{side} {i + 1}/{FLAGS.repeats}: {runs[side][-1]['seconds']} s", file=sys.stderr, flush=True)
  result = {side: {"seconds": [r["seconds"] for r in rs],
                   "examples_per_s_median": statistics.median(r["examples_per_s"] for r in rs),
                   "examples": rs[0]["examples"], "vocabularies": rs[0]["vocabularies"]} for side, rs in runs.items()}
  if FLAGS.baseline_revision:
    result["baseline"]["revision"] = FLAGS.baseline_revision
    result["speedup_of_median"] = round(result["current"]["examples_per_s_median"] /
                                        result["baseline"]["examples_per_s_median"], 2)
    result["same_vocabularies"] = result["current"]["vocabularies"] == result["baseline"]["vocabularies"]
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
