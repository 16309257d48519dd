"""`hemix-batch-score`: score tf.Examples or raw logs with a SavedModel into Parquet (Beam).
Unknown flags go to Beam as pipeline options (default: the FnApiRunner, in memory).

  hemix-batch-score --saved_model=runs/demo/serving/<version> --examples='runs/demo/examples/eval/*' \\
      --output_dir=runs/scores
  hemix-batch-score --saved_model=... --dataset_dir=runs/data/synthetic --output_dir=runs/scores
  hemix-batch-score ... --runner=DataflowRunner --project=... --temp_location=gs://...
"""
from __future__ import annotations

import json

from absl import flags

from hemix_tf import cli_flags

FLAGS = flags.FlagValues()
flags.DEFINE_string("saved_model", None, "The SavedModel directory (e.g. a pushed version).", required=True,
                    flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Where scores/, rejected/ and job_summary.json go.", required=True,
                    flag_values=FLAGS)
flags.DEFINE_string("examples", None, "TFRecord pattern of tf.Examples (.gz files are gzip).", flag_values=FLAGS)
flags.DEFINE_string("dataset_dir", None, "Raw logs instead: a hemix-data directory (impressions/, events/).",
                    flag_values=FLAGS)
flags.DEFINE_string("feature_config", None, "Default: the one recorded with the model.", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir (else the job refuses to start).",
                  flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 512, "Examples per inference call.", flag_values=FLAGS)


def main(argv) -> None:
  from pipelines.batch_scoring import BatchScoringConfig, run  # Beam, TF: after the flags
  logs = FLAGS.dataset_dir
  try:
    cfg = BatchScoringConfig(
        saved_model=FLAGS.saved_model, output_dir=FLAGS.output_dir, examples=FLAGS.examples,
        impressions=logs and f"{logs}/impressions", events=logs and f"{logs}/events",
        feature_config=FLAGS.feature_config, batch_size=FLAGS.batch_size,
        overwrite=FLAGS.overwrite)
  except ValueError as e:
    raise cli_flags.UserError(f"{e}: pass --examples or --dataset_dir") from e
  summary = run(cfg, argv[1:])
  print(json.dumps(summary["counters"], indent=2))
  print(f"scores: {summary['scores']}\nrejected: {summary['rejected']}")


def run_cli():
  cli_flags.run(main, FLAGS, __doc__, beam_options=True)


if __name__ == "__main__":
  run_cli()
