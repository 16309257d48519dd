"""The harness's canonical order of the examples (`hemix_tf.data.examples.order_canonically`), as JSON:
seconds and peak memory of ordering one split's example files; with --baseline_revision, the same files
ordered by that git revision's function in the same run, and whether both wrote the same records in the
same order.

  .venv/bin/python benchmarks/canonical_order.py --examples='runs/experiments/synthetic/data/examples/train/*' \
      --baseline_revision=0fcffda

Each measurement orders a fresh copy of the files in its own process (peak RSS: that process's).
Progress goes to stderr.
"""
import this_tree  # (first: this checkout's hemix_tf, not the editable install's)
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("examples", None, "A glob of gzip TFRecord example files (one split's).", required=True)
flags.DEFINE_string("baseline_revision", None, "Also measure this git revision's order_canonically.")
flags.DEFINE_string("measure", None, "Internal: order the files under this directory and print JSON.")
flags.DEFINE_string("code_tree", None, "Internal, with --measure: the checkout whose hemix_tf to measure.")
FLAGS = flags.FLAGS


def measure(directory: str, code_tree: str) -> dict:
  """Orders every file under `directory` with `code_tree`'s function; seconds, peak RSS, a digest."""
  sys.path.insert(0, code_tree)  # before any hemix_tf import
  import tensorflow as tf

  from hemix_tf.data.examples import order_canonically

  start = time.perf_counter()
  order_canonically(f"{directory}/*")
  seconds = time.perf_counter() - start
  digest, count = hashlib.sha256(), 0
  for path in sorted(Path(directory).iterdir()):
    for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
      digest.update(record.numpy())
      count += 1
  return {"seconds": round(seconds, 1), "examples": count,
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "records_sha256": digest.hexdigest()[:16]}


def run_measurement(tree: str, files: list[str]) -> dict:
  """This script's measurement of `tree`'s function on a copy of `files`, in a new process."""
  with tempfile.TemporaryDirectory(prefix="canonical-order-") as copy:
    for f in files:
      shutil.copy(f, copy)
    out = subprocess.run([sys.executable, __file__, f"--examples={FLAGS.examples}", f"--measure={copy}",
                          f"--code_tree={tree}"], check=True, capture_output=True, text=True).stdout
  return json.loads(out[out.index("{"):])


def main(argv):
  del argv
  if FLAGS.measure:
    print(json.dumps(measure(FLAGS.measure, FLAGS.code_tree)))
    return
  import glob
  files = sorted(glob.glob(FLAGS.examples))
  if not files:
    raise SystemExit(f"canonical_order: no file matches {FLAGS.examples}")
  result = {}
  with this_tree.code_trees(FLAGS.baseline_revision) as sides:
    for side, tree in sides.items():
      print(f"{side}: ordering {len(files)} files", file=sys.stderr, flush=True)
      result[side] = run_measurement(tree, files)
      print(f"{side}: {result[side]['seconds']} s, {result[side]['peak_rss_mb']} MB", file=sys.stderr, flush=True)
  if FLAGS.baseline_revision:
    result["baseline"]["revision"] = FLAGS.baseline_revision
    result["peak_rss_ratio"] = round(result["current"]["peak_rss_mb"] / result["baseline"]["peak_rss_mb"], 2)
    result["same_records_in_the_same_order"] = (result["current"]["records_sha256"] ==
                                                result["baseline"]["records_sha256"])
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
