"""The Evaluator's TFMA run (the pipeline's eval config, its model, its eval examples), as JSON: seconds,
examples/s and the click AUC / GAUC; with --baseline_revision, the same run with that git revision's
pipeline code, alternating in the same run, and whether both computed the same metrics.

  make demo RUN_DIR=/tmp/demo
  .venv/bin/python benchmarks/evaluation.py --run_dir=/tmp/demo --baseline_revision=2b7d6f9 --repeats=3
  .venv/bin/python benchmarks/evaluation.py --run_dir=<pipeline_scale.py's --work_dir> --baseline_revision=...

Each side evaluates as its Evaluator component does in a local run: `tfma.run_model_analysis` on Beam's
FnApiRunner (in memory, or that revision's `evaluator_workers` processes) with the eval config of
`pipelines/pipeline.py`, and the schema that revision's pipeline gives the
Evaluator (the columns of `evaluated_columns` where it has them; none before). The model and the schema
are the run's last Trainer and SchemaGen outputs. Each measurement is its own process; progress goes
to stderr.
"""
import this_tree  # (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("run_dir", None, "A finished pipeline run: `make demo RUN_DIR=...` or pipeline_scale's "
                    "--work_dir (examples/eval/, and the run's SchemaGen and Trainer outputs below it).")
flags.DEFINE_string("baseline_revision", None, "Also measure this git revision's Evaluator.")
flags.DEFINE_integer("repeats", 1, "Measurements per side (alternating with the baseline's).")
flags.DEFINE_string("code_tree", None, "Internal: measure with this checkout's pipeline code and print JSON.")
FLAGS = flags.FLAGS


def newest(pattern: str, run_dir: Path) -> Path:
  """The newest path under `run_dir` matching `pattern` at any depth."""
  found = sorted(run_dir.rglob(pattern), key=lambda p: p.stat().st_mtime)
  if not found:
    raise SystemExit(f"error: {run_dir} has no {pattern}: give --run_dir a finished run (make demo RUN_DIR=...)")
  return found[-1]


def measure(run_dir: Path, code_tree: str) -> dict:
  """One evaluation with `code_tree`'s pipeline code."""
  sys.path.insert(0, code_tree)  # before any hemix_tf / pipelines import
  import tensorflow as tf
  import tensorflow_model_analysis as tfma
  from apache_beam.options.pipeline_options import PipelineOptions
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2

  from pipelines import local_runner, pipeline

  cfg = pipeline.PipelineConfig(examples_dir="unused", pipeline_root="unused", serving_dir="unused",
                                metadata_path="unused")
  config = pipeline.eval_config(cfg)
  for spec in config.metrics_specs:  # no baseline model here: value thresholds only
    for metric in spec.metrics:
      for threshold in metric.per_slice_thresholds:
        threshold.threshold.ClearField("change_threshold")
  schema = None
  if hasattr(pipeline, "evaluated_columns"):
    full = text_format.Parse(newest("SchemaGen/schema/*/schema.pbtxt", run_dir).read_text(),
                             schema_pb2.Schema())
    schema = schema_pb2.Schema()
    schema.feature.extend(f for f in full.feature if f.name in pipeline.evaluated_columns(config))
  options = list(local_runner.LOCAL_OPTIONS)
  workers = getattr(cfg, "evaluator_workers", 1)  # a revision before them evaluated in memory
  if workers != 1:
    local_runner.without_timed_flush()
    options += local_runner.multi_processing_options(workers)
  model = newest("Trainer/model/*/Format-Serving", run_dir)
  files = tf.io.gfile.glob(f"{run_dir}/examples/eval/*")
  count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
  out = tempfile.mkdtemp(prefix="evaluation-")
  start = time.perf_counter()
  tfma.run_model_analysis(
      eval_shared_model=tfma.default_eval_shared_model(eval_saved_model_path=str(model), eval_config=config),
      eval_config=config, data_location=f"{run_dir}/examples/eval/*", file_format="tfrecords", schema=schema,
      output_path=out, pipeline_options=PipelineOptions(options))
  seconds = time.perf_counter() - start
  overall = next(m for m in tfma.load_metrics(out) if not m.slice_key.single_slice_keys)
  metrics = {f"{kv.key.output_name}/{kv.key.name}": round(kv.value.double_value.value, 6)
             for kv in overall.metric_keys_and_values
             if kv.key.output_name == "click" and kv.key.name in ("auc", "gauc", "example_count", "binary_crossentropy")}
  return {"seconds": round(seconds, 1), "examples": count, "examples_per_s": round(count / seconds, 1),
          "files": len(files), "beam_options": options,
          "decoded_columns": None if schema is None else sorted(f.name for f in schema.feature),
          "metrics": metrics}


def run_measurement(tree: str, run_dir: Path) -> dict:
  """This script's measurement with `tree`'s pipeline code, in a new process (and in its Beam worker
  processes, which import the metrics module: PYTHONPATH, and the working directory, which a worker
  started with `python -m` puts first on its path)."""
  out = subprocess.run([sys.executable, __file__, f"--run_dir={run_dir}", f"--code_tree={tree}"], cwd=tree,
                       check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": tree}).stdout
  return json.loads(out[out.index("{"):])


def main(argv):
  del argv
  if not FLAGS.run_dir:
    raise SystemExit("error: --run_dir is required (a finished run: make demo RUN_DIR=...)")
  run_dir = Path(FLAGS.run_dir).resolve()
  if FLAGS.code_tree:
    print(json.dumps(measure(run_dir, FLAGS.code_tree)))
    return
  with this_tree.code_trees(FLAGS.baseline_revision) as sides:
    runs = {side: [] for side in sides}
    for i in range(FLAGS.repeats):
      for side, tree in sides.items():
        runs[side].append(run_measurement(tree, run_dir))
        print(f"{side} {i + 1}/{FLAGS.repeats}: {runs[side][-1]['seconds']} s", file=sys.stderr, flush=True)
  result = {side: {"seconds": [r["seconds"] for r in rs],
                   "examples_per_s_median": statistics.median(r["examples_per_s"] for r in rs),
                   "examples": rs[0]["examples"], "files": rs[0].get("files"),
                   "beam_options": rs[0].get("beam_options"), "decoded_columns": rs[0]["decoded_columns"],
                   "metrics": rs[0]["metrics"]} for side, rs in runs.items()}
  if FLAGS.baseline_revision:
    result["baseline"]["revision"] = FLAGS.baseline_revision
    result["speedup_of_median"] = round(result["current"]["examples_per_s_median"] /
                                        result["baseline"]["examples_per_s_median"], 2)
    result["same_metrics"] = result["current"]["metrics"] == result["baseline"]["metrics"]
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
