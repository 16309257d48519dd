"""The 1M-impression one-epoch comparison of issue 19 as JSON: HeMix (default preset), HeMix (`paper`
preset), DLRM and the oracle, click AUC over seeds on the eval split.

  .venv/bin/python benchmarks/synthetic_1m_epoch.py [--seeds=3] [--output_dir=runs/experiments]
Protocol: the harness's (hemix_tf/experiments/harness.py): 1M synthetic impressions, the standard time
split, one epoch of batch 256, Adam 1e-3, every model the same. Runs are stored and resumed by the harness
(table2 suite), so a second call prints the stored figures at once. About 15 minutes of training per
run on 2 cores.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json

from absl import app, flags

from hemix_tf.experiments.harness import ExperimentConfig, oracle_auc, run_grid

flags.DEFINE_integer("seeds", 3, "Seeds per model.")
flags.DEFINE_string("output_dir", "runs/experiments", "The harness's output directory.")
FLAGS = flags.FLAGS
MODELS = ("HeMix", "HeMix (paper)", "DLRM")


def main(argv):
  del argv
  results = run_grid(ExperimentConfig(suite="table2", dataset="synthetic", output_dir=FLAGS.output_dir,
                                      seeds=FLAGS.seeds, models=MODELS))
  print(json.dumps({
      "protocol": "1M synthetic impressions, one epoch, batch 256, Adam 1e-3, eval split",
      "oracle_click_auc": oracle_auc(results),
      **{name: {"click_auc_mean": row["click"]["auc"]["mean"], "click_auc_std": row["click"]["auc"]["std"],
                "click_auc_values": row["click"]["auc"]["values"]}
         for name, row in results["models"].items()}}, indent=2))


if __name__ == "__main__":
  app.run(main)
