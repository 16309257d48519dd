"""hemix-pipeline: a YAML config file overridden by the flags given."""
import pytest
from absl import flags

from pipelines import pipeline_cli


@pytest.fixture
def parse():
  def _parse(*argv):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["hemix-pipeline", *argv])
    return pipeline_cli.config_from_flags()
  yield _parse
  flags.FLAGS.unparse_flags()


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
