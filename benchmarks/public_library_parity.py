"""hemix-tf against FuxiCTR on identical inputs: MovieLens-100K's fixed protocol (issue 38), JSON.

  .venv/bin/python benchmarks/public_library_parity.py --source_dir=../shared/data/ml-100k \\
      --fuxictr_python=/tmp/fuxictr/bin/python [--seeds=3] [--output_dir=runs/experiments]
(the FuxiCTR interpreter: benchmarks/fuxictr_dnn.py says how to make one.)

The examples the harness trains on are exported with the columns the models read
(hemix_tf/experiments/export.py), for the eval split and for the validation split carved from train;
FuxiCTR's DNN trains on the CSV (benchmarks/fuxictr_dnn.py) and this repository's DNN on the examples,
each with and without the sequences, the same seeds, 3 epochs of 512, Adam 1e-3, embeddings 16. Printed
per split and model: click AUC after every epoch (mean over seeds), the last epoch's values, FuxiCTR
minus hemix-tf, and the last epoch's AUC per slice of users (warm: in the split's train; cold: not) with
its two parts, the order within each user (GAUC) and the users' order (between-user AUC), for both
libraries (docs/ARCHITECTURE.md, findings 35 and 39). The hemix-tf runs are the harness's (stored and
resumed, table2 suite).
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import contextlib
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from absl import app, flags

from hemix_tf.experiments.export import export_split
from hemix_tf.experiments.harness import ExperimentConfig, eval_split, prepare_examples, run_grid, validation_split
from run_summary import model_row, slices

flags.DEFINE_integer("seeds", 3, "Seeds per model and library.")
flags.DEFINE_string("output_dir", "runs/experiments", "The harness's output directory.")
flags.DEFINE_string("source_dir", None, "The ML-100K atomic files (default: the recbole wheel's, downloaded).")
flags.DEFINE_string("fuxictr_python", None, "An interpreter with FuxiCTR (benchmarks/fuxictr_dnn.py).")
flags.mark_flag_as_required("fuxictr_python")
FLAGS = flags.FLAGS
PROTOCOL = {"batch_size": 512, "epochs": 3, "sequence_lengths": (50, 20), "embedding_dim": 16}
MODELS = {"DNN": False, "DNN w/o sequences": True}  # hemix-tf name: without sequences


def eval_users(split_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The exported eval examples' clicks and user ids, and whether each user has a train example (warm)."""
  def rows(side: str) -> list[dict]:
    with open(split_dir / f"{side}.csv", newline="") as f:
      return list(csv.DictReader(f))
  train_users = {r["user_id"] for r in rows("train")}
  examples = rows("eval")
  users = np.array([r["user_id"] for r in examples])
  return np.array([float(r["click"]) for r in examples]), users, np.isin(users, list(train_users))


def fuxictr_runs(python: str, split_dir: Path, without_sequences: bool, seeds: int) -> list[dict]:
  """FuxiCTR's DNN (`benchmarks/fuxictr_dnn.py` in the interpreter `python`) per seed as a harness run: {"curve": [{"metrics": {"click": {"auc"}}, ...], "metrics":
  {"click": {"auc", "slices"}}} (the slices of its last epoch's scores)."""
  script = Path(__file__).with_name("fuxictr_dnn.py")
  labels, users, warm = eval_users(split_dir)
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    for seed in range(seeds):
      scores_out = Path(tmp) / f"seed{seed}.npz"
      command = [python, str(script), f"--split_dir={split_dir}", f"--seed={seed}",
                 f"--scores_out={scores_out}"]
      out = subprocess.run(command + (["--without_sequences"] if without_sequences else []), check=True,
                           capture_output=True, text=True).stdout
      curve = json.loads(out.strip().splitlines()[-1])["curve"]
      kept = np.load(scores_out)
      if not np.array_equal(kept["labels"], labels):
        raise RuntimeError(f"FuxiCTR scored {split_dir}/eval.csv in another order than its rows")
      runs.append({"curve": [{"metrics": {"click": {"auc": e["click_auc"]}}, "train_loss": e["train_loss"]}
                             for e in curve],
                   "metrics": {"click": {"auc": curve[-1]["click_auc"],
                                         "slices": slices(labels, kept["scores"], users, warm)}}})
  return runs


def hemix_runs(cfg: ExperimentConfig) -> dict[str, list[dict]]:
  """The harness's stored runs of every model in MODELS, seeds 0 .. cfg.seeds - 1 (trained if missing)."""
  with contextlib.redirect_stdout(sys.stderr):
    results = run_grid(cfg)
  runs = Path(cfg.output_dir) / cfg.dataset / cfg.suite / ("validation" if cfg.on_validation else "runs")
  runs = runs / results["protocol"]
  return {name: [json.loads((runs / name.replace("/", "_") / f"seed{s}.json").read_text()) for s in range(cfg.seeds)]
          for name in MODELS}


def summary(runs: list[dict]) -> dict:
  """model_row's figures this report prints: per-epoch means, the last epoch, and the users' slices."""
  row = model_row(runs)
  return {"per_epoch_mean": row["per_epoch_mean"], "last_epoch": row["click_auc_values"],
          "last_epoch_mean": round(row["click_auc_mean"], 4),
          **{k: row[k] for k in ("click_auc_by_users", "click_gauc_by_users", "click_between_user_auc_by_users")}}


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
    ours = hemix_runs(cfg)
    rows = {}
    for name, without_sequences in MODELS.items():
      theirs = summary(fuxictr_runs(FLAGS.fuxictr_python, split_dir, without_sequences, cfg.seeds))
      mine = summary(ours[name])
      rows[name] = {"hemix-tf": mine, "FuxiCTR": theirs,
                    "FuxiCTR_minus_hemix_tf": round(theirs["last_epoch_mean"] - mine["last_epoch_mean"], 4)}
    report[split.name] = {"examples": exported, "models": rows}
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
