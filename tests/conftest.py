"""Test setup: tf_keras (Keras 2) must be chosen before TensorFlow is imported; shared data paths."""
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
  path = SHARED_DATA / "ml-100k"
  assert path.is_dir(), f"{path} missing: CI must have ../shared beside the clone"
  return path


@pytest.fixture(scope="session")
def amazon_dir() -> Path:
  path = SHARED_DATA / "amazon-grocery"
  assert path.is_dir(), f"{path} missing: CI must have ../shared beside the clone"
  return path
