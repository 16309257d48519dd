"""The command-line tools: help, one-line errors, Beam option checks; hemix-pipeline's YAML config
overridden by the flags given."""
import importlib
import json
import subprocess
import sys

import pytest
from absl import flags

from hemix_tf import cli_flags
from pipelines import pipeline_cli

# Each tool's module, and one of its own flags that its help must list.
TOOLS = {"hemix_tf.data.cli": "--num_impressions", "pipelines.sequence_job_cli": "--num_buckets",
         "pipelines.pipeline_cli": "--examples_dir", "pipelines.batch_scoring_cli": "--saved_model",
         "hemix_tf.experiments.cli": "--suite", "hemix_tf.demo": "--run_dir"}
# Tools whose help must answer before TensorFlow, TFX or Beam is imported.
LIGHT = ("hemix_tf.data.cli", "pipelines.sequence_job_cli", "pipelines.pipeline_cli",
         "pipelines.batch_scoring_cli", "hemix_tf.demo", "hemix_tf.experiments.cli")


@pytest.mark.parametrize("module", TOOLS)
def test_help_lists_the_tools_own_flags(module):
  proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert TOOLS[module] in proc.stdout and "--verbose" in proc.stdout and "Unknown command line flag" not in proc.stdout


def test_help_imports_no_tensorflow_tfx_or_beam():
  code = (f"import sys\nfor name in {LIGHT!r}:\n"
          "  module = __import__(name, fromlist=['FLAGS'])\n"
          "  sys.argv = [name, '-h']\n"
          "  try:\n    module.run_cli()\n"
          "  except SystemExit as e:\n    assert e.code == 0, (name, e.code)\n"
          "heavy = [m for m in ('tensorflow', 'tfx', 'apache_beam') if m in sys.modules]\n"
          "assert not heavy, heavy\n")
  subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def _run_tool(monkeypatch, main, *argv, beam_options=False):
  own = flags.FlagValues()
  flags.DEFINE_string("output_dir", None, "Where.", flag_values=own)
  monkeypatch.setattr(sys, "argv", ["hemix-tool", *argv])
  try:
    cli_flags.run(main, own, "hemix-tool: a test tool.", beam_options=beam_options, uses_tensorflow=False)
  except SystemExit as e:
    return e.code
  return 0


def test_a_user_error_is_one_line_and_exit_2(monkeypatch, capsys):
  def main(argv):
    raise FileNotFoundError("/x/users.dat: no such file (a GroupLens directory has users.dat)")
  assert _run_tool(monkeypatch, main, "--output_dir=/o") == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("hemix-tool: error: /x/users.dat: no such file")
  assert _run_tool(monkeypatch, main, "--output_dir=/o", "--bogus") == 2
  assert capsys.readouterr().err.startswith("hemix-tool: error: Unknown command line flag 'bogus'")


def test_a_stray_argument_is_an_error_not_dropped(monkeypatch, capsys):
  """`--models=DNN w/o sequences,DNN` unquoted is three words: absl stops at the first non-flag and the
  tool ran DNN alone with exit 0; the rest must fail in one line, for a Beam tool too."""
  ran = []
  for beam_options in (False, True):
    assert _run_tool(monkeypatch, ran.append, "--output_dir=DNN", "w/o", "sequences,DNN",
                     beam_options=beam_options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "w/o sequences,DNN" in err, err
  assert not ran


def test_verbose_shows_the_traceback(monkeypatch):
  def main(argv):
    raise FileNotFoundError("missing")
  monkeypatch.setattr(sys, "argv", ["hemix-tool", "--verbose"])
  with pytest.raises(FileNotFoundError):
    cli_flags.run(main, flags.FlagValues(), "doc", uses_tensorflow=False)


def test_a_bug_keeps_its_traceback(monkeypatch):
  def main(argv):
    raise ZeroDivisionError("a bug")
  monkeypatch.setattr(sys, "argv", ["hemix-tool"])
  with pytest.raises(ZeroDivisionError):
    cli_flags.run(main, flags.FlagValues(), "doc", uses_tensorflow=False)


def test_beam_options_pass_and_typos_are_errors(monkeypatch, capsys):
  seen = []
  assert _run_tool(monkeypatch, seen.append, "--output_dir=/o", "--runner=DirectRunner",
                   "--direct_num_workers=2", beam_options=True) == 0
  assert seen[0][1:] == ["--runner=DirectRunner", "--direct_num_workers=2"]
  assert _run_tool(monkeypatch, seen.append, "--output_dir=/o", "--runer=DirectRunner", beam_options=True) == 2
  assert "unknown flags --runer=DirectRunner" in capsys.readouterr().err


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
               "pipelines.batch_scoring_cli", "hemix_tf.demo", "hemix_tf.experiments.cli"):
    module = importlib.import_module(name)
    assert module.FLAGS is not pipeline_cli.FLAGS or name == "pipelines.pipeline_cli"


def test_yaml_config_and_flag_overrides(tmp_path, parse):
  config = tmp_path / "run.yaml"
  config.write_text("examples_dir: /data/examples\ntrain_steps: 1234\nmin_auc: 0.7\nlearning_rate: 0.01\n"
                    "feature_config: movielens\n")
  cfg = parse(f"--config={config}", "--train_steps=99", "--run_dir=/r", "--warm_start_from=/r/serving/1")
  assert (cfg.examples_dir, cfg.train_steps, cfg.min_auc, cfg.learning_rate) == ("/data/examples", 99, 0.7, 0.01)
  assert cfg.warm_start_from == "/r/serving/1"
  assert cfg.pipeline_root == "/r/root" and cfg.metadata_path == "/r/metadata.sqlite"
  assert cfg.feature_config == "movielens"


def _examples_dir(tmp_path, feature_config="movielens", eval_examples=10):
  (tmp_path / "examples").mkdir()
  (tmp_path / "examples" / "job_summary.json").write_text(json.dumps(
      {"config": {"feature_config": feature_config},
       "counters": {"train_examples": 90, "eval_examples": eval_examples}}))
  return tmp_path / "examples"


def test_the_feature_config_comes_from_the_sequence_jobs_record(tmp_path, parse):
  examples = _examples_dir(tmp_path)
  assert parse(f"--examples_dir={examples}").feature_config == "movielens"
  with pytest.raises(cli_flags.UserError, match="built with 'movielens'"):
    parse(f"--examples_dir={examples}", "--feature_config=synthetic-lbs")
  with pytest.raises(cli_flags.UserError, match="give --feature_config"):
    parse(f"--examples_dir={tmp_path / 'elsewhere'}")


def test_an_empty_eval_split_fails_before_the_pipeline(tmp_path, parse):
  with pytest.raises(cli_flags.UserError, match="the eval split is empty"):
    parse(f"--examples_dir={_examples_dir(tmp_path, eval_examples=0)}")


def test_unknown_config_field_is_an_error(tmp_path, parse):
  config = tmp_path / "run.yaml"
  config.write_text("examples_dir: /x\ntrain_stepz: 5\n")
  with pytest.raises(Exception, match="train_stepz"):
    parse(f"--config={config}")


def test_model_hyper_parameters_from_yaml_and_flags(tmp_path, parse):
  config = tmp_path / "run.yaml"
  config.write_text("examples_dir: /data/examples\nfeature_config: movielens\n"
                    "model_overrides: {d_t: 48, ns_hidden: [96]}\n")
  cfg = parse(f"--config={config}", "--model=num_blocks=3,d_t=64", "--learning_rate=0.003")
  assert cfg.model_overrides == {"d_t": 64, "ns_hidden": [96], "num_blocks": 3} and cfg.learning_rate == 0.003
  from hemix_tf.model.config import preset
  model = preset(cfg.model_preset, **cfg.model_overrides)
  assert (model.d_t, model.ns_hidden, model.num_blocks) == (64, (96,), 3)
  with pytest.raises(ValueError, match=r"unknown HeMixConfig hyper-parameter\(s\) \['d_model'\]"):
    parse(f"--config={config}", "--model=d_model=64")
  with pytest.raises(cli_flags.UserError, match="--model: 'd_t': expected name=value"):
    parse(f"--config={config}", "--model=d_t")


@pytest.mark.parametrize("argv, message", [
    (["--model=num_blocks=-1"], "num_blocks=-1 must not be negative"),
    (["--model=d_t=abc"], "d_t='abc' must be a number"),
    (["--model=d_t=0"], "d_t=0 must be at least 1"),
    (["--model=ns_hidden=[0]"], r"ns_hidden=\(0,\) must be positive integers"),
    (["--train_steps=-5"], "train_steps=-5 must be a positive integer"),
    (["--learning_rate=0"], "learning_rate=0.0 must be positive"),
])
def test_every_hyper_parameter_is_checked_before_the_pipeline_runs(tmp_path, parse, argv, message):
  with pytest.raises(ValueError, match=message):
    parse(f"--examples_dir={_examples_dir(tmp_path)}", *argv)


def test_the_sequence_jobs_sizes_are_checked_in_one_line(monkeypatch, capsys):
  from pipelines import sequence_job_cli
  monkeypatch.setattr(sys, "argv", ["hemix-sequence-job", "--impressions=/i", "--events=/e", "--output_dir=/o",
                                    "--eval_start_timestamp=5", "--feature_config=movielens", "--num_buckets=-3"])
  with pytest.raises(SystemExit) as exit_:
    sequence_job_cli.run_cli()
  err = capsys.readouterr().err
  assert exit_.value.code == 2 and err.count("\n") == 1 and "num_buckets=-3 must be a positive integer" in err
