"""The code version recorded with every model and used to invalidate the pipeline's Trainer cache."""
import hashlib
from pathlib import Path


def code_version() -> str:
  """A hash of the hemix_tf sources (TFX's cache only fingerprints the one-line module file)."""
  root = Path(__file__).resolve().parent
  digest = hashlib.sha256()
  for path in sorted(root.rglob("*.py")):
    digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
  return digest.hexdigest()[:16]
