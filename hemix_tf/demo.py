"""`make demo`: the main job end to end on the embedded default data (the synthetic AMAP-like logs).

1. the synthetic AMAP-like raw logs (hemix-data), 2. the Beam sequence job's point-in-time examples,
3. the TFX pipeline on LocalDagRunner: statistics, schema, validation, Transform, HeMix training, TFMA
evaluation and blessing, push of the SavedModel, the run's report. Prints the eval AUC, the pushed
SavedModel's path and, last, the report's.
"""
from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from hemix_tf import cli_flags

from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest

FLAGS = flags.FlagValues()  # the demo's own flags
flags.DEFINE_string("run_dir", "runs/demo", "Where the demo writes everything.", flag_values=FLAGS)
flags.DEFINE_integer("num_impressions", 100_000, "Synthetic impressions to generate.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed of the synthetic data.", flag_values=FLAGS)
flags.DEFINE_integer("train_steps", 400, "Training steps of 256 examples.", flag_values=FLAGS)


def main(argv):
  del argv
  from pipelines.pipeline import PipelineConfig, run_local  # TFX, Beam: after the flags
  from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job
  run_dir = Path(FLAGS.run_dir).resolve()
  raw = run_dir / "raw"
  if (raw / "manifest.json").exists():
    manifest = read_manifest(raw)
    print(f"[1/3] raw logs already at {raw} (delete the directory to regenerate)")
  else:
    print(f"[1/3] generating {FLAGS.num_impressions:,} synthetic AMAP-like impressions into {raw}")
    manifest = build("synthetic", str(raw), num_impressions=FLAGS.num_impressions, seed=FLAGS.seed)
  print(f"{manifest['impressions']:,} impressions of {manifest['impression_users']:,} users, "
        f"{manifest['events']:,} events; eval from timestamp {manifest['eval_start_timestamp']} "
        f"({manifest['eval_impressions']:,} impressions); contract Parquet in {raw}")
  examples = run_dir / "examples"
  if (examples / "job_summary.json").exists():  # unchanged examples: the pipeline's cache applies
    print(f"[2/3] examples already at {examples} (delete the directory to rebuild)")
    summary = json.loads((examples / "job_summary.json").read_text())
  else:
    print(f"[2/3] Beam sequence job (FnApiRunner, in memory): point-in-time sequences -> {examples}")
    summary = run_sequence_job(SequenceJobConfig(
        impressions=str(raw / "impressions"), events=str(raw / "events"), output_dir=str(examples),
        eval_start_timestamp=manifest["eval_start_timestamp"], feature_config=manifest["feature_config"],
        overwrite=True))  # no job_summary.json: a killed run's leftovers
  print(", ".join(f"{name} {value:,}" for name, value in summary["counters"].items()))
  print(f"examples: {summary['outputs']['train']}, {summary['outputs']['eval']}")
  print("[3/3] TFX pipeline (LocalDagRunner): statistics, schema, validation, Transform, Trainer "
        "(HeMix cpu-small), Evaluator, Pusher, report")
  cfg = PipelineConfig(examples_dir=str(examples), pipeline_root=str(run_dir / "pipeline"),
                       serving_dir=str(run_dir / "serving"), metadata_path=str(run_dir / "metadata.sqlite"),
                       feature_config=manifest["feature_config"], train_steps=FLAGS.train_steps)
  summary = run_local(cfg)
  metrics = summary["metrics"]
  print(f"eval AUC (click): {metrics.get('click/auc', float('nan')):.4f}   "
        f"LogLoss: {metrics.get('click/binary_crossentropy', float('nan')):.4f}   "
        f"examples: {int(metrics.get('click/example_count', 0))}")
  print(f"eval AUC (conversion): {metrics.get('conversion/auc', float('nan')):.4f}")
  print(f"blessed: {summary['blessed']}")
  print(f"pushed SavedModel: {summary['pushed_model']}")
  print(f"pipeline artifacts: {cfg.pipeline_root}   ML Metadata: {cfg.metadata_path}")
  print(f"report: {summary['report']}")


def run_cli():
  cli_flags.run(main, FLAGS, __doc__)


if __name__ == "__main__":
  run_cli()
