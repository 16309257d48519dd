"""Throughput and peak memory of the synthetic generator writing Parquet, printed as JSON.

  .venv/bin/python benchmarks/data_gen.py --sizes=1000000        # the issue's 1M figure
  .venv/bin/python benchmarks/data_gen.py --sizes=100000,1000000,10000000

Each size runs in a fresh process so its peak RSS (ru_maxrss) is its own.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_list("sizes", ["1000000"], "Impression counts to generate.")
flags.DEFINE_integer("single", 0, "Internal: run one size in this process.")
FLAGS = flags.FLAGS


def run_one(n: int) -> dict:
  from hemix_tf.data.cli import build
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    manifest = build("synthetic", os.path.join(tmp, "d"), num_impressions=n)
    seconds = time.perf_counter() - start
  return {"impressions": manifest["impressions"], "events": manifest["events"],
          "seconds": round(seconds, 2), "impressions_per_s": round(n / seconds),
          "events_per_s": round(manifest["events"] / seconds),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main(argv):
  del argv
  if FLAGS.single:
    print(json.dumps(run_one(FLAGS.single)))
    return
  results = []
  for n in map(int, FLAGS.sizes):
    out = subprocess.run([sys.executable, __file__, f"--single={n}"], check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    results.append(json.loads(out.strip().splitlines()[-1]))
  print(json.dumps({"benchmark": "synthetic_data_gen", "cpu_count": os.cpu_count(),
                    "results": results}, indent=2))


if __name__ == "__main__":
  app.run(main)
