"""Throughput and peak memory of the Beam sequence job and of the DuckDB SQL reference, as JSON.

  .venv/bin/python benchmarks/sequence_job.py --datasets=ml-100k,amazon-grocery,synthetic-1m
  .venv/bin/python benchmarks/sequence_job.py --datasets=heavy-user      # one user, 2M events
  .venv/bin/python benchmarks/sequence_job.py --datasets=synthetic-1m,synthetic-10m --engines=beam --waves=1,8

The Beam job runs on its default local runner (in memory), once per `--waves` value on the same input
(`synthetic-<N>k|m`: N thousand / million synthetic impressions, ~10 events each). Each measured run is
a fresh process; its peak RSS is ru_maxrss of that process ("main") and of its largest child
("worker": the Beam SDK worker processes, when the runner has any). With --baseline_revision every Beam
run is also made with that git revision's job on the same input, alternating:

  .venv/bin/python benchmarks/sequence_job.py --datasets=synthetic-1m --engines=beam --waves=8 --baseline_revision=HEAD~1
"""
import this_tree  # (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
flags.DEFINE_list("datasets", ["ml-100k", "amazon-grocery", "synthetic-1m"], "What to measure.")
flags.DEFINE_list("engines", ["beam", "duckdb"], "beam and/or duckdb.")
flags.DEFINE_string("work_dir", None, "Keep the generated data here (default: a temp dir).")
flags.DEFINE_list("waves", ["1"], "The Beam job's --waves values, each a run on the same input.")
flags.DEFINE_string("baseline_revision", None, "Also run each Beam measurement with this git revision's job.")
flags.DEFINE_string("single", None, "Internal: engine:dataset_dir:config:waves to run in this process.")
FLAGS = flags.FLAGS


def prepare(name: str, work: Path) -> tuple[Path, str]:
  from hemix_tf.data.cli import build
  target = work / name
  config = {"ml-100k": "movielens", "amazon-grocery": "amazon-grocery"}.get(name, "synthetic-lbs")
  if (target / "manifest.json").exists():
    return target, config
  if name in ("ml-100k", "amazon-grocery"):
    build(name, str(target), source_dir=str(SHARED / name))
  elif match := re.fullmatch(r"synthetic-(\d+)([km])", name):
    build("synthetic", str(target), num_impressions=int(match.group(1)) * {"k": 1_000, "m": 1_000_000}[match.group(2)])
  elif name == "heavy-user":
    write_heavy_user(target, events=2_000_000, impressions=2_000)
  return target, config


def write_heavy_user(target: Path, events: int, impressions: int) -> None:
  """One user with `events` behaviour events over ~200 days and `impressions` on the last days."""
  import pyarrow as pa
  from hemix_tf.data.contract import LogKind, contract_schema
  from hemix_tf.data.dataset import write_dataset
  from hemix_tf.data.feature_config import load_feature_config
  from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator
  config = load_feature_config("synthetic-lbs")
  imp, _ = next(SyntheticGenerator(SyntheticConfig(num_impressions=impressions), config).blocks(10_000))
  imp = imp.set_column(imp.column_names.index("user_id"), "user_id", pa.array(np.zeros(imp.num_rows, np.int64)))
  imp = imp.set_column(0, "request_id", pa.array([f"h-{i}" for i in range(imp.num_rows)]))
  rng = np.random.default_rng(0)
  ts = np.sort(rng.integers(imp["timestamp"].to_numpy().min() - 200 * 86400,
                            imp["timestamp"].to_numpy().max(), events))
  ev = pa.table({"user_id": np.zeros(events, np.int64), "item_id": rng.integers(0, 20_000, events),
                 "timestamp": ts, "behavior": rng.choice(["click", "navigate", "order"], events),
                 "category": rng.integers(0, 40, events), "cell": rng.integers(0, 400, events)})
  write_dataset(target, config, [(imp, ev.cast(contract_schema(LogKind.EVENTS, config)))])


def run_single(engine: str, dataset_dir: Path, config_name: str, waves: int) -> dict:
  from hemix_tf.data.dataset import read_manifest
  manifest = read_manifest(dataset_dir)
  start = time.perf_counter()
  if engine == "beam":
    from pipelines.sequence_job import SequenceJobConfig, run
    with tempfile.TemporaryDirectory() as out:
      run(SequenceJobConfig(str(dataset_dir / "impressions"), str(dataset_dir / "events"), out,
                            manifest["eval_start_timestamp"], config_name, waves=waves))
  else:
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_sequences import reference_tables
    from hemix_tf.data.contract import LogKind
    from hemix_tf.data.feature_config import load_feature_config
    from hemix_tf.data.io import read_log
    config = load_feature_config(config_name)
    partitions = max(1, manifest["events"] // 200_000)  # bounds the join's memory on large logs
    rows = sum(t.num_rows for t in reference_tables(
        read_log(dataset_dir / "impressions", LogKind.IMPRESSIONS, config),
        read_log(dataset_dir / "events", LogKind.EVENTS, config), config, partitions))
    assert rows > 0
  seconds = time.perf_counter() - start
  return {"engine": engine, "waves": waves if engine == "beam" else None, "impressions": manifest["impressions"],
          "events": manifest["events"], "seconds": round(seconds, 2),
          "impressions_per_s": round(manifest["impressions"] / seconds),
          "events_per_s": round(manifest["events"] / seconds),
          "main_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "worker_peak_rss_mb": (round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
                                 if engine == "beam" else None)}


def main(argv):
  del argv
  if FLAGS.single:
    engine, path, config, waves = FLAGS.single.split(":")
    print(json.dumps(run_single(engine, Path(path), config, int(waves))))
    return
  tmp = None if FLAGS.work_dir else tempfile.TemporaryDirectory()
  work = Path(FLAGS.work_dir or tmp.name)
  results = []
  with this_tree.code_trees(FLAGS.baseline_revision) as sides:
    for name in FLAGS.datasets:
      dataset_dir, config = prepare(name, work)
      engines = ["beam"] if name == "heavy-user" else FLAGS.engines
      runs = [(engine, int(w)) for engine in engines for w in (FLAGS.waves if engine == "beam" else [1])]
      for engine, waves in runs:
        for side, tree in sides.items():
          if engine != "beam" and side != "current":
            continue
          script = os.path.join(tree, "benchmarks", "sequence_job.py")
          proc = subprocess.run([sys.executable, script, f"--single={engine}:{dataset_dir}:{config}:{waves}"],
                                check=True, text=True, stdout=subprocess.PIPE)
          revision = FLAGS.baseline_revision if side == "baseline" else "this tree"
          results.append({"dataset": name, "code": revision, **json.loads(proc.stdout.strip().splitlines()[-1])})
          print(json.dumps(results[-1]), file=sys.stderr, flush=True)
  from pipelines.sequence_job import DEFAULT_OPTIONS
  print(json.dumps({"benchmark": "sequence_job", "cpu_count": os.cpu_count(),
                    "beam_runner": " ".join(DEFAULT_OPTIONS),
                    "results": results}, indent=2))


if __name__ == "__main__":
  app.run(main)
