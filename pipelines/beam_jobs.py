"""What the Beam jobs share: default runner options, counters after the run, the summary file."""
from __future__ import annotations

import json
import re
from typing import Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from hemix_tf.data.contract import DataContractError
from pipelines.local_runner import without_timed_flush


def run_pipeline(build: Callable[[beam.Pipeline], None], beam_args: list[str] | None,
                 default_options: list[str], namespace: str, counter_names: tuple[str, ...]) -> dict:
  """Builds and runs a pipeline (`default_options` unless `beam_args` name a runner); returns its
  counters in `namespace`, every name present."""
  args = list(beam_args or [])
  if not any(a.startswith("--runner") for a in args):
    args = default_options + args
  without_timed_flush()
  try:
    with beam.Pipeline(options=PipelineOptions(args)) as p:
      build(p)
  except Exception as e:  # a worker's DataContractError arrives wrapped in the runner's error text
    found = re.search(r"DataContractError: ([^\n]+)", str(e))
    if found and not isinstance(e, DataContractError):
      raise DataContractError(found.group(1)) from e
    raise
  counters = {name: 0 for name in counter_names}
  for c in p.result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
    counters[c.key.metric.name] += c.committed if c.committed is not None else c.attempted
  return counters


def write_summary(output_dir: str, summary: dict) -> None:
  with FileSystems.create(FileSystems.join(output_dir, "job_summary.json")) as f:
    f.write((json.dumps(summary, indent=2) + "\n").encode())
