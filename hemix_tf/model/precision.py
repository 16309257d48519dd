"""The compute precision of HeMix's interaction (HeMixConfig.precision): everything after the embedding
lookups (Eqs. 2-22) in bfloat16 with float32 weights, Keras' "mixed_bfloat16" dtype policy.

On this machine's CPUs (AMX / AVX-512 BF16) TensorFlow's oneDNN kernels multiply bfloat16 matrices
several times faster than float32 ones (docs/BENCHMARKS.md); XLA's CPU backend does not, so mixed
precision pays with `xla="off"`. The embedding tables, their lookups, the loss and the probabilities stay
float32: only the interaction's inputs are cast, and the heads' logits are cast back before the sigmoid.

A layer's policy is fixed when it is constructed, from the global policy: `policy_scope` sets it while
HeMix constructs its interaction layers, and a layer that creates sub-layers in `build` passes its own
policy on (`dtype=self.dtype_policy`). Variables read inside a layer's `__call__` are cast to its compute
dtype; `autocast` does the same around the methods that are called directly (decoupled scoring).
"""
from __future__ import annotations

import contextlib

import tensorflow as tf
import tf_keras as keras
from tf_keras.src.mixed_precision.autocast_variable import enable_auto_cast_variables


@contextlib.contextmanager
def policy_scope(precision: str):
  """Layers constructed under it get the dtype policy `precision`."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(precision)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def compute_dtype(precision: str) -> tf.DType:
  return tf.as_dtype(keras.mixed_precision.Policy(precision).compute_dtype)


def autocast(precision: str):
  """Float32 variables read under it come out in the compute dtype of `precision`."""
  return enable_auto_cast_variables(compute_dtype(precision))


def cast_floats(structure, dtype: tf.DType):
  """Every floating tensor of a nested structure cast to `dtype` (integers and None unchanged)."""
  return tf.nest.map_structure(
      lambda t: tf.cast(t, dtype) if t is not None and t.dtype.is_floating else t, structure)
