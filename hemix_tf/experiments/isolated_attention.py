"""An instrument for "can one target attention read the user's interest from a sequence at all?"
(docs/ARCHITECTURE.md, "Why HeMix plateaued", findings 5 and 13).

One query, the candidate's category embedding, attends over one behaviour sequence; a small MLP reads
the attention output and predicts the click. Nothing else of the example is seen, so the model can at
best learn what that sequence says about the candidate's category. Beside its learning curve it reports
the untrained heuristic it should approach: the share of the sequence's events in the candidate's
category. On the synthetic logs, on the validation split carved from train (never eval).

  readout   sigmoid | softmax | sink   MixedHeteroAttention with that normalisation (QK-norm, event norm)
            dot                        DLRM's interaction instead: the candidate's embedding times the
                                       masked mean event, element-wise, and their dot product
  keys      event      every event's concatenated side-info embeddings (as in HeMix)
            category   the events' category embeddings only
  search    the attention reads only the events of the candidate's category (SIM's hard search,
            HeMixConfig.global_search): the gates no longer have to find them

  python -m hemix_tf.experiments.isolated_attention --data_dir=runs/exp100k/synthetic/data \\
      --sequence=global --readout=sigmoid --keys=event --steps=600
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import flags

from hemix_tf import cli_flags
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.examples import make_dataset, sequence_feature
from hemix_tf.data.feature_config import FeatureConfig, load_feature_config
from hemix_tf.data.padding import padded, sequence_length
from hemix_tf.experiments.harness import validation_split
from hemix_tf.metrics import auc
from hemix_tf.model.config import HeMixConfig, preset
from hemix_tf.model.embedding import FeatureEmbedding
from hemix_tf.model.search import search_mask
from hemix_tf.model.tokenization import MixedHeteroAttention
from hemix_tf.model.training import hashing_preprocessor

CATEGORY = "category"
READOUTS = ("sigmoid", "softmax", "sink", "dot")
KEYS = ("event", "category")


def category_share(features: dict, fc: FeatureConfig, sequence: str) -> tf.Tensor:
  """[B]: the share of the sequence's real events whose category is the candidate's (0 if empty)."""
  ids, mask = padded(features, sequence_feature(sequence, CATEGORY), sequence_length(fc, sequence))
  same = tf.cast(ids == tf.reshape(features[CATEGORY], [-1, 1]), tf.float32) * mask
  return tf.math.divide_no_nan(tf.reduce_sum(same, axis=1), tf.reduce_sum(mask, axis=1))


class IsolatedTargetAttention(keras.Model):
  """Encoded features -> click probability [B] from one sequence and the candidate's category only."""

  def __init__(self, fc: FeatureConfig, config: HeMixConfig, table_sizes: dict, sequence: str,
               readout: str, keys: str, search: bool = False, width: int = 16, hidden: int = 64):
    super().__init__()
    if readout not in READOUTS or keys not in KEYS:
      raise ValueError(f"readout must be one of {READOUTS} and keys one of {KEYS}")
    if search and readout == "dot":
      raise ValueError("the search restricts an attention: it needs a sigmoid, softmax or sink read-out")
    self.fc, self.sequence, self.readout, self.keys, self.width = fc, sequence, readout, keys, width
    self.search = search
    self.embedding = FeatureEmbedding(fc, config, table_sizes, name="embedding")
    if readout != "dot":
      self.attention = MixedHeteroAttention(1, width, 2 * width, 2, readout, qk_norm=True, event_norm=True)
    self.hidden = keras.layers.Dense(hidden, activation="relu")
    self.logit = keras.layers.Dense(1)

  def call(self, features: dict) -> tf.Tensor:
    query = self.embedding._lookup(CATEGORY, features[CATEGORY])  # [B, width of the item group]
    if self.keys == "category":
      name = sequence_feature(self.sequence, CATEGORY)
      ids, mask = padded(features, name, sequence_length(self.fc, self.sequence))
      events = self.embedding._lookup(name, ids) * mask[..., None]
    else:
      events, mask = self.embedding.sequence(features, self.sequence)
    if self.readout == "dot":
      mean = tf.math.divide_no_nan(tf.reduce_sum(events, axis=1), tf.reduce_sum(mask, axis=1, keepdims=True))
      crossed = query * mean[:, :query.shape[-1]]  # category keys: the same width as the query
      x = tf.concat([crossed, tf.reduce_sum(crossed, axis=-1, keepdims=True)], axis=-1)
    else:
      ids, _ = padded(features, sequence_feature(self.sequence, CATEGORY), sequence_length(self.fc, self.sequence))
      search = search_mask(ids, features[CATEGORY]) if self.search else None
      x = self.attention([query[:, None, :self.width], events, mask], search=search)[:, 0]
    return tf.sigmoid(self.logit(self.hidden(x)))[:, 0]


def run(data_dir: str, sequence: str, readout: str, keys: str, steps: int, search: bool = False, every: int = 100,
        seed: int = 0, validation_examples: int = 10_240) -> dict:
  data = Path(data_dir)
  manifest = read_manifest(data / "raw")
  job = json.loads((data / "examples" / "job_summary.json").read_text())
  fc = load_feature_config(manifest["feature_config"])
  config = preset("cpu-small")
  preprocessor = hashing_preprocessor(fc, config)
  split = validation_split(job, 0.1)
  keras.utils.set_random_seed(seed)
  train = make_dataset(split.train_files, preprocessor.raw_spec, 256, shuffle_buffer=50_000, repeat=True,
                       seed=seed, preprocess=preprocessor, timestamps=split.train_timestamps)
  validation = list(make_dataset(split.eval_files, preprocessor.raw_spec, 1024, preprocess=preprocessor,
                                 timestamps=split.eval_timestamps).take(-(-validation_examples // 1024)))
  labels = np.concatenate([b["click"].numpy() for b in validation])
  heuristic = auc(labels, np.concatenate([category_share(b, fc, sequence).numpy() for b in validation]))
  model = IsolatedTargetAttention(fc, config, preprocessor.table_sizes, sequence, readout, keys, search)
  model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy())
  curve = []
  for step in range(every, steps + 1, every):
    model.fit(train.map(lambda f: (f, f["click"])), steps_per_epoch=every, epochs=1, verbose=0)
    curve.append({"step": step, "validation_auc": auc(labels, np.concatenate([model(b).numpy() for b in validation]))})
    print(json.dumps(curve[-1]), flush=True)
  return {"sequence": sequence, "readout": readout, "keys": keys, "search": search, "heuristic_share_auc": heuristic, "curve": curve}


FLAGS = flags.FlagValues()
flags.DEFINE_string("data_dir", None, "The harness's <output_dir>/synthetic/data.", required=True, flag_values=FLAGS)
flags.DEFINE_enum("sequence", "global", ["global", "realtime"], "The sequence attended over.", flag_values=FLAGS)
flags.DEFINE_enum("readout", "sigmoid", list(READOUTS), "Attention normalisation, or DLRM's dot.", flag_values=FLAGS)
flags.DEFINE_enum("keys", "event", list(KEYS), "What each event is made of.", flag_values=FLAGS)
flags.DEFINE_bool("search", False, "Attend only to the events of the candidate's category (SIM hard search).",
                  flag_values=FLAGS)
flags.DEFINE_integer("steps", 600, "Training steps of 256.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed.", flag_values=FLAGS)


def main(argv):
  del argv
  print(json.dumps(run(FLAGS.data_dir, FLAGS.sequence, FLAGS.readout, FLAGS.keys, FLAGS.steps, FLAGS.search,
                       seed=FLAGS.seed)))


if __name__ == "__main__":
  cli_flags.run(main, FLAGS, __doc__)
