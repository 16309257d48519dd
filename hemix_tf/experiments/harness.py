"""Train and evaluate a suite's models over seeds on one dataset; aggregate into JSON and a Markdown table.

  <out>/<dataset>/data/{raw,examples}            hemix-data + the Beam sequence job (made once)
  <out>/<dataset>/<suite>/runs/<model>/seed<k>.json   one finished run (the grid resumes by skipping these)
  <out>/<dataset>/<suite>/results.{json,md}       the table

Protocol (HeMix Section 4.1): every model is trained from scratch with the same batch size, learning rate
and number of steps on the train split (the standard time split's first 90%) and evaluated on the eval
split; no hyper-parameter is chosen per model, so no validation split is needed (a tuning run must carve
one from the end of train, never use eval). Reported: mean ± std over seeds of AUC, LogLoss and user-level
GAUC per task, Rela.Imp (Eq. 25) against the suite's reference model, dense / embedding parameters and
forward GFLOPs per example (hemix_tf.model.accounting), and a two-tailed unpaired t-test of the proposed
model against the best other model by mean CTR AUC (the paper's protocol).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import tf_keras as keras
from scipy import stats
from tqdm import tqdm

from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.examples import make_dataset
from hemix_tf.data.feature_config import USER_ID, load_feature_config
from hemix_tf.experiments.suites import PROPOSED, REFERENCE, SUITES
from hemix_tf.metrics import rela_imp
from hemix_tf.model.accounting import forward_flops, parameter_counts
from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels
from hemix_tf.trainer import evaluate

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GROUP = "group_user_id"  # the raw user id kept beside the encoded features, for GAUC


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  suite: str
  dataset: str  # ml-100k | amazon-grocery | synthetic
  output_dir: str = "runs/experiments"
  seeds: int = 3
  train_steps: int = 0  # 0: one epoch of the train split
  batch_size: int = 256  # the paper's, for every model
  learning_rate: float = 1e-3  # the same for every model
  synthetic_impressions: int = 1_000_000
  models: tuple[str, ...] = ()  # a subset of the suite's models (default: all)

  def __post_init__(self):
    if self.suite not in SUITES:
      raise ValueError(f"unknown suite '{self.suite}'; choose one of {sorted(SUITES)}")
    unknown = set(self.models) - set(SUITES[self.suite])
    if unknown:
      raise ValueError(f"{sorted(unknown)} not in suite {self.suite}: {sorted(SUITES[self.suite])}")


def prepare_examples(cfg: ExperimentConfig) -> tuple[dict, dict]:
  """(manifest, sequence job summary) of the dataset, built on first use."""
  from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job
  data = Path(cfg.output_dir) / cfg.dataset / "data"
  if not (data / "raw" / "manifest.json").exists():
    source = {"amazon-grocery": SHARED_DATA / "amazon-grocery", "ml-100k": SHARED_DATA / "ml-100k"}.get(cfg.dataset)
    source = source if source and source.is_dir() else None  # ml-100k: else from the recbole wheel
    build(cfg.dataset, str(data / "raw"), source_dir=source and str(source),
          num_impressions=cfg.synthetic_impressions)
  manifest = read_manifest(data / "raw")
  summary_file = data / "examples" / "job_summary.json"
  if not summary_file.exists():
    run_sequence_job(SequenceJobConfig(str(data / "raw" / "impressions"), str(data / "raw" / "events"),
                                       str(data / "examples"), manifest["eval_start_timestamp"],
                                       manifest["feature_config"]))
  return manifest, json.loads(summary_file.read_text())


def run_one(cfg: ExperimentConfig, name: str, seed: int, manifest: dict, job: dict) -> dict:
  """Trains one model with one seed and evaluates it."""
  config = SUITES[cfg.suite][name]
  fc = load_feature_config(manifest["feature_config"])
  preprocessor = hashing_preprocessor(fc, config)
  keras.utils.set_random_seed(seed)
  train_examples = job["counters"]["train_examples"]
  steps = cfg.train_steps or -(-train_examples // cfg.batch_size)

  def keep_user(raw):
    return {**preprocessor(raw), GROUP: raw[USER_ID]}

  train = make_dataset(job["outputs"]["train"], preprocessor.raw_spec, cfg.batch_size, shuffle_buffer=50_000,
                       repeat=True, seed=seed, preprocess=preprocessor).map(lambda f: with_labels(f, config.tasks))
  model = build_and_compile(fc, config, preprocessor.table_sizes, cfg.learning_rate)
  start = time.perf_counter()
  history = model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
  seconds = time.perf_counter() - start
  metrics = evaluate(model, make_dataset(job["outputs"]["eval"], preprocessor.raw_spec, 2048, preprocess=keep_user),
                     config.tasks, group_key=GROUP)
  return {"model": name, "seed": seed, "steps": steps, "train_seconds": round(seconds, 1),
          "train_loss": float(history.history["loss"][-1]), "metrics": metrics,
          **parameter_counts(model, fc), "gflops": forward_flops(model, fc) / 1e9,
          "config": dataclasses.asdict(config)}


def run_grid(cfg: ExperimentConfig) -> dict:
  manifest, job = prepare_examples(cfg)
  suite_dir = Path(cfg.output_dir) / cfg.dataset / cfg.suite
  names = list(cfg.models or SUITES[cfg.suite])
  grid = [(name, seed) for name in names for seed in range(cfg.seeds)]
  with tqdm(grid, desc=f"{cfg.suite} on {cfg.dataset}", unit="run") as bar:
    for name, seed in bar:
      path = suite_dir / "runs" / name.replace("/", "_") / f"seed{seed}.json"
      bar.set_postfix_str(f"{name} seed {seed}")
      if path.exists():
        continue  # finished before: a killed grid resumes here
      result = run_one(cfg, name, seed, manifest, job)
      path.parent.mkdir(parents=True, exist_ok=True)
      tmp = path.with_suffix(".tmp")
      tmp.write_text(json.dumps(result, indent=2) + "\n")
      tmp.rename(path)  # atomic: a run is either finished or absent
      bar.write(f"{name} seed {seed}: CTR AUC {result['metrics']['click']['auc']:.4f} "
                f"({result['train_seconds']} s)")
  runs = [json.loads((suite_dir / "runs" / n.replace("/", "_") / f"seed{s}.json").read_text()) for n, s in grid]
  results = aggregate(cfg, runs)
  (suite_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (suite_dir / "results.md").write_text(markdown(results))
  if cfg.suite == "scaling":
    scaling_plot(results, suite_dir / "scaling.png")
  return results


def scaling_plot(results: dict, path: Path) -> None:
  """HeMix Figure 3 style: CTR AUC (mean ± std over seeds) against dense params and against GFLOPs,
  log x-axis, one line per model family (the name before the first space)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  families = {}
  for name, row in results["models"].items():
    families.setdefault(name.split(" ")[0], []).append(row)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key, label in ((axes[0], "dense_params", "dense parameters"), (axes[1], "gflops", "GFLOPs / example")):
    for family, rows in families.items():
      rows = sorted(rows, key=lambda r: r[key])
      ax.errorbar([r[key] for r in rows], [r["click"]["auc"]["mean"] for r in rows],
                  yerr=[r["click"]["auc"]["std"] for r in rows], marker="o", capsize=3, label=family)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("CTR AUC")
    ax.grid(True, which="both", alpha=0.3)
  axes[0].legend()
  fig.suptitle(f"Scaling on {results['dataset']} ({results['config']['seeds']} seeds)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _stat(values: list) -> dict:
  values = [v for v in values if v is not None]
  return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          "values": values} if values else {"mean": None, "std": None, "values": []}


def aggregate(cfg: ExperimentConfig, runs: list[dict]) -> dict:
  tasks = list(runs[0]["metrics"]) if runs else []
  tasks = [t for t in tasks if isinstance(runs[0]["metrics"][t], dict)]
  models = {}
  for run in runs:
    models.setdefault(run["model"], []).append(run)
  table = {}
  for name, rs in models.items():
    row = {t: {m: _stat([r["metrics"][t].get(m) for r in rs]) for m in ("auc", "logloss", "gauc")} for t in tasks}
    row.update(dense_params=rs[0]["dense_params"], embedding_params=rs[0]["embedding_params"],
               gflops=rs[0]["gflops"], seeds=len(rs), train_seconds=_stat([r["train_seconds"] for r in rs])["mean"])
    oracle = [r["metrics"]["click"].get("oracle_auc") for r in rs if "click" in r["metrics"]]
    if any(o is not None for o in oracle):
      row["oracle_auc"] = _stat(oracle)["mean"]
    table[name] = row
  reference = REFERENCE[cfg.suite]
  for name, row in table.items():
    for t in tasks:
      if reference in table and row[t]["auc"]["mean"] is not None:
        row[t]["rela_imp_pct"] = rela_imp(row[t]["auc"]["mean"], table[reference][t]["auc"]["mean"])
  proposed, test = PROPOSED[cfg.suite], None
  others = [n for n in table if n != proposed and table[n]["click"]["auc"]["mean"] is not None]
  if proposed in table and others and cfg.seeds > 1:
    best = max(others, key=lambda n: table[n]["click"]["auc"]["mean"])
    t_stat, p_value = stats.ttest_ind(table[proposed]["click"]["auc"]["values"], table[best]["click"]["auc"]["values"])
    test = {"proposed": proposed, "best_other": best, "metric": "click AUC", "t": float(t_stat), "p": float(p_value)}
  return {"suite": cfg.suite, "dataset": cfg.dataset, "config": dataclasses.asdict(cfg), "reference": reference,
          "tasks": tasks, "models": table, "t_test": test}


def _fmt(stat: dict, digits: int = 4) -> str:
  if stat["mean"] is None:
    return "–"
  return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown(results: dict) -> str:
  tasks = results["tasks"]
  head = ["model"]
  for t in tasks:
    head += [f"{t} AUC", f"{t} Rela.Imp", f"{t} LogLoss", f"{t} GAUC"]
  head += ["dense params", "GFLOPs"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, row in results["models"].items():
    cells = [name]
    for t in tasks:
      imp = row[t].get("rela_imp_pct")
      cells += [_fmt(row[t]["auc"]), "–" if imp is None else f"{imp:+.2f}%", _fmt(row[t]["logloss"]),
                _fmt(row[t]["gauc"])]
    cells += [f"{row['dense_params']:,}", f"{row['gflops']:.4f}"]
    lines.append("| " + " | ".join(cells) + " |")
  oracle = next((row["oracle_auc"] for row in results["models"].values() if "oracle_auc" in row), None)
  notes = [f"\nRela.Imp: HeMix Eq. 25 against {results['reference']} (CTR / CVR AUC)."]
  if oracle is not None:
    notes.append(f"Oracle CTR AUC (the true click probabilities on the same eval examples): {oracle:.4f}.")
  test = results["t_test"]
  if test:
    notes.append(f"Two-tailed unpaired t-test, {test['metric']}, {test['proposed']} vs {test['best_other']} "
                 f"(best other): t = {test['t']:.2f}, p = {test['p']:.3g}.")
  return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"
