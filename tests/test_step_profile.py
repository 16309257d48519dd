"""benchmarks/step_profile.py: the op-level breakdown of a real profiler trace."""
import os
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from step_profile import classify, op_breakdown, self_times  # noqa: E402


def test_self_time_excludes_nested_events():
  # a [0, 10) holds b [1, 4) which holds c [2, 3); d [10, 12) follows a (times in ps, results in ms)
  events = [("a", 0, 10e9), ("b", 1e9, 3e9), ("c", 2e9, 1e9), ("d", 10e9, 2e9)]
  assert sorted(self_times(events)) == [("a", 7.0), ("b", 2.0), ("c", 1.0), ("d", 2.0)]


def test_classify():
  assert classify("he_mix/embedding/concat_1:ConcatV2") == ("tf_op", "ConcatV2")
  assert classify("dot.3") == ("xla", "dot")
  assert classify("MatMul_1.48") == ("xla", "MatMul_1")
  assert classify("wrapped_reduce-window") == ("xla", "wrapped_reduce-window")
  for runtime in ("ThunkExecutor::Execute", "BlockUntilReady", "ParallelFor"):
    assert classify(runtime)[0] == "runtime"


def test_breakdown_of_a_traced_step_separates_kernels_from_an_xla_cluster(tmp_path):
  a = tf.random.normal([512, 512])
  eager = tf.function(lambda x: tf.matmul(x, x))
  compiled = tf.function(lambda x: tf.nn.relu(tf.matmul(x, x)) * 2.0, jit_compile=True)
  eager(a), compiled(a)  # trace and compile outside the profile
  tf.profiler.experimental.start(str(tmp_path))
  for _ in range(2):
    eager(a).numpy(), compiled(a).numpy()
  tf.profiler.experimental.stop()
  breakdown = op_breakdown(str(tmp_path), steps=2)
  assert any("MatMul" in group for group in breakdown["top_tf_op_ms_per_step"])  # MatMul or oneDNN's
  assert any(group.startswith(("dot", "MatMul")) for group in breakdown["top_xla_ms_per_step"])
  assert set(breakdown["thread_ms_per_step"]) <= {"tf_op", "xla", "runtime"}


def test_a_directory_without_a_trace_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no profiler trace"):
    op_breakdown(str(tmp_path), steps=1)
