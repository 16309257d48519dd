"""Dense / embedding parameters and forward GFLOPs per example of every preset, with Eq. 24, as JSON.

  .venv/bin/python benchmarks/model_size.py
GFLOPs are TensorFlow's profiler count on the traced forward graph of one example with full-length
sequences (synthetic-lbs feature config: L_G = 256, L_R = 32). Building paper-large needs ~8 GB.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import time

from absl import app, flags

from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.model.accounting import eq24_params, forward_flops, parameter_counts
from hemix_tf.model.config import PRESETS, preset
from hemix_tf.model.hemix import HeMix
from hemix_tf.model.training import hashing_preprocessor

flags.DEFINE_list("presets", ["cpu-small", "paper-small", "paper-large"], "Presets to measure.")
flags.DEFINE_string("feature_config", "synthetic-lbs", "Feature config whose inputs the model takes.")
FLAGS = flags.FLAGS
PAPER_TABLE2 = {"paper-small": {"params_m": 101, "gflops": 1.89},
                "paper-large": {"params_m": 1484, "gflops": 27.58}}


def main(argv):
  del argv
  fc = load_feature_config(FLAGS.feature_config)
  rows = []
  for name in FLAGS.presets:
    start = time.perf_counter()
    config = preset(name)
    model = HeMix(fc, config, hashing_preprocessor(fc, config).table_sizes)
    counts = parameter_counts(model, fc)
    flops = forward_flops(model, fc)
    rows.append({"preset": name, "num_tokens": config.num_tokens, "d_t": config.d_t,
                 "num_blocks": config.num_blocks, **counts,
                 "eq24_params": eq24_params(config),
                 "dense_over_eq24": round(counts["dense_params"] / eq24_params(config), 3),
                 "forward_gflops": round(flops / 1e9, 3),
                 "paper_table2": PAPER_TABLE2.get(name), "build_seconds": round(time.perf_counter() - start, 1)})
    del model
  print(json.dumps({"benchmark": "model_size", "feature_config": FLAGS.feature_config,
                    "presets_available": sorted(PRESETS), "results": rows}, indent=2))


if __name__ == "__main__":
  app.run(main)
