"""Custom TFX components of the hemix pipeline."""

import os

from tfx import v1 as tfx
from tfx.types import artifact
from tfx.utils import io_utils
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from pipelines.report import build_report

SCHEMA_DIFF = "SchemaDiff.pb"  # what ExampleValidator writes per split


def read_anomalies(uri: str) -> dict:
  """{split: ["feature: description", ...]} of an ExampleAnomalies artifact directory."""
  found = {}
  for split_dir in sorted(tfx.dsl.io.fileio.listdir(uri)):
    path = os.path.join(uri, split_dir, SCHEMA_DIFF)
    if not tfx.dsl.io.fileio.exists(path):
      continue
    proto = anomalies_pb2.Anomalies()
    proto.ParseFromString(io_utils.read_bytes_file(path))
    messages = [f"{name}: {info.description or info.short_description}"
                for name, info in sorted(proto.anomaly_info.items())]
    if proto.HasField("dataset_anomaly_info"):
      messages.append(f"<dataset>: {proto.dataset_anomaly_info.description}")
    if messages:
      found[split_dir.replace("Split-", "")] = messages
  return found


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]):
  """Fails the run when ExampleValidator found anomalies, so nothing is trained on bad data."""
  found = read_anomalies(anomalies.uri)
  if found:
    lines = [f"  {split}: {m}" for split, messages in found.items() for m in messages]
    raise RuntimeError("ExampleValidator found anomalies; the run stops before training:\n" + "\n".join(lines))


@tfx.dsl.components.component
def EvaluationSchema(schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
                     evaluation_schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
                     columns: tfx.dsl.components.Parameter[str]):
  """`schema` cut to `columns` (comma-separated): what the Evaluator decodes. TFMA reads only labels,
  slice keys and metric features from the decoded columns, and the model reads each example's raw
  bytes; decoding and un-batching every sequence field (hundreds of values per example) was most of the
  Evaluator's per-example time (docs/BENCHMARKS.md)."""
  full = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
  wanted = columns.split(",")
  missing = sorted(set(wanted) - {f.name for f in full.feature})
  if missing:
    raise ValueError(f"the schema has no column {', '.join(missing)}, which the evaluation reads")
  cut = schema_pb2.Schema()
  cut.feature.extend(f for f in full.feature if f.name in wanted)
  io_utils.write_pbtxt_file(os.path.join(evaluation_schema.uri, "schema.pbtxt"), cut)


class RunReport(artifact.Artifact):
  """A directory with the run's report: index.html and its figures."""
  TYPE_NAME = "hemix.RunReport"  # <namespace>.<Name>: what Kubeflow V2 accepts for a custom type


@tfx.dsl.components.component
def ReportGen(statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
              model_run: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelRun],
              model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
              evaluation: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
              blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
              report: tfx.dsl.components.OutputArtifact[RunReport],
              examples_dir: tfx.dsl.components.Parameter[str] = "",
              title: tfx.dsl.components.Parameter[str] = "HeMix run"):
  """Writes the run's report (index.html with its figures) into the `report` artifact."""
  blessed = bool(blessing.get_int_custom_property("blessed")) if blessing.has_custom_property("blessed") else None
  build_report(statistics.uri, model_run.uri, model.uri, evaluation.uri, blessed, examples_dir,
               title).write(report.uri)
