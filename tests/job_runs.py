"""Running the Beam sequence job in tests: in memory, on a dataset directory (raw logs + manifest)."""
from hemix_tf.data.dataset import read_manifest
from pipelines.local_runner import LOCAL_OPTIONS
from pipelines.sequence_job import SequenceJobConfig, run

IN_MEMORY = list(LOCAL_OPTIONS)


def run_job(dataset_dir, out_dir, config_name, num_buckets=4, overwrite=False, waves=1) -> dict:
  """The job's summary: counters and the train / eval output patterns."""
  manifest = read_manifest(dataset_dir)
  cfg = SequenceJobConfig(str(dataset_dir / "impressions"), str(dataset_dir / "events"), str(out_dir),
                          manifest["eval_start_timestamp"], config_name, num_buckets=num_buckets,
                          overwrite=overwrite, waves=waves)
  return run(cfg, IN_MEMORY)
