"""The code version recorded with every model and used to invalidate the pipeline's Trainer cache."""
import hashlib
from pathlib import Path

# What a trained model depends on: the model, the trainer, the example format and the feature configs
# (not the data adapters, the CLIs or the demo).
TRAINING_CODE = ("model/*.py", "trainer.py", "distribute.py", "data/examples.py", "data/contract.py",
                 "data/feature_config.py", "configs/*.yaml")


def code_version() -> str:
  """A hash of the training code (TFX's cache only fingerprints the one-line module file)."""
  root = Path(__file__).resolve().parent
  digest = hashlib.sha256()
  for path in sorted(p for pattern in TRAINING_CODE for p in root.glob(pattern)):
    digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
  return digest.hexdigest()[:16]
