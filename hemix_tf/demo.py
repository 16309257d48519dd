"""`make demo`: the main job end to end on the embedded default data (the synthetic AMAP-like logs).

Today it builds the raw-log dataset with the synthetic generator and the point-in-time training
examples with the Beam sequence job; it grows with the pipeline (Trainer, Evaluator, Pusher).
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", "runs/demo", "Where the demo writes everything.")
flags.DEFINE_integer("num_impressions", 100_000, "Synthetic impressions to generate.")


def main(argv):
  del argv
  run_dir = Path(FLAGS.run_dir).resolve()
  raw = run_dir / "raw"
  if (raw / "manifest.json").exists():
    manifest = read_manifest(raw)
    print(f"[1/1] raw logs already at {raw} (delete the directory to regenerate)")
  else:
    print(f"[1/1] generating {FLAGS.num_impressions:,} synthetic AMAP-like impressions into {raw}")
    manifest = build("synthetic", str(raw), num_impressions=FLAGS.num_impressions)
  print(json.dumps({k: manifest[k] for k in ("impressions", "events", "impression_users",
                                            "eval_start_timestamp", "eval_impressions")}, indent=2))
  print(f"raw logs (contract Parquet): {raw}/impressions, {raw}/events")


if __name__ == "__main__":
  app.run(main)
