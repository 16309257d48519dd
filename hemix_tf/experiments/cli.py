"""`hemix-experiment`: one suite on one dataset over seeds (hemix_tf/experiments/harness.py).

  hemix-experiment --suite=table2 --dataset=ml-100k --seeds=3
  hemix-experiment --suite=table3 --dataset=synthetic --synthetic_impressions=1000000
  hemix-experiment --suite=table4 --dataset=ml-100k --learning_rates=3e-4,1e-3,3e-3   # tuned on validation
  hemix-experiment --suite=table2 --dataset=ml-100k --models=HeMix,DLRM --batch_size=512 --epochs=3 \
      --sequence_lengths=50,20 --embedding_dim=16                                     # a fixed protocol
  hemix-experiment --suite=table2 --dataset=ml-100k --models=HeMix --set=d_t=16 --on_validation  # a screen
A killed grid resumes: finished runs are skipped.
"""
from __future__ import annotations

from absl import flags

from hemix_tf import cli_flags
from hemix_tf.experiments.suites import SUITES

FLAGS = flags.FlagValues()
flags.DEFINE_enum("suite", None, sorted(SUITES), "The suite (a table of the paper).", required=True,
                  flag_values=FLAGS)
flags.DEFINE_enum("dataset", None, ["ml-100k", "amazon-grocery", "synthetic"], "The dataset.", required=True,
                  flag_values=FLAGS)
flags.DEFINE_string("output_dir", "runs/experiments", "Data, runs and tables go here.", flag_values=FLAGS)
flags.DEFINE_integer("seeds", 3, "Seeds per model.", flag_values=FLAGS)
flags.DEFINE_integer("train_steps", 0, "Steps per run (0: --epochs passes over train).", flag_values=FLAGS)
flags.DEFINE_integer("epochs", 1, "Passes over train per run, when --train_steps is 0 (no early stopping, no "
                     "best-epoch selection: the model after the last step is scored).", flag_values=FLAGS)
flags.DEFINE_list("sequence_lengths", [], "L_G,L_R read by every model (the most recent events of the examples'; "
                  "default: the feature config's).", flag_values=FLAGS)
flags.DEFINE_integer("embedding_dim", None, "Every embedding's width for every model (default: the suite's).",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 256, "Batch size, the same for every model.", flag_values=FLAGS)
flags.DEFINE_list("learning_rates", ["1e-3"], "The learning rate, the same for every model; several: the one "
                  "with the best mean validation CTR AUC over the models is used.", flag_values=FLAGS)
flags.DEFINE_integer("warmup_steps", 0, "The learning rate rises linearly over these first steps, for every "
                     "model (0: constant from the first step).", flag_values=FLAGS)
flags.DEFINE_float("validation_fraction", 0.1, "The last share of train (by time) that tuning scores on.",
                   flag_values=FLAGS)
flags.DEFINE_integer("synthetic_impressions", 1_000_000, "Size of the synthetic dataset.", flag_values=FLAGS)
flags.DEFINE_string("source_dir", None, "The dataset's input files (amazon-grocery needs them; ml-100k "
                    "defaults to the recbole wheel's).", flag_values=FLAGS)
flags.DEFINE_enum("negatives", "catalogue", ["catalogue", "popularity"], "amazon-grocery: negatives drawn "
                  "uniformly from the catalogue (DIN's protocol) or by the month's popularity (a harder task; "
                  "use another --output_dir for each).", flag_values=FLAGS)
flags.DEFINE_list("models", [], "A subset of the suite's models.", flag_values=FLAGS)
flags.DEFINE_enum("id_encoding", "vocabulary", ["vocabulary", "hashing"], "vocabulary: the train split's "
                  "vocabularies with an out-of-vocabulary row, as the pipeline's Transform encodes ids (the shipped "
                  "model); hashing: every id hashed into the model's hash_buckets rows (each table's collision "
                  "rate goes to the run's log).", flag_values=FLAGS)
flags.DEFINE_integer("vocabulary_min_count", None, "With --id_encoding=vocabulary: values seen fewer times in "
                     "the run's training examples share the out-of-vocabulary row (default: the pipeline's).",
                     flag_values=FLAGS)
flags.DEFINE_string("embedding_init", "", "Every model's embedding start (to choose it on validation): empty "
                    "for the models' own, 'uniform' for Keras' uniform ±0.05, or the std of a normal start, e.g. 1e-4.",
                    flag_values=FLAGS)
flags.DEFINE_multi_string("set", [], "A screen: a name=value field of every model's config (a YAML value; "
                          "repeatable; with --models, e.g. --models=HeMix --set=d_t=16 --on_validation); such runs "
                          "are stored apart from the suite's.", flag_values=FLAGS)
flags.DEFINE_bool("on_validation", False, "Score every run on the validation split carved from train (to "
                  "choose between options), never on eval.", flag_values=FLAGS)


def main(argv) -> None:
  del argv
  from hemix_tf.experiments.harness import ExperimentConfig, markdown, run_grid  # TF: after the flags
  results = run_grid(ExperimentConfig(
      suite=FLAGS.suite, dataset=FLAGS.dataset, output_dir=FLAGS.output_dir, seeds=FLAGS.seeds,
      train_steps=FLAGS.train_steps, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      sequence_lengths=tuple(int(n) for n in FLAGS.sequence_lengths) or None, embedding_dim=FLAGS.embedding_dim,
      learning_rates=tuple(float(lr) for lr in FLAGS.learning_rates), warmup_steps=FLAGS.warmup_steps,
      validation_fraction=FLAGS.validation_fraction,
      synthetic_impressions=FLAGS.synthetic_impressions, models=tuple(FLAGS.models),
      on_validation=FLAGS.on_validation, source_dir=FLAGS.source_dir, id_encoding=FLAGS.id_encoding,
      embedding_init=FLAGS.embedding_init, negatives=FLAGS.negatives, overrides=tuple(FLAGS.set),
      **({"vocabulary_min_count": FLAGS.vocabulary_min_count} if FLAGS.vocabulary_min_count else {})))
  print(markdown(results))
  print(f"report: {results['report']}")


def run_cli():
  cli_flags.run(main, FLAGS, __doc__)


if __name__ == "__main__":
  run_cli()
