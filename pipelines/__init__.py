import hemix_tf  # noqa: F401  (first: it makes tf.keras Keras 2, see hemix_tf/__init__.py)
