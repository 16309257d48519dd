"""hemix-tf against FuxiCTR on identical inputs: MovieLens-100K's fixed protocol (issue 38), JSON.

  .venv/bin/python benchmarks/public_library_parity.py --source_dir=../shared/data/ml-100k \\
      --fuxictr_python=/tmp/fuxictr/bin/python [--seeds=3] [--output_dir=runs/experiments]
(the FuxiCTR interpreter: benchmarks/fuxictr_dnn.py says how to make one.)

The examples the harness trains on are exported with the columns the models read
(hemix_tf/experiments/export.py), for the eval split and for the validation split carved from train;
FuxiCTR's DNN trains on the CSV (benchmarks/fuxictr_dnn.py) and this repository's DNN on the examples,
each with and without the sequences, the same seeds, 3 epochs of 512, Adam 1e-3, embeddings 16. Printed
per split and model: click AUC after every epoch (mean over seeds), the last epoch's values, and
FuxiCTR minus hemix-tf. The hemix-tf runs are the harness's (stored and resumed, table2 suite).
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from hemix_tf.experiments.export import export_split
from hemix_tf.experiments.harness import ExperimentConfig, eval_split, prepare_examples, run_grid, validation_split

flags.DEFINE_integer("seeds", 3, "Seeds per model and library.")
flags.DEFINE_string("output_dir", "runs/experiments", "The harness's output directory.")
flags.DEFINE_string("source_dir", None, "The ML-100K atomic files (default: the recbole wheel's, downloaded).")
flags.DEFINE_string("fuxictr_python", None, "An interpreter with FuxiCTR (benchmarks/fuxictr_dnn.py).")
flags.mark_flag_as_required("fuxictr_python")
FLAGS = flags.FLAGS
PROTOCOL = {"batch_size": 512, "epochs": 3, "sequence_lengths": (50, 20), "embedding_dim": 16}
MODELS = {"DNN": False, "DNN w/o sequences": True}  # hemix-tf name: without sequences


def summary(curves: list[list[float]]) -> dict:
  c = np.array(curves)
  return {"per_epoch_mean": c.mean(axis=0).round(4).tolist(), "last_epoch": c[:, -1].round(4).tolist(),
          "last_epoch_mean": round(float(c[:, -1].mean()), 4)}


def fuxictr_curves(split_dir: Path, without_sequences: bool, seeds: int) -> list[list[float]]:
  script = Path(__file__).with_name("fuxictr_dnn.py")
  curves = []
  for seed in range(seeds):
    command = [FLAGS.fuxictr_python, str(script), f"--split_dir={split_dir}", f"--seed={seed}"]
    out = subprocess.run(command + (["--without_sequences"] if without_sequences else []), check=True,
                         capture_output=True, text=True).stdout
    curves.append([e["click_auc"] for e in json.loads(out.strip().splitlines()[-1])["curve"]])
  return curves


def hemix_curves(cfg: ExperimentConfig) -> dict[str, list[list[float]]]:
  with contextlib.redirect_stdout(sys.stderr):
    results = run_grid(cfg)
  runs = Path(cfg.output_dir) / cfg.dataset / cfg.suite / ("validation" if cfg.on_validation else "runs")
  runs = runs / results["protocol"]
  return {name: [[c["metrics"]["click"]["auc"] for c in json.loads(
      (runs / name.replace("/", "_") / f"seed{s}.json").read_text())["curve"]] for s in range(cfg.seeds)]
          for name in MODELS}


def main(argv):
  del argv
  report = {"protocol": "ML-100K, click = rating >= 4, 3 epochs of 512, embeddings 16, Adam 1e-3, L_G 50 / "
                        "L_R 20, the last epoch's weights; identical examples and columns", "seeds": FLAGS.seeds}
  for on_validation in (False, True):
    cfg = ExperimentConfig(suite="table2", dataset="ml-100k", output_dir=FLAGS.output_dir, seeds=FLAGS.seeds,
                           models=tuple(MODELS), source_dir=FLAGS.source_dir, on_validation=on_validation,
                           **PROTOCOL)
    manifest, job = prepare_examples(cfg)
    split = validation_split(job, cfg.validation_fraction) if on_validation else eval_split(job)
    split_dir = Path(cfg.output_dir) / cfg.dataset / "exported" / split.name
    exported = export_split(split.train_files, split.eval_files, cfg.feature_config(manifest), split_dir,
                            split.train_timestamps, split.eval_timestamps)
    ours = hemix_curves(cfg)
    rows = {}
    for name, without_sequences in MODELS.items():
      theirs = summary(fuxictr_curves(split_dir, without_sequences, cfg.seeds))
      mine = summary(ours[name])
      rows[name] = {"hemix-tf": mine, "FuxiCTR": theirs,
                    "FuxiCTR_minus_hemix_tf": round(theirs["last_epoch_mean"] - mine["last_epoch_mean"], 4)}
    report[split.name] = {"examples": exported, "models": rows}
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
