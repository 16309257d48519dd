"""TFX Transform module file (TFX packages every .py in this directory; keep it small)."""
from hemix_tf.data.preprocessing import preprocessing_fn  # noqa: F401  (the Transform looks it up here)
