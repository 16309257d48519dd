"""Latency of one ranking request (one user, M candidates): the decoupled `score_candidates` signature
against `serving_default` on the M joined examples, same requests, as JSON.

  .venv/bin/python benchmarks/serving_latency.py --presets=cpu-small,paper-small
Requests are serialized tf.Examples with full-length sequences (L_G, L_R: the largest shapes); the
signature functions are the ones exported (hemix_tf.model.export.Signatures), called in process on
this CPU, so the figures exclude TF Serving's RPC and batching. Untrained weights: latency does not
depend on their values.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.config import preset
from hemix_tf.model.export import Signatures
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.training import hashing_preprocessor
from hemix_tf.model.warmup import warmup_features

flags.DEFINE_list("presets", ["cpu-small", "paper-small"], "Model presets.")
flags.DEFINE_list("candidates", ["1", "50", "200", "1000"], "M, candidates per request.")
flags.DEFINE_integer("repeats", 20, "Timed requests per (preset, M, signature), after 2 warm-up ones.")
flags.DEFINE_float("max_seconds", 60.0, "Stop repeating a (preset, M, signature) after this long.")
FLAGS = flags.FLAGS


def _example(row: dict) -> bytes:
  feature = {}
  for name, values in row.items():
    if isinstance(values[0], bytes):
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    elif isinstance(values[0], float):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    else:
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def requests(fc, signatures: Signatures, m: int):
  """(user example, M candidate examples, M joined examples); candidates have distinct item ids."""
  features = warmup_features(fc, signatures.inputs, m)
  candidate_names = set(signatures.candidate_features)
  rows = [{name: list(values[i]) for name, values in features.items()} for i in range(m)]
  for i, row in enumerate(rows):
    row["item_id"] = [i + 1]
  user = _example({k: v for k, v in rows[0].items() if k not in candidate_names})
  candidates = [_example({k: v for k, v in row.items() if k in candidate_names}) for row in rows]
  joined = [_example(row) for row in rows]
  return user, candidates, joined


def timed(fn, repeats: int, max_seconds: float) -> list[float]:
  fn(), fn()  # warm-up
  times, start = [], time.perf_counter()
  while len(times) < repeats and time.perf_counter() - start < max_seconds:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return times


def main(argv):
  del argv
  fc = load_feature_config("synthetic-lbs")
  results = []
  for name in FLAGS.presets:
    config = preset(name)
    preprocessor = hashing_preprocessor(fc, config)
    model = HeMix(fc, config, preprocessor.table_sizes)
    signatures = Signatures(model, preprocessor, fc)
    functions = signatures.all()
    for m in map(int, FLAGS.candidates):
      user, candidates, joined = requests(fc, signatures, m)
      user_t, cand_t, joined_t = tf.constant([user]), tf.constant([candidates]), tf.constant(joined)
      decoupled = timed(lambda: functions["score_candidates"](user_example=user_t, candidates=cand_t)["click"]
                        .numpy(), FLAGS.repeats, FLAGS.max_seconds)
      per_example = timed(lambda: functions["serving_default"](examples=joined_t)["click"].numpy(),
                          FLAGS.repeats, FLAGS.max_seconds)
      row = {"preset": name, "candidates": m}
      for label, times in (("decoupled", decoupled), ("per_example", per_example)):
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        row[label] = {"p50_ms": round(1e3 * p50, 2), "p99_ms": round(1e3 * p99, 2),
                      "candidates_per_s": round(m / p50, 1), "requests_timed": len(times)}
      row["speedup_p50"] = round(row["per_example"]["p50_ms"] / row["decoupled"]["p50_ms"], 2)
      print(json.dumps(row), flush=True)
      results.append(row)
  print(json.dumps({"benchmark": "serving_latency", "cpu_count": os.cpu_count(),
                    "sequence_lengths": [fc.sequence.global_length, fc.sequence.realtime_length],
                    "results": results}, indent=2))


if __name__ == "__main__":
  app.run(main)
