"""The cost of bad rows in the sequence job: a clean CSV against the same CSV with one bad row per chunk.

  .venv/bin/python benchmarks/bad_rows.py [--impressions=300000] [--every=65536] [--work_dir=DIR]

Synthetic logs whose events are written as CSV (the generator writes Parquet); a copy has one row in
every `--every` (the job's chunk size by default, so every chunk holds one) with a timestamp that is not
a number. The job runs on each, a fresh process each, alternating clean / bad `--repeats` times; printed
as JSON: seconds of each run, the dead letters, and the bad run's time over the clean one's (issue 40:
at most 1.5).
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from absl import app, flags

flags.DEFINE_integer("impressions", 300_000, "Synthetic impressions (about 10 events each).")
flags.DEFINE_integer("every", 65_536, "One bad row in this many events.")
flags.DEFINE_integer("repeats", 2, "Runs of each input, alternating.")
flags.DEFINE_string("work_dir", None, "Where the data goes (default: a temporary directory).")
FLAGS = flags.FLAGS
BIN = Path(sys.executable).parent


def write_inputs(work: Path) -> dict[str, Path]:
  """{clean, bad}: dataset directories sharing the impressions, events as CSV."""
  from hemix_tf.data.cli import build
  from hemix_tf.data.contract import LogKind
  from hemix_tf.data.dataset import read_manifest
  from hemix_tf.data.feature_config import load_feature_config
  from hemix_tf.data.io import read_log
  raw = work / "raw"
  if not (raw / "manifest.json").exists():
    build("synthetic", str(raw), num_impressions=FLAGS.impressions)
  config = load_feature_config(read_manifest(raw)["feature_config"])
  events = read_log(raw / "events", LogKind.EVENTS, config)
  dirs = {}
  for name in ("clean", "bad"):
    target = work / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(raw / "impressions", target / "impressions")
    shutil.copy(raw / "manifest.json", target / "manifest.json")
    (target / "events").mkdir()
    table = events
    if name == "bad":
      ts = table["timestamp"].cast(pa.string()).to_pylist()
      for i in range(FLAGS.every - 1, len(ts), FLAGS.every):
        ts[i] = "not-a-time"
      table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", pa.array(ts))
    pacsv.write_csv(table, target / "events" / "part-00000.csv")
    dirs[name] = target
  return dirs


def run_job(dataset_dir: Path, out: Path) -> tuple[float, dict]:
  start = time.perf_counter()
  subprocess.run([str(BIN / "hemix-sequence-job"), f"--dataset_dir={dataset_dir}", f"--output_dir={out}",
                  "--overwrite"], check=True, capture_output=True)
  return time.perf_counter() - start, json.loads((out / "job_summary.json").read_text())["counters"]


def main(argv):
  del argv
  work = Path(FLAGS.work_dir or tempfile.mkdtemp(prefix="bad-rows-"))
  dirs = write_inputs(work)
  seconds = {"clean": [], "bad": []}
  rejected = {}
  for _ in range(FLAGS.repeats):
    for name, path in dirs.items():
      took, counters = run_job(path, work / f"out-{name}")
      seconds[name].append(round(took, 1))
      rejected[name] = counters["rejected_rows"]
      print(f"{name}: {took:.1f} s, {counters['rejected_rows']} rejected", file=sys.stderr, flush=True)
  ratio = min(seconds["bad"]) / min(seconds["clean"])
  print(json.dumps({"benchmark": "bad_rows", "impressions": FLAGS.impressions, "one_bad_row_in": FLAGS.every,
                    "seconds": seconds, "rejected_rows": rejected, "bad_over_clean": round(ratio, 2),
                    "within_1_5x": ratio <= 1.5}, indent=2))


if __name__ == "__main__":
  app.run(main)
