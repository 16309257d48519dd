"""The Beam jobs and TFX components run on the runner the docs name, whether or not the machine is online."""
import apache_beam as beam
from apache_beam.runners.portability import prism_runner

from pipelines import batch_scoring, sequence_job
from pipelines.beam_jobs import run_pipeline
from pipelines.local_runner import LOCAL_OPTIONS
from pipelines.pipeline_config import PipelineConfig


def test_the_default_runner_never_tries_prism(monkeypatch):
  """Beam's DirectRunner tries the PrismRunner first (offline it fails and falls back; online it would
  download Prism and run there)."""
  tried = []

  def prism(self, pipeline, options):
    tried.append(pipeline)
    raise RuntimeError("no Prism here")
  monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", prism)

  def build(p):
    _ = (p | beam.Create([("a", 1), ("a", 2), ("b", 3)]) | beam.GroupByKey()
         | beam.Map(lambda kv: beam.metrics.Metrics.counter("t", "groups").inc()))
  counters = run_pipeline(build, None, list(LOCAL_OPTIONS), "t", ("groups",))
  assert counters == {"groups": 2} and not tried
  assert sequence_job.DEFAULT_OPTIONS == batch_scoring.DEFAULT_OPTIONS == list(LOCAL_OPTIONS)
  assert PipelineConfig("e", "r", "s", "m").beam_pipeline_args == LOCAL_OPTIONS
