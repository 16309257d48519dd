"""`make demo`: the main job end to end on the embedded default data (the synthetic AMAP-like logs).

Today: the synthetic raw logs, the Beam sequence job's point-in-time examples, and a cpu-small HeMix
trained, evaluated (AUC / LogLoss next to the oracle AUC) and exported as a SavedModel. The TFX
pipeline (Trainer, Evaluator, Pusher) replaces step 3 when it exists.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags, logging

from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest
from hemix_tf.trainer import TrainerConfig, train_and_evaluate
from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", "runs/demo", "Where the demo writes everything.")
# --num_impressions (default 100,000) and --seed come from hemix_tf.data.cli.
flags.DEFINE_integer("train_steps", 400, "Training steps of 256 examples.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Beam's worker chatter; the steps below print progress
  run_dir = Path(FLAGS.run_dir).resolve()
  raw = run_dir / "raw"
  if (raw / "manifest.json").exists():
    manifest = read_manifest(raw)
    print(f"[1/3] raw logs already at {raw} (delete the directory to regenerate)")
  else:
    print(f"[1/3] generating {FLAGS.num_impressions:,} synthetic AMAP-like impressions into {raw}")
    manifest = build("synthetic", str(raw), num_impressions=FLAGS.num_impressions, seed=FLAGS.seed)
  print(json.dumps({k: manifest[k] for k in ("impressions", "events", "impression_users",
                                            "eval_start_timestamp", "eval_impressions")}, indent=2))
  print(f"raw logs (contract Parquet): {raw}/impressions, {raw}/events")
  examples = run_dir / "examples"
  print(f"[2/3] Beam sequence job (DirectRunner, all cores): point-in-time sequences -> {examples}")
  summary = run_sequence_job(SequenceJobConfig(
      impressions=str(raw / "impressions"), events=str(raw / "events"), output_dir=str(examples),
      eval_start_timestamp=manifest["eval_start_timestamp"], feature_config=manifest["feature_config"]))
  print(json.dumps(summary["counters"], indent=2))
  print(f"train examples: {summary['outputs']['train']}")
  print(f"eval examples:  {summary['outputs']['eval']}")
  print(f"job summary:    {examples / 'job_summary.json'}")
  model_dir = run_dir / "model"
  print(f"[3/3] training HeMix (cpu-small) on the train split, evaluating on the eval split")
  result = train_and_evaluate(TrainerConfig(
      train_pattern=summary["outputs"]["train"], eval_pattern=summary["outputs"]["eval"],
      output_dir=str(model_dir), feature_config=manifest["feature_config"],
      train_steps=FLAGS.train_steps))
  click = result["metrics"]["click"]
  print(f"eval AUC (click): {click['auc']:.4f}   LogLoss: {click['logloss']:.4f}   "
        f"oracle AUC: {click.get('oracle_auc', float('nan')):.4f}   examples: {click['examples']}")
  print(f"eval AUC (conversion): {result['metrics']['conversion']['auc']:.4f}")
  print(f"SavedModel: {result['saved_model']}")
  print(f"metrics:    {model_dir / 'metrics.json'}")


if __name__ == "__main__":
  app.run(main)
