"""`hemix-sequence-job`: run the Beam sequence job. Unknown flags go to Beam as pipeline options.

  hemix-sequence-job --dataset_dir=runs/data/synthetic --output_dir=runs/examples/synthetic
  hemix-sequence-job --impressions='gs://b/imp/*.parquet' ... --runner=DataflowRunner --project=...
"""
from __future__ import annotations

import json

from absl import flags

from hemix_tf import cli_flags

from hemix_tf.data.dataset import read_manifest

FLAGS = flags.FlagValues()  # this CLI's own flags: importing it never clashes with another's
flags.DEFINE_string("dataset_dir", None, "A hemix-data directory (impressions/, events/, manifest.json).",
                    flag_values=FLAGS)
flags.DEFINE_string("impressions", None, "Impression log file or directory (instead of --dataset_dir).",
                    flag_values=FLAGS)
flags.DEFINE_string("events", None, "Event log file or directory (instead of --dataset_dir).",
                    flag_values=FLAGS)
flags.DEFINE_integer("eval_start_timestamp", None, "First eval timestamp (default: the manifest's).",
                     flag_values=FLAGS)
flags.DEFINE_string("feature_config", None, "Config name or YAML (default: the manifest's).",
                    flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Where train/, eval/, rejected/ are written.", required=True,
                    flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir (else the job refuses to start).",
                  flag_values=FLAGS)
flags.DEFINE_integer("num_buckets", 64, "User-hash buckets (parallelism of the sequence build).",
                     flag_values=FLAGS)
flags.DEFINE_integer("waves", 1, "Build the buckets in this many waves, the validated rows spilled to disk in "
                     "between: a local runner then holds 1/waves of the logs (about 1 GB plus 4 GB per million "
                     "impressions with 10 events each in a wave, docs/BENCHMARKS.md). 1: one pass "
                     "(distributed runners).", flag_values=FLAGS)
flags.DEFINE_integer("output_shards", 8, "Files per split (per wave); a gzip file is read by one worker.",
                     flag_values=FLAGS)


def config_from_flags():
  from pipelines.sequence_job import SequenceJobConfig
  manifest = read_manifest(FLAGS.dataset_dir) if FLAGS.dataset_dir else {}
  impressions = FLAGS.impressions or (FLAGS.dataset_dir and f"{FLAGS.dataset_dir}/impressions")
  events = FLAGS.events or (FLAGS.dataset_dir and f"{FLAGS.dataset_dir}/events")
  eval_start = FLAGS.eval_start_timestamp if FLAGS.eval_start_timestamp is not None \
      else manifest.get("eval_start_timestamp")
  feature_config = FLAGS.feature_config or manifest.get("feature_config")
  missing = [name for name, v in (("--impressions", impressions), ("--events", events),
                                  ("--eval_start_timestamp", eval_start),
                                  ("--feature_config", feature_config)) if v is None]
  if missing:
    raise cli_flags.UserError(f"give --dataset_dir or {', '.join(missing)}")
  return SequenceJobConfig(impressions=impressions, events=events, output_dir=FLAGS.output_dir,
                           eval_start_timestamp=int(eval_start), feature_config=feature_config,
                           num_buckets=FLAGS.num_buckets, waves=FLAGS.waves, output_shards=FLAGS.output_shards,
                           overwrite=FLAGS.overwrite)


def main(argv) -> None:
  beam_args = argv[1:]  # the flags this tool does not know: Beam pipeline options
  from pipelines.sequence_job import run
  summary = run(config_from_flags(), beam_args)
  print(json.dumps(summary["counters"], indent=2))
  print(f"train examples: {summary['outputs']['train']}\neval examples:  {summary['outputs']['eval']}")


def run_cli():
  cli_flags.run(main, FLAGS, __doc__, beam_options=True)


if __name__ == "__main__":
  run_cli()
