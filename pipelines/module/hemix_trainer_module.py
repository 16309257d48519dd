"""TFX Trainer module file: alone in its directory because TFX packages every .py beside it."""
from hemix_tf.trainer import run_fn  # noqa: F401  (the Trainer looks up `run_fn` here)
