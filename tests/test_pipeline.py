"""The TFX pipeline end to end on LocalDagRunner, caching, blessing, the anomaly gate; Kubeflow compile."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import text_format
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx

from browser import rendered
from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.schemas import schema_path
from hemix_tf.version import code_version
from pipelines.local_runner import LOCAL_OPTIONS
from pipelines.pipeline import (DEFAULT_IMAGE, EVALUATOR_WORKERS_FROM, PipelineConfig, compile_kubeflow,
                                create_pipeline, run_local)
from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  build("synthetic", str(root / "raw"), num_impressions=3000)
  manifest = read_manifest(root / "raw")
  run_sequence_job(SequenceJobConfig(str(root / "raw" / "impressions"), str(root / "raw" / "events"),
                                     str(root / "examples"), manifest["eval_start_timestamp"]),
                   list(LOCAL_OPTIONS))
  return root / "examples"


def _config(run_dir, examples_dir, **kw) -> PipelineConfig:
  # min_auc 0.5 applies to the overall slice only (small activity slices may score lower).
  return PipelineConfig(examples_dir=str(examples_dir), pipeline_root=str(run_dir / "root"),
                        serving_dir=str(run_dir / "serving"), metadata_path=str(run_dir / "mlmd.sqlite"),
                        train_steps=20, min_auc=0.5, **kw)


def _executions(cfg):
  store = metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(cfg.metadata_path))
  return store.get_executions()


def _progress_lines(capsys) -> list[str]:
  return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]


def test_local_run_blesses_pushes_caches_and_gates(tmp_path, examples_dir, capsys):
  cfg = _config(tmp_path, examples_dir)
  first = run_local(dataclasses.replace(cfg, evaluator_workers=2))  # as at 20k+ eval examples (below: memory)
  assert first["blessed"] and first["pushed_model"]
  lines = _progress_lines(capsys)  # one line per component, the library logs in the file
  total = len(lines)
  assert total >= 9 and lines[-1].startswith(f"[{total}/{total}] ") and all(": ran in " in x for x in lines)
  eval_examples = json.loads((examples_dir / "job_summary.json").read_text())["counters"]["eval_examples"]
  figures = {line.split("] ")[1].split(":")[0]: line.split(" s, ", 1)[-1] for line in lines if " s, " in line}
  assert f"eval {eval_examples:,} examples" in figures["StatisticsGen"]
  assert figures["ExampleValidator"] == "0 anomalies" and figures["Pusher"].startswith("pushed to ")
  assert figures["Trainer"].startswith("click AUC ") and figures["Evaluator"].endswith(", blessed")
  # The Evaluator ran in worker processes, one per eval file at most: every example counted once.
  assert f" on {eval_examples:,} examples, " in figures["Evaluator"]
  assert "Component Trainer is finished." in Path(first["log_file"]).read_text()
  assert first["metrics"]["click/example_count"] == eval_examples
  assert 0.0 < first["metrics"]["click/auc"] < 1.0
  by_activity = {k: v for k, v in first["slices"].items() if k.startswith("user_activity_bucket=")}
  assert len(by_activity) > 1  # sliced by user activity
  assert sum(v["click/example_count"] for v in by_activity.values()) == eval_examples
  loaded = tf.saved_model.load(first["pushed_model"])
  records = list(tf.data.TFRecordDataset(tf.io.gfile.glob(str(examples_dir / "eval" / "*")),
                                         compression_type="GZIP").take(4))
  out = loaded.signatures["serving_default"](examples=tf.stack(records))  # raw examples
  assert out["click"].shape == (4,)
  assert tf.io.gfile.exists(f"{first['pushed_model']}/assets/vocab_item_id")  # the Transform's vocabulary
  # The Transform analyses only; the Trainer encodes the raw examples with its graph, as the model serves.
  assert not list((Path(cfg.pipeline_root) / "Transform" / "transformed_examples").rglob("*.gz"))
  assert figures["ReportGen"] == f"report {first['report']}"
  shown = rendered(first["report"])  # in a real browser: every part, every figure loaded
  assert shown["headings"] == ["Learning curves", "Calibration", "Slices and blessing", "Data", "Model"]
  assert [alt for alt, _ in shown["images"]] == ["learning_curves", "calibration", "sequence_lengths"]
  assert all(width > 0 for _, width in shown["images"])
  page = Path(first["report"]).read_text()
  assert "user_activity_bucket=" in page and "blessed" in page and "empty_realtime" in page
  assert 0.0 < first["metrics"]["click/gauc"] < 1.0 and "GAUC, last blessed" in page  # our TFMA metric
  # The Evaluator decodes only what TFMA reads (the model reads the raw bytes): no sequence column.
  cut = text_format.Parse(next(Path(cfg.pipeline_root).glob("EvaluationSchema/evaluation_schema/*/schema.pbtxt"))
                          .read_text(), schema_pb2.Schema())
  assert sorted(f.name for f in cut.feature) == ["click", "conversion", "user_activity_bucket", "user_id"]
  assert "dense parameters" in page and "(none: the preset as it is)" in page

  # The same run again: every component up to the Trainer comes from the cache (the Evaluator runs
  # again: its baseline, the latest blessed model, is now the first run's).
  n_before = len(_executions(cfg))
  second = run_local(cfg)
  cached = [e for e in _executions(cfg)[n_before:]
            if e.last_known_state == metadata_store_pb2.Execution.CACHED]
  assert len(cached) >= 6  # ExampleGen, statistics, schema, validation, gate, Transform, Trainer
  lines = _progress_lines(capsys)
  assert len(lines) == total and sum(": cached in " in x for x in lines) == len(cached)
  assert second["metrics"]["click/auc"] == pytest.approx(first["metrics"]["click/auc"])  # vs a baseline
  # The second report shows the last blessed model (the first run's) beside this one.
  assert second["report"] != first["report"]
  slices_table = Path(second["report"]).read_text().split("AUC, last blessed", 1)[1].split("</table>")[0]
  auc, gauc = (f"<td>{first['metrics'][f'click/{m}']:.4f}</td>" for m in ("auc", "gauc"))
  assert auc + auc + gauc + gauc in slices_table  # the same model, this run's and the last blessed one's

  # An unreachable threshold: the Evaluator re-runs (changed config), does not bless, nothing is pushed.
  pushed_before = tf.io.gfile.listdir(cfg.serving_dir)
  strict = run_local(dataclasses.replace(cfg, min_auc=0.999))
  assert not strict["blessed"] and strict["pushed_model"] is None
  assert tf.io.gfile.listdir(cfg.serving_dir) == pushed_before

  # The curated schema (ImportSchemaGen) with a domain the data violates: the run stops before training.
  schema = text_format.Parse(schema_path("synthetic-lbs", "examples").read_text(), schema_pb2.Schema())
  click = next(f for f in schema.feature if f.name == "click")
  click.int_domain.min, click.int_domain.max = 0, 0  # every click = 1 is now an anomaly
  (tmp_path / "curated.pbtxt").write_text(text_format.MessageToString(schema))
  def runs_of(component):
    return len([e for e in _executions(cfg) if component in e.properties.get(
        "component_id", metadata_store_pb2.Value()).string_value])
  before = {c: runs_of(c) for c in ("Transform", "Trainer")}
  with pytest.raises(RuntimeError, match="anomalies"):
    run_local(dataclasses.replace(cfg, schema_path=str(tmp_path / "curated.pbtxt")))
  assert {c: runs_of(c) for c in before} == before  # neither Transform nor Trainer ran


def test_kubeflow_v2_compile(tmp_path):
  cfg = PipelineConfig(examples_dir="gs://bucket/examples", pipeline_root="gs://bucket/root",
                       serving_dir="gs://bucket/serving", metadata_path="unused")
  spec = json.loads(open(compile_kubeflow(cfg, str(tmp_path / "hemix.json"))).read())
  tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
  for name in ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "AnomaliesGate",
               "Transform", "Trainer", "EvaluationSchema", "Evaluator", "Pusher", "ReportGen"):
    assert name in tasks
  executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
  images = {e["container"]["image"] for e in executors.values() if "container" in e}
  assert images == {DEFAULT_IMAGE}
  # The Transform's and the Trainer's functions by import path, installed in the image.
  assert "hemix_tf.trainer.run_fn" in json.dumps(spec)
  assert "hemix_tf.data.preprocessing.preprocessing_fn" in json.dumps(spec)


def test_the_code_version_covers_every_module_of_the_package(tmp_path):
  """Editing any module (preprocessing.py was once left out of the hash) changes the version that keys
  the Transform and Trainer caches; an unchanged copy hashes the same."""
  package = Path(code_version.__code__.co_filename).parent
  copy = tmp_path / "hemix_tf"
  shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
  assert code_version(copy) == code_version()
  with open(copy / "data" / "preprocessing.py", "a") as f:
    f.write("\n# an edit\n")
  assert code_version(copy) != code_version()


def test_a_feature_config_yaml_edit_invalidates_transform_and_trainer(tmp_path):
  """The YAML is read by the Transform and the Trainer at run time, but TFX fingerprints only its path:
  its content is part of their custom configs."""
  yaml_path = tmp_path / "my-config.yaml"
  packaged = Path(code_version.__code__.co_filename).parent / "configs" / "synthetic-lbs.yaml"
  yaml_path.write_text(packaged.read_text())

  def custom_configs():
    cfg = PipelineConfig(examples_dir="/e", pipeline_root=str(tmp_path / "root"), serving_dir="/s",
                         metadata_path="unused", feature_config=str(yaml_path))
    nodes = {n.id: n for n in create_pipeline(cfg).components}
    return {name: nodes[name].exec_properties["custom_config"] for name in ("Transform", "Trainer")}

  before = custom_configs()
  assert before == custom_configs()  # unchanged: cached
  yaml_path.write_text(yaml_path.read_text().replace("realtime_length: 32", "realtime_length: 16"))
  after = custom_configs()
  assert all(after[name] != before[name] for name in before)


def test_a_killed_runs_executions_are_cancelled_and_two_runs_never_share_a_store(tmp_path):
  """A run killed mid-component leaves its execution RUNNING in ML Metadata; the next run (which holds
  the store's lock, so nothing else runs) marks it CANCELED with a note. A second concurrent run fails."""
  from pipelines.pipeline import RunRecord, run_lock
  path = str(tmp_path / "mlmd.sqlite")
  record = RunRecord(path)
  type_id = record.store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
  states = (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE)
  ids = record.store.put_executions([metadata_store_pb2.Execution(type_id=type_id, last_known_state=s)
                                     for s in states])
  assert record.cancel_interrupted() == [ids[0]]
  killed, done = record.store.get_executions_by_id(ids)
  assert killed.last_known_state == metadata_store_pb2.Execution.CANCELED
  assert "interrupted" in killed.custom_properties["hemix_note"].string_value
  assert done.last_known_state == metadata_store_pb2.Execution.COMPLETE and "hemix_note" not in done.custom_properties
  assert record.cancel_interrupted() == []

  with run_lock(path):
    with pytest.raises(RuntimeError, match="another run of this pipeline is in progress"):
      with run_lock(path):
        pass
  with run_lock(path):  # released when the first run ends
    pass


def test_the_evaluator_runs_in_worker_processes_on_the_local_runner_only(tmp_path, examples_dir):
  """Locally the Evaluator's TFMA run gets one worker process per core when the eval split is large
  enough to pay for starting them (its Python per example is the stage's time); on a small one, with
  `evaluator_workers=1`, another runner (Dataflow) or on Kubeflow (where the timed flush guard of
  pipelines/local_runner.py does not run) it keeps the pipeline's options."""
  def evaluator_args(cfg, **kw):
    components = {c.id: c for c in create_pipeline(cfg, **kw).components}
    return components["Evaluator"].executor_spec.beam_pipeline_args
  large = tmp_path / "large"  # the sequence job's summary of a large eval split, the same files
  large.mkdir()
  for split in ("train", "eval"):
    (large / split).symlink_to(examples_dir / split)
  summary = json.loads((examples_dir / "job_summary.json").read_text())
  summary["counters"]["eval_examples"] = EVALUATOR_WORKERS_FROM
  (large / "job_summary.json").write_text(json.dumps(summary))
  cfg = _config(tmp_path, large)
  assert evaluator_args(cfg)[-2:] == ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
  small = _config(tmp_path, examples_dir)  # 3,000 impressions
  assert evaluator_args(dataclasses.replace(small, evaluator_workers=2))[-1] == "--direct_num_workers=2"
  for other in (dict(cfg=small), dict(cfg=dataclasses.replace(cfg, evaluator_workers=1)),
                dict(cfg=cfg, packaged_module=False),
                dict(cfg=dataclasses.replace(cfg, beam_pipeline_args=("--runner=DataflowRunner",)))):
    assert not any("multi_processing" in arg for arg in evaluator_args(**other))
  with pytest.raises(ValueError, match="evaluator_workers"):
    dataclasses.replace(cfg, evaluator_workers=-1)
