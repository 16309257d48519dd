"""The TFX pipeline: the sequence job's examples -> statistics, schema, validation -> Transform ->
Trainer (HeMix) -> Evaluator (TFMA, blessing) -> Pusher. Run locally with LocalDagRunner or compile for
Kubeflow Pipelines V2.

    ImportExampleGen(train/*, eval/*; example_import.py: the files linked, not copied) ─> StatisticsGen
      ─> SchemaGen | ImportSchemaGen ─> ExampleValidator
      ─> AnomaliesGate (an anomaly stops the run)
      ─> Transform(preprocessing_fn = hemix_tf.data.preprocessing.preprocessing_fn; analyses train only)
      ─> Trainer(run_fn = hemix_tf.trainer.run_fn, on the raw examples encoded by the transform graph in its
         input pipeline (Transform materialises nothing); exports the model with the graph inside, serving raw
         tf.Examples)
      ─> Evaluator(on the raw examples, decoding only the columns TFMA reads (EvaluationSchema); AUC >=
         min_auc, and no worse than the latest blessed model)
      ─> Pusher(if blessed)
      ─> ReportGen(the run's HTML report from the statistics, the Trainer's logs, the evaluation; report.py)
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import statistics_pb2
from tensorflow_model_analysis.proto import config_pb2
from tfx import v1 as tfx

from hemix_tf.data.examples import USER_ACTIVITY
from hemix_tf.data.feature_config import USER_ID, read_text
from hemix_tf.model.config import preset
from hemix_tf.version import code_version
from pipelines.components import AnomaliesGate, EvaluationSchema, ReportGen, RunReport, read_anomalies
from pipelines.example_import import ExampleImport
from pipelines.outputs import SUMMARY
from pipelines.pipeline_config import DEFAULT_IMAGE, EVALUATOR_WORKERS_FROM, PipelineConfig  # noqa: F401 (re-exported)
from pipelines.local_runner import LOCAL_OPTIONS, multi_processing_options, without_timed_flush
from pipelines.progress import component_progress
from pipelines.report import report_page

MODULE_DIR = Path(__file__).resolve().parent / "module"
TRAINER_MODULE_FILE, RUN_FN = str(MODULE_DIR / "hemix_trainer_module.py"), "hemix_tf.trainer.run_fn"
TRANSFORM_MODULE_FILE = str(MODULE_DIR / "hemix_transform_module.py")
PREPROCESSING_FN = "hemix_tf.data.preprocessing.preprocessing_fn"
def feature_config_version(feature_config: str) -> str:
  """A hash of a feature-config YAML's content ("" for a packaged config: `code_version` covers those)."""
  if not feature_config.endswith((".yaml", ".yml")):
    return ""
  return hashlib.sha256(read_text(feature_config).encode()).hexdigest()[:16]


def eval_config(cfg: PipelineConfig, tasks=("click", "conversion")) -> tfma.EvalConfig:
  auc_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.min_auc}),
      change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                   absolute={"value": -cfg.max_auc_drop}))
  ours = "pipelines.tfma_metrics"  # why ours, in its docstring
  # example_count, mean_label, mean_prediction, calibration and binary_crossentropy in one pass
  metrics = [tfma.MetricConfig(class_name="ExampleSums", module=ours),
             # 1,000 buckets of the prediction: the report merges them into deciles (pipelines/report.py)
             tfma.MetricConfig(class_name="CalibrationPlot"),
             tfma.MetricConfig(class_name="GroupAUC", module=ours)]  # user-level GAUC
  # The blessing threshold applies to the overall slice only; the activity slices are reported.
  overall_only = [config_pb2.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)]
  specs = [tfma.MetricsSpec(output_names=["click"], metrics=[
      tfma.MetricConfig(class_name="AUC", per_slice_thresholds=overall_only), *metrics])]
  specs += [tfma.MetricsSpec(output_names=[t], metrics=[tfma.MetricConfig(class_name="AUC"), *metrics])
            for t in tasks if t != "click"]
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name="serving_default", label_keys={t: t for t in tasks})],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[USER_ACTIVITY])],
      metrics_specs=specs)


def evaluated_columns(config: tfma.EvalConfig) -> list[str]:
  """The example columns TFMA itself reads under `config`: labels, slice keys, GroupAUC's group keys."""
  columns = [key for spec in config.model_specs for key in spec.label_keys.values()]
  columns += [key for spec in config.slicing_specs for key in spec.feature_keys]
  columns += [json.loads(metric.config or "{}").get("group_key", USER_ID) for spec in config.metrics_specs
              for metric in spec.metrics if metric.class_name == "GroupAUC"]
  return list(dict.fromkeys(columns))


def create_pipeline(cfg: PipelineConfig, metadata_connection_config=None,
                    packaged_module: bool = True) -> tfx.dsl.Pipeline:
  """The pipeline. `packaged_module`: Transform and Trainer get module files (TFX packages them, local
  runs); otherwise the functions' import paths, installed in the pipeline image (Kubeflow)."""
  example_gen = ExampleImport(cfg.examples_dir, {"train": "train/*", "eval": "eval/*"})
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
  if cfg.schema_path:
    schema_gen = tfx.components.ImportSchemaGen(schema_file=cfg.schema_path)
  else:
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=False)
  example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                      schema=schema_gen.outputs["schema"])
  gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
  # code_version (every module of the package) and the feature config's content in the custom configs
  # re-run Transform / Trainer when either changes (TFX fingerprints only the one-line module files and
  # the config's path).
  versions = {"code_version": code_version(), "feature_config_content": feature_config_version(cfg.feature_config)}
  transform = tfx.components.Transform(
      **({"module_file": TRANSFORM_MODULE_FILE} if packaged_module else {"preprocessing_fn": PREPROCESSING_FN}),
      examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
      disable_statistics=True,  # StatisticsGen has the raw statistics; post-transform ones would double the time
      # The analysis only: the Trainer encodes the raw examples with the graph in its input pipeline, as the
      # exported model does, instead of a second pass that writes every example again (docs/BENCHMARKS.md).
      materialize=False,
      custom_config={"feature_config": cfg.feature_config, **versions,
                     "time_gap_buckets": preset(cfg.model_preset, **cfg.model_overrides).time_gap_buckets,
                     "vocabulary_min_count": cfg.vocabulary_min_count})
  transform.add_upstream_node(gate)
  hparams = {"feature_config": cfg.feature_config, "model_preset": cfg.model_preset,
             "model_overrides": dict(cfg.model_overrides),
             "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
             "warm_start_from": cfg.warm_start_from}
  run_key = hashlib.sha256(json.dumps({**hparams, "steps": cfg.train_steps, **versions,
                                       "vocabulary_min_count": cfg.vocabulary_min_count},
                                      sort_keys=True).encode()).hexdigest()[:16]
  trainer = tfx.components.Trainer(
      **({"module_file": TRAINER_MODULE_FILE} if packaged_module else {"run_fn": RUN_FN}),
      examples=example_gen.outputs["examples"], transform_graph=transform.outputs["transform_graph"],
      schema=schema_gen.outputs["schema"],
      train_args=tfx.proto.TrainArgs(num_steps=cfg.train_steps), eval_args=tfx.proto.EvalArgs(num_steps=0),
      # backup_dir is the same for every attempt of the same training, so a killed Trainer resumes there
      # (BackupAndRestore).
      custom_config={**hparams, **versions,
                     "backup_dir": os.path.join(cfg.pipeline_root, "trainer_backup", run_key)})
  latest_blessed = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing)
  ).with_id("latest_blessed_model_resolver")
  evaluation = eval_config(cfg)
  evaluation_schema = EvaluationSchema(schema=schema_gen.outputs["schema"],
                                       columns=",".join(evaluated_columns(evaluation)))
  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
      baseline_model=latest_blessed.outputs["model"], eval_config=evaluation,
      schema=evaluation_schema.outputs["evaluation_schema"])
  # Local runs only: run_local turns off the multi-processing runner's timed flush (local_runner.py).
  if packaged_module and tuple(cfg.beam_pipeline_args) == LOCAL_OPTIONS and evaluator_workers(cfg) != 1:
    evaluator.with_beam_pipeline_args(list(multi_processing_options(evaluator_workers(cfg))))
  pusher = tfx.components.Pusher(
      model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=cfg.serving_dir)))
  report = ReportGen(statistics=statistics_gen.outputs["statistics"], model_run=trainer.outputs["model_run"],
                     model=trainer.outputs["model"], evaluation=evaluator.outputs["evaluation"],
                     blessing=evaluator.outputs["blessing"], examples_dir=cfg.examples_dir,
                     title=f"{cfg.pipeline_name}: {cfg.model_preset} on {os.path.basename(cfg.examples_dir.rstrip('/'))}")
  return tfx.dsl.Pipeline(
      pipeline_name=cfg.pipeline_name, pipeline_root=cfg.pipeline_root,
      components=[example_gen, statistics_gen, schema_gen, example_validator, gate, transform, trainer,
                  latest_blessed, evaluation_schema, evaluator, pusher, report],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(cfg.beam_pipeline_args))


def evaluator_workers(cfg: PipelineConfig) -> int:
  """`cfg.evaluator_workers`, with 0 resolved: in memory (1) when the sequence job's summary counts fewer
  than EVALUATOR_WORKERS_FROM eval examples, else one per core (0); examples without a summary: 0."""
  if cfg.evaluator_workers:
    return cfg.evaluator_workers
  path = os.path.join(cfg.examples_dir, SUMMARY)
  if not tfx.dsl.io.fileio.exists(path):
    return 0
  counters = json.loads(tfx.dsl.io.fileio.open(path).read())["counters"]
  return 1 if counters.get("eval_examples", 0) < EVALUATOR_WORKERS_FROM else 0


def run_local(cfg: PipelineConfig, verbose: bool = False) -> dict:
  """Runs the pipeline with LocalDagRunner and a SQLite ML Metadata store, printing one line per
  component (the libraries' log goes to <pipeline_root>/logs/); returns `run_summary` and the log file."""
  os.makedirs(os.path.dirname(os.path.abspath(cfg.metadata_path)), exist_ok=True)
  connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(cfg.metadata_path)
  pipeline = create_pipeline(cfg, connection)
  log_dir = os.path.join(cfg.pipeline_root, "logs")
  os.makedirs(log_dir, exist_ok=True)
  log_file = os.path.join(log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
  with run_lock(cfg.metadata_path):
    record = RunRecord(cfg.metadata_path)
    interrupted = record.cancel_interrupted()
    if interrupted:
      print(f"ML Metadata: {len(interrupted)} execution(s) an interrupted run left running marked CANCELED")
    with component_progress(len(pipeline.components), log_file, verbose, record.key_figure):
      without_timed_flush()  # the Evaluator's worker processes (evaluator_workers)
      tfx.orchestration.LocalDagRunner().run(pipeline)
  return {**run_summary(cfg), "log_file": log_file}


@contextlib.contextmanager
def run_lock(metadata_path: str):
  """One local run per metadata store at a time: a second one fails at once (the first holds the lock
  until it ends, however it ends: the kernel releases it with the process)."""
  with open(f"{metadata_path}.lock", "w") as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise RuntimeError(f"another run of this pipeline is in progress ({metadata_path}.lock is held)") from None
    yield


def compile_kubeflow(cfg: PipelineConfig, output_file: str, image: str = DEFAULT_IMAGE) -> str:
  """Writes the Kubeflow Pipelines V2 PipelineSpec JSON (no cluster needed)."""
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
      output_dir=os.path.dirname(os.path.abspath(output_file)), output_filename=os.path.basename(output_file))
  runner.run(create_pipeline(cfg, packaged_module=False), write_out=True)
  return output_file


def _slice_value(key) -> str:
  value = getattr(key, key.WhichOneof("kind"))
  return value.decode() if isinstance(value, bytes) else str(value)


class RunRecord:
  """What a local run recorded in ML Metadata: the latest artifact of each type (a linear pipeline run
  once per invocation, so the latest is this run's, or the cached one it reused)."""

  def __init__(self, metadata_path: str):
    from ml_metadata.metadata_store import metadata_store
    self.store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(
        metadata_path))

  def latest(self, type_name: str):
    artifacts = self.store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id) if artifacts else None

  def evaluation(self) -> tuple[dict, dict]:
    """The latest evaluation's overall metrics {output/metric: value} and per-slice ones."""
    evaluation, metrics, slices = self.latest("ModelEvaluation"), {}, {}
    if evaluation is None:
      return metrics, slices
    for slice_metrics in tfma.load_metrics(evaluation.uri):
      keys = slice_metrics.slice_key.single_slice_keys
      target = metrics if not keys else slices.setdefault(
          ",".join(f"{k.column}={_slice_value(k)}" for k in keys), {})
      for key in slice_metrics.metric_keys_and_values:
        if key.key.model_name not in ("", "candidate") or key.key.is_diff:
          continue  # the baseline's metrics and the differences (when a blessed baseline exists)
        target[f"{key.key.output_name}/{key.key.name}".lstrip("/")] = key.value.double_value.value
    return metrics, slices

  def cancel_interrupted(self) -> list[int]:
    """Executions a killed run left RUNNING (no run holds the lock now) become CANCELED, with a note:
    ML Metadata then tells what happened to them. Returns their ids."""
    from ml_metadata.proto import metadata_store_pb2
    running = [e for e in self.store.get_executions()
               if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
    for execution in running:
      execution.last_known_state = metadata_store_pb2.Execution.CANCELED
      execution.custom_properties["hemix_note"].string_value = (
          "interrupted: still running when a later run of the pipeline started")
    if running:
      self.store.put_executions(running)
    return [e.id for e in running]

  def blessed(self) -> bool:
    blessing = self.latest("ModelBlessing")
    return bool(blessing and blessing.custom_properties["blessed"].int_value)

  def pushed_model(self) -> str | None:
    pushed = self.latest("PushedModel")
    if pushed is not None and pushed.custom_properties["pushed"].int_value:
      return pushed.custom_properties["pushed_destination"].string_value
    return None

  def examples_per_split(self) -> dict:
    statistics = self.latest("ExampleStatistics")
    counts = {}
    for split in json.loads(statistics.properties["split_names"].string_value) if statistics else []:
      stats = statistics_pb2.DatasetFeatureStatisticsList()
      stats.ParseFromString(tfx.dsl.io.fileio.open(
          os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"), "rb").read())
      counts[split] = sum(d.num_examples for d in stats.datasets)
    return counts

  def report(self) -> str | None:
    """The latest run report's page."""
    report = self.latest(RunReport.TYPE_NAME)
    return report_page(report.uri) if report is not None else None

  def key_figure(self, component: str) -> str:
    """The figure that says whether a finished component did its job ("" when it has none)."""
    if component == "StatisticsGen":
      return ", ".join(f"{split} {n:,} examples" for split, n in self.examples_per_split().items())
    if component == "ExampleValidator":
      anomalies = self.latest("ExampleAnomalies")
      found = read_anomalies(anomalies.uri) if anomalies else {}
      return f"{sum(map(len, found.values()))} anomalies"
    if component == "Trainer":
      run = self.latest("ModelRun")
      path = os.path.join(run.uri, "metrics.json") if run else ""
      if path and tfx.dsl.io.fileio.exists(path):
        return f"click AUC {json.loads(tfx.dsl.io.fileio.open(path).read())['metrics']['click']['auc']:.4f} (eval)"
    if component == "Evaluator":
      metrics = self.evaluation()[0]
      auc, count = metrics.get("click/auc"), metrics.get("click/example_count")
      return (f"click AUC {auc:.4f} on {count:,.0f} examples, " if auc is not None else "") + (
          "blessed" if self.blessed() else "not blessed")
    if component == "Pusher":
      return f"pushed to {self.pushed_model()}" if self.pushed_model() else "not pushed"
    if component == "ReportGen":
      return f"report {self.report()}"
    return ""


def run_summary(cfg: PipelineConfig) -> dict:
  """The latest evaluation's overall and per-slice metrics, its blessing, and the pushed model
  (from ML Metadata)."""
  record = RunRecord(cfg.metadata_path)
  metrics, slices = record.evaluation()
  return {"metrics": metrics, "slices": slices, "blessed": record.blessed(), "pushed_model": record.pushed_model(),
          "report": record.report()}
