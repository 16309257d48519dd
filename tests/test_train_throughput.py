"""benchmarks/train_throughput.py: what the baseline revision's copy of the script is asked to run."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import train_throughput  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 7babdb4's copy defines neither mode flag; its flags, as it defines them:
SCRIPT_AT_7BABDB4 = '''flags.DEFINE_string("preset", "cpu-small", "Model preset.")
flags.DEFINE_integer("batch_size", 256, "Training batch size (the paper's).")
flags.DEFINE_integer("steps", 40, "Timed steps (after 5 warm-up steps).")'''


def test_the_baseline_revision_runs_in_the_same_xla_mode_when_its_script_knows_the_flag():
  """Before: the revision's copy never got --xla, so a revision with XLA was timed uncompiled against
  this tree compiled (its cpu-small at ~1,780 examples/s against ~2,300, a speed-up that was only XLA's)."""
  train_throughput.FLAGS(["train_throughput", "--xla=interaction", "--precision=mixed_bfloat16"])
  try:
    with open(os.path.join(REPO, "benchmarks", "train_throughput.py")) as f:
      assert train_throughput.mode_args(f.read()) == ["--xla=interaction", "--precision=mixed_bfloat16"]
    assert train_throughput.mode_args(SCRIPT_AT_7BABDB4) == []
  finally:
    train_throughput.FLAGS.unparse_flags()


def test_model_hyper_parameters_change_the_measured_config_of_this_tree_only():
  train_throughput.FLAGS(["train_throughput", "--preset=cpu-small", "--model=use_global_sequence=false,d_t=64",
                          "--precision=mixed_bfloat16"])
  try:
    config = train_throughput.model_config("float32")
    assert (config.use_global_sequence, config.d_t, config.precision, config.qk_norm) == (False, 64, "float32", True)
  finally:
    train_throughput.FLAGS.unparse_flags()
