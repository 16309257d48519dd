"""Run in a fresh process: load a SavedModel, replay its TF Serving warm-up requests, compare every output
with the response logged at export (exactly). Prints JSON {signature: examples}; exits 1 on a mismatch.

  python tests/replay_warmup.py <saved_model_dir>
"""
import json
import sys

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from hemix_tf.model.warmup import WARMUP_FILE

if __name__ == "__main__":
  model_dir = sys.argv[1]
  model = tf.saved_model.load(model_dir)
  replayed = {}
  for record in tf.data.TFRecordDataset(f"{model_dir}/{WARMUP_FILE}").as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record).predict_log
    signature = model.signatures[log.request.model_spec.signature_name]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in log.request.inputs.items()}
    outputs = signature(**inputs)
    assert set(outputs) == set(log.response.outputs), (set(outputs), set(log.response.outputs))
    for key, expected in log.response.outputs.items():
      if not np.array_equal(outputs[key].numpy(), tf.make_ndarray(expected)):
        print(f"{log.request.model_spec.signature_name}/{key}: replay differs", file=sys.stderr)
        sys.exit(1)
    replayed[log.request.model_spec.signature_name] = int(outputs[key].shape.num_elements())
  print(json.dumps(replayed))
