"""hemix-pipeline: a YAML config file overridden by the flags given."""
import importlib

import pytest

from pipelines import pipeline_cli


@pytest.fixture
def parse():
  def _parse(*argv):
    pipeline_cli.FLAGS.unparse_flags()
    pipeline_cli.FLAGS(["hemix-pipeline", *argv])
    return pipeline_cli.config_from_flags()
  yield _parse
  pipeline_cli.FLAGS.unparse_flags()


def test_every_command_line_tool_imports_beside_the_others():
  """Each tool owns its flags: the demo, tests and benchmarks import several in one process."""
  for name in ("hemix_tf.data.cli", "pipelines.sequence_job_cli", "pipelines.pipeline_cli",
               "pipelines.batch_scoring_cli", "hemix_tf.demo"):
    module = importlib.import_module(name)
    assert module.FLAGS is not pipeline_cli.FLAGS or name == "pipelines.pipeline_cli"


def test_yaml_config_and_flag_overrides(tmp_path, parse):
  config = tmp_path / "run.yaml"
  config.write_text("examples_dir: /data/examples\ntrain_steps: 1234\nmin_auc: 0.7\nlearning_rate: 0.01\n")
  cfg = parse(f"--config={config}", "--train_steps=99", "--run_dir=/r")
  assert (cfg.examples_dir, cfg.train_steps, cfg.min_auc, cfg.learning_rate) == ("/data/examples", 99, 0.7, 0.01)
  assert cfg.pipeline_root == "/r/root" and cfg.metadata_path == "/r/metadata.sqlite"


def test_unknown_config_field_is_an_error(tmp_path, parse):
  config = tmp_path / "run.yaml"
  config.write_text("examples_dir: /x\ntrain_stepz: 5\n")
  with pytest.raises(Exception, match="train_stepz"):
    parse(f"--config={config}")
