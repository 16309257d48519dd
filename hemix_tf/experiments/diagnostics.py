"""Instruments for "where does HeMix lose the sequence signal" (docs/ARCHITECTURE.md, "Why HeMix plateaued").

On the synthetic logs, on the validation split carved from train (never eval), for one model and seed:
  learning curve    train loss and validation click AUC every `every` steps
  gradient norms    global L2 norm of the gradient per top-level module, on a fixed training batch
  attention entropy (HeMix) per sequence, the entropy of each query's weights over the real events,
                    divided by log(#events): 1.0 is uniform; sigmoid gates are normalised to sum 1 first
  linear probes     (HeMix, after training) a logistic regression on frozen activations of every stage
                    (the QMIE tokens O^G, O^R, the NS tokens, each block's output, the pooled vector)
                    predicting the generator's hidden quantities: the candidate's category is the day's
                    intent, and the user's long-term interest in it is above the median; held-out AUC

  python -m hemix_tf.experiments.diagnostics --data_dir=runs/exp100k/synthetic/data \\
      --models=HeMix,DLRM,RankMixer --steps=1000 --every=100 --output=runs/diagnostics.json
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import flags, logging
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hemix_tf import cli_flags
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.examples import make_dataset
from hemix_tf.data.feature_config import ITEM_ID, TIMESTAMP, USER_ID, load_feature_config
from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator
from hemix_tf.experiments.harness import validation_split
from hemix_tf.experiments.suites import SUITES
from hemix_tf.metrics import auc
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels

PROBE_TARGETS = ("intent_match", "interest_above_median")


def hidden_quantities(generator: SyntheticGenerator, users: np.ndarray, timestamps: np.ndarray,
                      items: np.ndarray) -> dict:
  """The generator's hidden state of each impression (user, timestamp, item): {"intent_match": 0/1,
  "interest": the user's long-term interest in the item's category}, [n] each."""
  out = {"intent_match": np.zeros(len(users), np.int64), "interest": np.zeros(len(users))}
  for user in np.unique(users):
    imp, _ = generator.user(int(user))
    index = {(t, i): k for k, (t, i) in enumerate(zip(imp["timestamp"], imp["item_id"]))}
    for row in np.flatnonzero(users == user):
      k = index[(timestamps[row], items[row])]
      out["intent_match"][row], out["interest"][row] = imp["intent_match"][k], imp["interest"][k]
  return out


def module_of(variable: tf.Variable) -> str:
  """The top-level layer a variable belongs to (e.g. `qmie_global`, `heteromixer_0`, `embedding`)."""
  parts = variable.name.split("/")
  return parts[1] if len(parts) > 2 else parts[0]


def gradient_norms(model: keras.Model, features: dict, labels: dict) -> dict:
  """{module: L2 norm of d(loss)/d(its variables)} on one batch."""
  with tf.GradientTape() as tape:
    outputs = model(features, training=True)
    loss = tf.add_n([model.loss[t](labels[t], outputs[t]) for t in labels])
  grads = tape.gradient(loss, model.trainable_variables)
  squares = defaultdict(float)
  for v, g in zip(model.trainable_variables, grads):
    if g is not None:
      g = tf.convert_to_tensor(g)  # embedding gradients are IndexedSlices
      squares[module_of(v)] += float(tf.reduce_sum(tf.square(g)))
  return {m: float(np.sqrt(s)) for m, s in sorted(squares.items())}


def attention_entropy(model: HeMix, features: dict) -> dict:
  """{sequence: mean normalised entropy of the attention rows with at least 2 real events} (1 = uniform)."""
  dynamic = model._dynamic_queries(model.ns_tokenizer(model.embedding.non_sequential(features)))
  out = {}
  for s, extractor in model.extractors.items():
    if not extractor.use_mixed_queries:
      continue
    events, mask = model.embedding.sequence(features, s)
    k, _ = extractor.attention.keys_values(events)
    queries = dynamic[s]
    if extractor.n_fixed:
      fixed = tf.tile(extractor.fixed_queries[None], [tf.shape(queries)[0], 1, 1])
      queries = tf.concat([queries, fixed], axis=1)
    att = extractor.attention.attention_weights(queries, slice(None), k, mask).numpy()  # [B, h, n, L]
    p = att / np.maximum(att.sum(-1, keepdims=True), 1e-12)
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(-1)  # [B, h, n]
    n_events = mask.numpy().sum(-1)
    rows = n_events >= 2
    if rows.any():
      out[s] = float((entropy[rows] / np.log(n_events[rows])[:, None, None]).mean())
  return out


def stage_activations(model: HeMix, features: dict) -> dict:
  """{stage: [B, width] frozen activations}: O^G, O^R, T_NS (flattened), each block's output, and the
  heads' input o (the mean of T_L, or with pooling="flatten" the concatenated tokens)."""
  groups = model.token_groups(features)
  stages = {f"tokens/{name}": t for name, t in groups.items()}
  outputs = model.mixed(tf.concat(list(groups.values()), axis=1))
  stages.update({f"block_{i}": t for i, t in enumerate(outputs)})
  stages["pooled"] = model.pool(outputs[-1] if outputs else tf.concat(list(groups.values()), axis=1))
  return {name: tf.reshape(t, [tf.shape(t)[0], -1]).numpy() for name, t in stages.items()}


def linear_probes(activations: dict, targets: dict) -> dict:
  """{stage: {target: held-out AUC of a logistic regression on the stage's activations}} (first half
  of the examples fits, second half scores)."""
  half = len(next(iter(targets.values()))) // 2
  out = {}
  for stage, x in activations.items():
    out[stage] = {}
    for name, y in targets.items():
      probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
      probe.fit(x[:half], y[:half])
      out[stage][name] = float(roc_auc_score(y[half:], probe.predict_proba(x[half:])[:, 1]))
  return out


class Instruments(keras.callbacks.Callback):
  """Every `every` steps: mean train loss since the last point, validation click AUC, gradient norms per
  module (on `probe_batch`) and, for HeMix, attention entropy."""

  def __init__(self, every: int, validation: list[dict], probe_batch: tuple[dict, dict]):
    super().__init__()
    self.every, self.validation, self.probe_batch = every, validation, probe_batch
    self.curve, self._losses = [], []

  def _point(self, step: int):
    labels = np.concatenate([b["click"].numpy() for b in self.validation])
    preds = np.concatenate([self.model(b, training=False)["click"].numpy() for b in self.validation])
    point = {"step": step, "train_loss": float(np.mean(self._losses)) if self._losses else None,
             "validation_auc": auc(labels, preds), "gradient_norms": gradient_norms(self.model, *self.probe_batch)}
    if isinstance(self.model, HeMix):
      point["attention_entropy"] = attention_entropy(self.model, self.probe_batch[0])
    self.curve.append(point)
    self._losses = []
    logging.warning("step %d: %s", step, {k: v for k, v in point.items() if k != "gradient_norms"})

  def on_train_begin(self, logs=None):
    self._point(0)

  def on_train_batch_end(self, batch, logs=None):
    self._losses.append(logs["loss"])
    step = int(self.model.optimizer.iterations.numpy())
    if step % self.every == 0:
      self._point(step)


def diagnose(data_dir: str, name: str, steps: int, every: int, seed: int = 0, probe_examples: int = 8192,
             batch_size: int = 256, learning_rate: float = 1e-3) -> dict:
  """Trains `name` (a table2 / ablation suite model) on train minus validation with the instruments."""
  data = Path(data_dir)
  manifest = read_manifest(data / "raw")
  job = json.loads((data / "examples" / "job_summary.json").read_text())
  config = {**SUITES["table2"], **SUITES["ablation"]}[name]
  fc = load_feature_config(manifest["feature_config"])
  preprocessor = hashing_preprocessor(fc, config)
  split = validation_split(job, 0.1)
  keras.utils.set_random_seed(seed)

  def keep_keys(raw):
    return {**preprocessor(raw), "raw_user": raw[USER_ID], "raw_item": raw[ITEM_ID], "raw_ts": raw[TIMESTAMP]}

  train = make_dataset(split.train_files, preprocessor.raw_spec, batch_size, shuffle_buffer=50_000, repeat=True,
                       seed=seed, preprocess=preprocessor, timestamps=split.train_timestamps)
  validation = list(make_dataset(split.eval_files, preprocessor.raw_spec, 1024, preprocess=keep_keys,
                                 timestamps=split.eval_timestamps).take(-(-probe_examples // 1024)))
  model = build_and_compile(fc, config, preprocessor.table_sizes, learning_rate)
  labelled = train.map(lambda f: with_labels(f, config.tasks))
  instruments = Instruments(every, validation, next(iter(labelled)))
  model.fit(labelled, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[instruments])
  result = {"model": name, "seed": seed, "steps": steps, "curve": instruments.curve}
  if isinstance(model, HeMix):
    keys = {k: np.concatenate([b[k].numpy() for b in validation]) for k in ("raw_user", "raw_ts", "raw_item")}
    generator = SyntheticGenerator(SyntheticConfig(**manifest["synthetic"]), fc)
    hidden = hidden_quantities(generator, keys["raw_user"], keys["raw_ts"], keys["raw_item"])
    targets = {"intent_match": hidden["intent_match"],
               "interest_above_median": (hidden["interest"] > np.median(hidden["interest"])).astype(int)}
    activations = defaultdict(list)
    for b in validation:
      for stage, x in stage_activations(model, b).items():
        activations[stage].append(x)
    result["probes"] = linear_probes({k: np.concatenate(v) for k, v in activations.items()}, targets)
  return result


FLAGS = flags.FlagValues()
flags.DEFINE_string("data_dir", None, "The harness's <output_dir>/synthetic/data.", required=True, flag_values=FLAGS)
flags.DEFINE_list("models", ["HeMix", "DLRM", "RankMixer"], "table2 / ablation suite models.", flag_values=FLAGS)
flags.DEFINE_integer("steps", 1000, "Training steps of 256.", flag_values=FLAGS)
flags.DEFINE_integer("every", 100, "Steps between two points of the curves.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed.", flag_values=FLAGS)
flags.DEFINE_string("output", "runs/diagnostics.json", "JSON written here.", flag_values=FLAGS)


def main(argv):
  del argv
  results = []
  for name in FLAGS.models:
    results.append(diagnose(FLAGS.data_dir, name, FLAGS.steps, FLAGS.every, FLAGS.seed))
    Path(FLAGS.output).write_text(json.dumps(results, indent=2) + "\n")
  print(json.dumps([{"model": r["model"], "final_validation_auc": r["curve"][-1]["validation_auc"],
                     "probes": r.get("probes")} for r in results], indent=2))


if __name__ == "__main__":
  cli_flags.run(main, FLAGS, __doc__)
