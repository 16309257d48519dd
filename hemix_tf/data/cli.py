"""`hemix-data`: write a raw-log dataset directory (impressions, events, manifest) from an adapter.

  hemix-data --dataset=synthetic --num_impressions=1000000 --output_dir=runs/data/synthetic
  hemix-data --dataset=ml-100k --output_dir=runs/data/ml-100k          # recbole wheel, cached
  hemix-data --dataset=ml-100k --source_dir=path/to/ml-100k --output_dir=...        # its atomic files
  hemix-data --dataset=grouplens --source_dir=ml-1m --output_dir=...    # ratings.dat/users.dat/movies.dat
  hemix-data --dataset=amazon-grocery --source_dir=path/to/amazon-grocery --output_dir=...
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from absl import flags

from hemix_tf import cli_flags

from hemix_tf.data import amazon, movielens
from hemix_tf.data.dataset import write_dataset
from hemix_tf.data.feature_config import load_feature_config
from hemix_tf.data.synthetic import SyntheticConfig, SyntheticGenerator

DATASETS = {"synthetic": "synthetic-lbs", "ml-100k": "movielens", "grouplens": "movielens",
            "amazon-grocery": "amazon-grocery"}

FLAGS = flags.FlagValues()  # this CLI's own flags: importing it never clashes with another's
flags.DEFINE_enum("dataset", "synthetic", list(DATASETS), "Which adapter to run.", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Dataset directory to create (required).", flag_values=FLAGS)
flags.DEFINE_string("feature_config", None, "Feature config name or YAML path (default: the dataset's).",
                    flag_values=FLAGS)
flags.DEFINE_string("source_dir", None, "Input files (ml-100k: atomic files; grouplens; amazon-grocery).",
                    flag_values=FLAGS)
flags.DEFINE_string("cache_dir", "data_cache", "Where the recbole wheel is cached for ml-100k.",
                    flag_values=FLAGS)
flags.DEFINE_integer("num_impressions", 100_000, "synthetic: number of impressions.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "synthetic / amazon-grocery: random seed.", flag_values=FLAGS)
flags.DEFINE_float("avg_global_len", SyntheticConfig.avg_global_len, "synthetic: mean global length.",
                   flag_values=FLAGS)
flags.DEFINE_float("avg_realtime_len", SyntheticConfig.avg_realtime_len, "synthetic: mean real-time length.",
                   flag_values=FLAGS)
flags.DEFINE_integer("negatives_per_positive", 1, "amazon-grocery: sampled negatives per review.",
                     flag_values=FLAGS)
flags.DEFINE_enum("negatives", "catalogue", ["catalogue", "popularity"], "amazon-grocery: how negatives are "
                  "drawn: uniformly from the item catalogue (DIN's protocol) or in proportion to the month's "
                  "popularity (a harder task).", flag_values=FLAGS)


DEAD_LETTERS = "dead_letters.jsonl"


def build(dataset: str, output_dir: str, feature_config: str | None = None, source_dir: str | None = None,
          cache_dir: str = "data_cache", num_impressions: int = 100_000, seed: int = 0,
          avg_global_len: float = SyntheticConfig.avg_global_len,
          avg_realtime_len: float = SyntheticConfig.avg_realtime_len,
          negatives_per_positive: int = 1, negatives: str = "catalogue") -> dict:
  """Runs one adapter and writes the dataset directory; returns its manifest."""
  config = load_feature_config(feature_config or DATASETS[dataset])
  rejected = None  # the dead letters of a source whose lines can be rejected (GroupLens)
  if dataset == "synthetic":
    cfg = SyntheticConfig(num_impressions=num_impressions, seed=seed, avg_global_len=avg_global_len,
                          avg_realtime_len=avg_realtime_len, utc_offset_hours=config.day_utc_offset_hours)
    blocks, info = SyntheticGenerator(cfg, config).blocks(), {"synthetic": dataclasses.asdict(cfg)}
    total = num_impressions
  else:
    if dataset == "ml-100k":
      source = source_dir or movielens.fetch_ml100k(cache_dir)
      tables = movielens.to_contract(*movielens.read_atomic(source), config)
    elif dataset == "grouplens":
      if not source_dir:
        raise cli_flags.UserError("--dataset=grouplens needs --source_dir (ratings.dat, users.dat, movies.dat)")
      source = source_dir
      ratings, users, items, rejected = movielens.read_grouplens(source)
      tables = movielens.to_contract(ratings, users, items, config)
    else:
      if not source_dir:
        raise cli_flags.UserError("--dataset=amazon-grocery needs --source_dir (train.csv, item_meta.csv)")
      source = source_dir
      tables = amazon.to_contract(*amazon.read_grocery(source), config,
                                  negatives_per_positive=negatives_per_positive, seed=seed, negatives=negatives)
    blocks, info, total = [tables], {"source": str(Path(source).resolve())}, tables[0].num_rows
    if dataset == "amazon-grocery":
      info["negatives"] = negatives
    if rejected is not None:  # every source line is an impression or a dead letter
      info.update(source_records=total + len(rejected), rejected_records=len(rejected),
                  dead_letters=str(Path(output_dir).resolve() / DEAD_LETTERS))
  manifest = write_dataset(output_dir, config, blocks, total_impressions=total, info={"dataset": dataset, **info})
  if rejected is not None:
    with open(Path(output_dir) / DEAD_LETTERS, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rejected)
  return manifest


def main(argv):
  del argv
  manifest = build(FLAGS.dataset, FLAGS.output_dir, FLAGS.feature_config, FLAGS.source_dir,
                   FLAGS.cache_dir, FLAGS.num_impressions, FLAGS.seed, FLAGS.avg_global_len,
                   FLAGS.avg_realtime_len, FLAGS.negatives_per_positive, FLAGS.negatives)
  print(json.dumps(manifest, indent=2))
  print(f"dataset written to {Path(FLAGS.output_dir).resolve()}")


def run_cli():
  flags.mark_flag_as_required("output_dir", flag_values=FLAGS)
  cli_flags.run(main, FLAGS, __doc__, uses_tensorflow=False)


if __name__ == "__main__":
  run_cli()
