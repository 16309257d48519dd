"""`hemix-pipeline`: run the TFX pipeline locally (LocalDagRunner) or compile it for Kubeflow Pipelines V2.

  hemix-pipeline --examples_dir=runs/demo/examples --run_dir=runs/pipeline
  hemix-pipeline --examples_dir=gs://B/examples --run_dir=gs://B/hemix --kubeflow_output=hemix.json
"""
import json
import os

from absl import app, flags

from pipelines.pipeline import DEFAULT_IMAGE, PipelineConfig, compile_kubeflow, run_local

FLAGS = flags.FLAGS
flags.DEFINE_string("examples_dir", None, "The sequence job's output (train/, eval/).")
flags.DEFINE_string("run_dir", "runs/pipeline", "Pipeline root, ML Metadata and serving directory.")
flags.DEFINE_string("feature_config", "synthetic-lbs", "Feature config of the examples.")
flags.DEFINE_string("model_preset", "cpu-small", "HeMix preset.")
flags.DEFINE_integer("train_steps", 400, "Training steps.")
flags.DEFINE_float("min_auc", 0.55, "Blessing: minimum eval AUC of the click task.")
flags.DEFINE_string("schema_path", None, "Curated schema.pbtxt (ImportSchemaGen) instead of SchemaGen.")
flags.DEFINE_string("kubeflow_output", None, "Compile for Kubeflow V2 into this JSON instead of running.")
flags.DEFINE_string("image", DEFAULT_IMAGE, "Container image of the Kubeflow components.")


def config_from_flags() -> PipelineConfig:
  return PipelineConfig(
      examples_dir=FLAGS.examples_dir, pipeline_root=os.path.join(FLAGS.run_dir, "root"),
      serving_dir=os.path.join(FLAGS.run_dir, "serving"),
      metadata_path=os.path.join(FLAGS.run_dir, "metadata.sqlite"), feature_config=FLAGS.feature_config,
      model_preset=FLAGS.model_preset, train_steps=FLAGS.train_steps, min_auc=FLAGS.min_auc,
      schema_path=FLAGS.schema_path)


def main(argv):
  del argv
  cfg = config_from_flags()
  if FLAGS.kubeflow_output:
    print(f"Kubeflow V2 pipeline spec: {compile_kubeflow(cfg, FLAGS.kubeflow_output, FLAGS.image)}")
    return
  print(json.dumps(run_local(cfg), indent=2))


def run():
  flags.mark_flag_as_required("examples_dir")
  app.run(main)


if __name__ == "__main__":
  run()
