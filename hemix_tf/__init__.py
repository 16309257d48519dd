"""HeMix CTR ranking on TensorFlow / Keras 2.

TFX, TFMA, Beam's TF model handler and tensorflow-recommenders resolve `tf.keras` lazily and need it to
be Keras 2 (tf_keras): every entry point (console scripts, the TFX module file, tests) imports this
package first, so the default is set here, before anything touches `tf.keras`. An explicit value in the
environment wins.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
