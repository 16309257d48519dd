"""The TFX pipeline's settings (pipelines/pipeline.py), importable without TFX (the CLI's --help)."""
from __future__ import annotations

import dataclasses

from hemix_tf.data.feature_config import VOCABULARY_MIN_COUNT
from pipelines.local_runner import LOCAL_OPTIONS

DEFAULT_IMAGE = "hemix-tf-pipeline:0.1.0"  # docker/pipeline.Dockerfile
EVALUATOR_WORKERS_FROM = 20_000  # eval examples: 10k ran 1.5x slower in two workers, 100k 1.5x faster


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  examples_dir: str  # the sequence job's output: train/ and eval/ TFRecords
  pipeline_root: str  # artifacts
  serving_dir: str  # Pusher's destination
  metadata_path: str  # SQLite ML Metadata (local runs)
  pipeline_name: str = "hemix"
  feature_config: str = "synthetic-lbs"
  model_preset: str = "cpu-small"
  model_overrides: dict = dataclasses.field(default_factory=dict)  # HeMixConfig fields, e.g. {"d_t": 64}
  train_steps: int = 400
  batch_size: int = 256
  learning_rate: float = 1e-3
  schema_path: str | None = None  # a curated schema.pbtxt: ImportSchemaGen instead of SchemaGen
  vocabulary_min_count: int = VOCABULARY_MIN_COUNT  # Transform: ids seen fewer times in train share the out-of-vocabulary row
  min_auc: float = 0.55  # blessing: eval AUC (click) at least this ...
  max_auc_drop: float = 0.01  # ... and at most this much below the latest blessed model
  warm_start_from: str | None = None  # a SavedModel of the same model (e.g. the pushed one): its weights start training
  beam_pipeline_args: tuple[str, ...] = LOCAL_OPTIONS
  # Local runs on the default runner: the Evaluator's Beam worker processes. 0: one per core when the
  # eval split has at least EVALUATOR_WORKERS_FROM examples (the sequence job's count), in memory below
  # (starting the workers costs more than they save); 1: in memory; N: N workers. TFMA's metrics are
  # Python per example: two workers on two cores evaluate 100k examples 1.5x as fast (docs/BENCHMARKS.md).
  evaluator_workers: int = 0

  def __post_init__(self):
    """Values no run could use fail here, before any component (one line from the CLI, exit 2)."""
    for name in ("train_steps", "batch_size", "vocabulary_min_count"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    if isinstance(self.evaluator_workers, bool) or not isinstance(self.evaluator_workers, int) \
        or self.evaluator_workers < 0:
      raise ValueError(f"evaluator_workers={self.evaluator_workers!r} must be 0 (automatic) or a positive integer")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate={self.learning_rate} must be positive")
    if not 0 <= self.min_auc <= 1 or self.max_auc_drop < 0:
      raise ValueError(f"min_auc={self.min_auc} must be in [0, 1] and max_auc_drop={self.max_auc_drop} >= 0")
