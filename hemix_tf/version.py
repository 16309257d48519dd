"""The code version recorded with every model and used to invalidate the pipeline's Transform / Trainer cache."""
import hashlib
from pathlib import Path


def code_version(root: Path | None = None) -> str:
  """A hash of every module and packaged feature config of the package under `root` (default: this one).
  TFX's cache fingerprints only the one-line module files, so a hash of less than the whole package can
  go stale (it once left out data/preprocessing.py)."""
  root = root or Path(__file__).resolve().parent
  digest = hashlib.sha256()
  for path in sorted([*root.rglob("*.py"), *root.glob("configs/*.yaml")]):
    digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
  return digest.hexdigest()[:16]
