"""`hemix-pipeline`: run the TFX pipeline locally (LocalDagRunner) or compile it for Kubeflow Pipelines V2.

  hemix-pipeline --examples_dir=runs/demo/examples --run_dir=runs/pipeline
  hemix-pipeline --examples_dir=gs://B/examples --run_dir=gs://B/hemix --kubeflow_output=hemix.json
  hemix-pipeline --config=my_run.yaml --train_steps=2000     # YAML of PipelineConfig fields; flags win
"""
import dataclasses
import json
import os
from pathlib import Path

import yaml

from absl import flags

from hemix_tf import cli_flags

from hemix_tf.model.config import parse_overrides, preset
from pipelines.pipeline_config import DEFAULT_IMAGE, PipelineConfig

FLAGS = flags.FlagValues()  # this CLI's own flags: importing it never clashes with another's
flags.DEFINE_string("config", None, "YAML file of PipelineConfig fields (flags given override it).",
                    flag_values=FLAGS)
flags.DEFINE_string("examples_dir", None, "The sequence job's output (train/, eval/).", flag_values=FLAGS)
flags.DEFINE_string("run_dir", "runs/pipeline", "Pipeline root, ML Metadata and serving directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("feature_config", None, "Feature config of the examples (default: the one the sequence job "
                    "recorded in <examples_dir>/job_summary.json).", flag_values=FLAGS)
flags.DEFINE_string("model_preset", "cpu-small", "HeMix preset.", flag_values=FLAGS)
flags.DEFINE_list("model", [], "HeMix hyper-parameters over the preset, name=value (YAML values), e.g. "
                  "--model=d_t=64,num_blocks=3 (model_overrides in --config; flags win).", flag_values=FLAGS)
flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: PipelineConfig's).", flag_values=FLAGS)
flags.DEFINE_integer("train_steps", 400, "Training steps.", flag_values=FLAGS)
flags.DEFINE_string("warm_start_from", None, "A SavedModel of the same model and vocabularies (e.g. the last "
                    "pushed one, <run_dir>/serving/<version>): training starts from its weights.", flag_values=FLAGS)
flags.DEFINE_float("min_auc", 0.55, "Blessing: minimum eval AUC of the click task.", flag_values=FLAGS)
flags.DEFINE_string("schema_path", None, "Curated schema.pbtxt (ImportSchemaGen) instead of SchemaGen.",
                    flag_values=FLAGS)
flags.DEFINE_string("kubeflow_output", None, "Compile for Kubeflow V2 into this JSON instead of running.",
                    flag_values=FLAGS)
flags.DEFINE_string("image", DEFAULT_IMAGE, "Container image of the Kubeflow components.", flag_values=FLAGS)


FLAG_FIELDS = ("examples_dir", "feature_config", "model_preset", "train_steps", "min_auc", "schema_path",
               "learning_rate", "warm_start_from")


def config_from_flags() -> PipelineConfig:
  """Defaults < the --config YAML < flags given on the command line."""
  values = {"pipeline_root": os.path.join(FLAGS.run_dir, "root"),
            "serving_dir": os.path.join(FLAGS.run_dir, "serving"),
            "metadata_path": os.path.join(FLAGS.run_dir, "metadata.sqlite")}
  values.update({name: FLAGS[name].value for name in FLAG_FIELDS if FLAGS[name].value is not None})
  if FLAGS.config:
    with open(FLAGS.config) as f:
      from_file = yaml.safe_load(f) or {}
    unknown = set(from_file) - {f.name for f in dataclasses.fields(PipelineConfig)}
    if unknown:
      raise cli_flags.UserError(f"{FLAGS.config}: unknown PipelineConfig fields {sorted(unknown)}")
    values.update({k: v for k, v in from_file.items() if not (k in FLAG_FIELDS and FLAGS[k].present)})
  try:
    flagged = parse_overrides(FLAGS.model)
  except ValueError as e:
    raise cli_flags.UserError(f"--model: {e}") from None
  overrides = values["model_overrides"] = {**(values.get("model_overrides") or {}), **flagged}
  preset(values.get("model_preset", "cpu-small"), **overrides)  # an unknown name or value fails here
  if not values.get("examples_dir"):
    raise cli_flags.UserError("give --examples_dir (or examples_dir in --config)")
  values["feature_config"] = examples_feature_config(values["examples_dir"], values.get("feature_config"))
  return PipelineConfig(**values)


def examples_feature_config(examples_dir: str, given: str | None) -> str:
  """The feature config of the sequence job's examples, from its job_summary.json (local directories),
  checked against the one `given`; empty splits fail here, before a minute of TFX components."""
  path = Path(examples_dir) / "job_summary.json"
  if "://" in examples_dir or not path.exists():
    if given:
      return given
    raise cli_flags.UserError(f"give --feature_config: {path}, the sequence job's record of it, is not there")
  summary = json.loads(path.read_text())
  recorded = summary["config"]["feature_config"]
  if given and given != recorded:
    raise cli_flags.UserError(f"--feature_config={given}, but {path} says the examples were built with "
                              f"'{recorded}'; drop the flag to use it")
  for split in ("train", "eval"):
    if not summary["counters"].get(f"{split}_examples"):
      raise cli_flags.UserError(f"{examples_dir}: the {split} split is empty ({path}); re-run the sequence "
                                "job with another --eval_start_timestamp")
  return recorded


def main(argv):
  del argv
  cfg = config_from_flags()
  from pipelines.pipeline import compile_kubeflow, run_local  # TFX: after the flags
  if FLAGS.kubeflow_output:
    print(f"Kubeflow V2 pipeline spec: {compile_kubeflow(cfg, FLAGS.kubeflow_output, FLAGS.image)}")
    return
  summary = run_local(cfg, verbose=FLAGS.verbose)
  print(json.dumps(summary, indent=2))
  print(f"report: {summary['report']}")


def run_cli():
  cli_flags.run(main, FLAGS, __doc__)


if __name__ == "__main__":
  run_cli()
