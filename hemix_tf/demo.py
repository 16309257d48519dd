"""`make demo`: the main job end to end on the embedded default data (the synthetic AMAP-like logs).

Today it builds the raw-log dataset with the synthetic generator and the point-in-time training
examples with the Beam sequence job; the TFX pipeline (Trainer, Evaluator, Pusher) joins it when
it exists.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags, logging

from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest
from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", "runs/demo", "Where the demo writes everything.")
# --num_impressions (default 100,000) and --seed come from hemix_tf.data.cli.


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Beam's worker chatter; the steps below print progress
  run_dir = Path(FLAGS.run_dir).resolve()
  raw = run_dir / "raw"
  if (raw / "manifest.json").exists():
    manifest = read_manifest(raw)
    print(f"[1/2] raw logs already at {raw} (delete the directory to regenerate)")
  else:
    print(f"[1/2] generating {FLAGS.num_impressions:,} synthetic AMAP-like impressions into {raw}")
    manifest = build("synthetic", str(raw), num_impressions=FLAGS.num_impressions, seed=FLAGS.seed)
  print(json.dumps({k: manifest[k] for k in ("impressions", "events", "impression_users",
                                            "eval_start_timestamp", "eval_impressions")}, indent=2))
  print(f"raw logs (contract Parquet): {raw}/impressions, {raw}/events")
  examples = run_dir / "examples"
  print(f"[2/2] Beam sequence job (DirectRunner, all cores): point-in-time sequences -> {examples}")
  summary = run_sequence_job(SequenceJobConfig(
      impressions=str(raw / "impressions"), events=str(raw / "events"), output_dir=str(examples),
      eval_start_timestamp=manifest["eval_start_timestamp"], feature_config=manifest["feature_config"]))
  print(json.dumps(summary["counters"], indent=2))
  print(f"train examples: {summary['outputs']['train']}")
  print(f"eval examples:  {summary['outputs']['eval']}")
  print(f"job summary:    {examples / 'job_summary.json'}")


if __name__ == "__main__":
  app.run(main)
