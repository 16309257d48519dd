"""Train and evaluate a suite's models over seeds on one dataset; aggregate into JSON and a Markdown table.

  <out>/<dataset>/data/{raw,examples}                          hemix-data + the Beam sequence job (made once)
  <out>/<dataset>/<suite>/tuning/<protocol>/<model>/seed0.json   a tuning run (train minus validation -> validation)
  <out>/<dataset>/<suite>/runs/<protocol>/<model>/seed<k>.json   a final run (train -> eval)
  <out>/<dataset>/<suite>/results.{json,md}                     the table
<protocol> names the shared hyper-parameters, e.g. bs256-lr0.001-1epoch; the grid resumes by skipping
finished runs of the same protocol.

Protocol (HeMix Section 4.1): every model is trained from scratch with the same batch size, learning rate
and number of steps on the train split (the standard time split's first 90%) and evaluated on the eval
split, after every epoch (a run's `curve`; its `metrics` are the last epoch's), overall and for the users
seen / not seen in its training examples (`slices`: warm / cold; each split again by whether the example has a
global event, `by_history`), with the embedding tables' norms. Ids are encoded as the pipeline's
Transform encodes them (`--id_encoding=vocabulary`: the vocabularies of the run's training examples,
hemix_tf.data.analysis), or hashed (`hashing`, each table's collision rate in the run's log). With several learning rates the shared one is chosen on a validation split carved from the end of
train by time (its last `validation_fraction`, seed 0): each model trains on the rest and is scored on it,
and the rate with the best mean validation CTR AUC over the suite's models is used for all of them; eval
is never read to choose. Reported: mean ± std over seeds of AUC, LogLoss and user-level GAUC per task,
Rela.Imp (Eq. 25) against the suite's reference model, dense / embedding parameters and forward GFLOPs
per example (hemix_tf.model.accounting), and a two-tailed unpaired t-test of the proposed model against
the best other model by mean CTR AUC (the paper's protocol).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from scipy import stats
from tqdm import tqdm

from hemix_tf.data.analysis import Analysis, analyze
from hemix_tf.data.cli import build
from hemix_tf.data.dataset import read_manifest
from hemix_tf.data.examples import SEQUENCES, make_dataset, order_canonically, read_timestamps, sequence_feature
from hemix_tf.data.feature_config import ITEM_ID, USER_ID, VOCABULARY_MIN_COUNT, FeatureConfig, load_feature_config
from hemix_tf.experiments.heuristics import heuristic_aucs
from hemix_tf.experiments.report import grid_report, oracle_auc
from hemix_tf.experiments.suites import PROPOSED, REFERENCE, SUITES
from hemix_tf.metrics import rela_imp
from hemix_tf.model.accounting import forward_flops, parameter_counts
from hemix_tf.model.config import model_config_from_dict, parse_overrides, replace_fields
from hemix_tf.data.preprocessing import AnalyzedPreprocessor
from hemix_tf.model.training import (FailOnNonFiniteLoss, build_and_compile, hashing_preprocessor, with_labels,
                                     with_oov_dropout)
from hemix_tf.trainer import ProgressLogger, evaluate

GROUP = "group_user_id"  # the raw user id kept beside the encoded features, for GAUC
USERS = "users"  # the slice of the scored examples: "warm" (the user has a training example) or "cold"
# Each slice split again: "history" (the example has a global event, i.e. the user acted before the
# day) or "no history" (a user's first day: only the real-time sequence can describe them).
HISTORY = "history"
ID_ENCODINGS = ("vocabulary", "hashing")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  suite: str
  dataset: str  # ml-100k | amazon-grocery | synthetic
  output_dir: str = "runs/experiments"
  seeds: int = 3
  train_steps: int = 0  # 0: `epochs` passes over the split's training examples
  epochs: int = 1
  batch_size: int = 256  # the paper's, for every model
  xla: str = "interaction"  # XLA: off | step (the whole step) | interaction (HeMix after the gathers + Adam)
  source_dir: str | None = None  # the adapter's input files (amazon-grocery needs them; ml-100k: the wheel)
  negatives: str = "catalogue"  # amazon-grocery: how negatives are drawn (hemix_tf.data.amazon.NEGATIVES)
  learning_rates: tuple[float, ...] = (1e-3,)  # several: the shared one is chosen on validation
  warmup_steps: int = 0  # the learning rate rises linearly over these first steps (LinearWarmup)
  validation_fraction: float = 0.1  # the last share of train (by time) that tuning is scored on
  synthetic_impressions: int = 1_000_000
  models: tuple[str, ...] = ()  # a subset of the suite's models (default: all)
  on_validation: bool = False  # score every run on the validation split, never eval (choosing options)
  # A fixed protocol's overrides, for every model: (L_G, L_R) read from the examples (their most recent
  # events; at most the sequence job's lengths) and every embedding's width. None: the data's / suite's.
  sequence_lengths: tuple[int, int] | None = None
  embedding_dim: int | None = None
  id_encoding: str = "vocabulary"  # one of ID_ENCODINGS
  vocabulary_min_count: int = VOCABULARY_MIN_COUNT  # values seen fewer times in train share the OOV row
  # Every model's embedding start, to choose it on validation: "" the models' own, "uniform" Keras'
  # uniform ±0.05, or a standard deviation of a normal start (e.g. "1e-4").
  embedding_init: str = ""
  # A screen: "name=value" items (YAML values) replacing fields of every run's model config, e.g.
  # ("d_t=16",) with models=("HeMix",); such runs are stored apart from the suite's (protocol()).
  overrides: tuple[str, ...] = ()

  def __post_init__(self):
    if self.suite not in SUITES:
      raise ValueError(f"unknown suite '{self.suite}'; choose one of {sorted(SUITES)}")
    unknown = set(self.models) - set(SUITES[self.suite])
    if unknown:
      raise ValueError(f"{sorted(unknown)} not in suite {self.suite}: {sorted(SUITES[self.suite])}")
    if not self.learning_rates or len(set(self.learning_rates)) != len(self.learning_rates):
      raise ValueError(f"learning_rates must be distinct and not empty: {self.learning_rates}")
    if not 0 < self.validation_fraction < 1:
      raise ValueError(f"validation_fraction must be in (0, 1): {self.validation_fraction}")
    if self.epochs < 1 or (self.train_steps and self.epochs != 1):
      raise ValueError(f"epochs must be >= 1, and 1 with train_steps: epochs={self.epochs}, "
                       f"train_steps={self.train_steps}")
    if self.sequence_lengths is not None and (len(self.sequence_lengths) != 2 or min(self.sequence_lengths) < 1):
      raise ValueError(f"sequence_lengths must be two positive lengths (L_G, L_R): {self.sequence_lengths}")
    if self.embedding_dim is not None and self.embedding_dim < 1:
      raise ValueError(f"embedding_dim must be positive: {self.embedding_dim}")
    if self.warmup_steps < 0:
      raise ValueError(f"warmup_steps must be >= 0: {self.warmup_steps}")
    if self.embedding_init not in ("", "uniform"):
      try:
        if float(self.embedding_init) <= 0:
          raise ValueError
      except ValueError:
        raise ValueError(f"embedding_init must be '', 'uniform' or a positive std: {self.embedding_init!r}") from None
    if self.vocabulary_min_count < 1:
      raise ValueError(f"vocabulary_min_count must be >= 1: {self.vocabulary_min_count}")
    if self.id_encoding not in ID_ENCODINGS:
      raise ValueError(f"id_encoding '{self.id_encoding}' is not one of {ID_ENCODINGS}")
    for name in self.models or SUITES[self.suite]:
      self.model_config(name)  # an unknown or malformed override fails here, before any training

  def protocol(self, learning_rate: float) -> str:
    """The shared hyper-parameters as a directory name, e.g. bs256-lr0.001-1epoch."""
    length = (f"{self.train_steps}steps" if self.train_steps else
              "1epoch" if self.epochs == 1 else f"{self.epochs}epochs")
    lengths = f"-L{self.sequence_lengths[0]}x{self.sequence_lengths[1]}" if self.sequence_lengths else ""
    width = f"-emb{self.embedding_dim}" if self.embedding_dim else ""
    warmup = f"-warmup{self.warmup_steps}" if self.warmup_steps else ""
    hashed = ("-hashed" if self.id_encoding == "hashing" else
              f"-vmin{self.vocabulary_min_count}" if self.vocabulary_min_count != VOCABULARY_MIN_COUNT else "")
    init = f"-init{self.embedding_init}" if self.embedding_init else ""
    screen = "".join(f"-{item.replace('/', '_').replace(' ', '')}" for item in self.overrides)
    return f"bs{self.batch_size}-lr{learning_rate:g}{warmup}-{length}{lengths}{width}{init}{hashed}{screen}"

  def model_config(self, name: str):
    """The suite's config of model `name`, with the protocol's embedding width and start and the screen's
    overrides."""
    config = replace_fields(SUITES[self.suite][name], **parse_overrides(list(self.overrides)))
    if self.embedding_dim is not None:
      config = dataclasses.replace(config, embedding_dim={group: self.embedding_dim for group in config.embedding_dim})
    if self.embedding_init:
      config = dataclasses.replace(config, embedding_init_stddev=(None if self.embedding_init == "uniform"
                                                                  else float(self.embedding_init)))
    return config

  def feature_config(self, manifest: dict) -> FeatureConfig:
    """The dataset's feature config, with the protocol's sequence lengths."""
    fc = load_feature_config(manifest["feature_config"])
    if self.sequence_lengths is None:
      return fc
    (g, r), seq = self.sequence_lengths, fc.sequence
    if g > seq.global_length or r > seq.realtime_length:
      raise ValueError(f"sequence_lengths {g},{r} exceed the examples' ({seq.global_length},{seq.realtime_length})")
    return dataclasses.replace(fc, sequence=dataclasses.replace(seq, global_length=g, realtime_length=r))


@dataclasses.dataclass(frozen=True)
class Split:
  """What one run trains on and is scored on: the sequence job's files, optionally cut by timestamp."""
  name: str  # eval | validation
  train_files: str
  train_examples: int
  eval_files: str
  train_timestamps: tuple[int | None, int | None] | None = None
  eval_timestamps: tuple[int | None, int | None] | None = None


def eval_split(job: dict) -> Split:
  return Split("eval", job["outputs"]["train"], job["counters"]["train_examples"], job["outputs"]["eval"])


def validation_split(job: dict, fraction: float) -> Split:
  """Train's last `fraction` by time (every example at or after the cut timestamp) against the rest."""
  timestamps = np.sort(read_timestamps(job["outputs"]["train"]))
  cut = int(timestamps[min(int(len(timestamps) * (1 - fraction)), len(timestamps) - 1)])
  before = int(np.searchsorted(timestamps, cut))
  if before == 0:
    raise ValueError(f"no train example before the validation cut {cut}: lower validation_fraction")
  return Split("validation", job["outputs"]["train"], before, job["outputs"]["train"],
               train_timestamps=(None, cut), eval_timestamps=(cut, None))


def prepare_examples(cfg: ExperimentConfig) -> tuple[dict, dict]:
  """(manifest, sequence job summary) of the dataset, built on first use."""
  from pipelines.sequence_job import SequenceJobConfig, run as run_sequence_job
  data = Path(cfg.output_dir) / cfg.dataset / "data"
  if not (data / "raw" / "manifest.json").exists():
    build(cfg.dataset, str(data / "raw"), source_dir=cfg.source_dir,  # ml-100k: None = the recbole wheel
          num_impressions=cfg.synthetic_impressions, negatives=cfg.negatives)
  manifest = read_manifest(data / "raw")
  built = manifest.get("negatives", "popularity")  # Amazon data built before the option: popularity
  if cfg.dataset == "amazon-grocery" and built != cfg.negatives:
    raise ValueError(f"{data / 'raw'} was built with negatives={built}, not {cfg.negatives}: use another "
                     "--output_dir")
  summary_file, ordered = data / "examples" / "job_summary.json", data / "examples" / "ORDERED"
  if not summary_file.exists():
    ordered.unlink(missing_ok=True)
    with stage(f"the sequence job: examples from {data / 'raw'}"):
      run_sequence_job(SequenceJobConfig(str(data / "raw" / "impressions"), str(data / "raw" / "events"),
                                         str(data / "examples"), manifest["eval_start_timestamp"],
                                         manifest["feature_config"], overwrite=True))  # none: a killed run's
  summary = json.loads(summary_file.read_text())
  if not ordered.exists():  # a rebuilt dataset then trains as the first did (the same stream per seed)
    with stage("the examples in their canonical order (each file rewritten once)"):
      for split in ("train", "eval"):
        order_canonically(summary["outputs"][split])
    ordered.touch()
  return manifest, summary


@contextlib.contextmanager
def stage(what: str):
  """One line on stderr when a long preparation step starts and one when it ends, with its seconds: the
  steps before the first run take minutes on a million impressions and print nothing else."""
  tqdm.write(f"hemix-experiment: {what} ...", file=sys.stderr)
  start = time.perf_counter()
  yield
  tqdm.write(f"hemix-experiment: {what}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)


_FORWARD_GFLOPS: dict[tuple[str, str], float] = {}


def forward_gflops(model, fc: FeatureConfig, config) -> float:
  """The model's profiler forward GFLOPs per example, counted once per (model config, feature config) in a
  process: every seed and learning rate of a config has the same graph, and a count takes seconds."""
  key = (repr(config), repr(fc))
  if key not in _FORWARD_GFLOPS:
    _FORWARD_GFLOPS[key] = forward_flops(model, fc) / 1e9
  return _FORWARD_GFLOPS[key]


def split_analysis(cfg: ExperimentConfig, manifest: dict, split: Split, time_gap_buckets: int) -> Analysis:
  """The Transform's statistics of the split's training examples, computed once per dataset and split."""
  start, end = split.train_timestamps or (None, None)
  path = Path(cfg.output_dir) / cfg.dataset / "data" / "analysis" / f"train-{start}-{end}-gaps{time_gap_buckets}.json"
  if not path.exists():
    with stage(f"the vocabularies and statistics of the {split.name} split's training examples"):
      analyze(split.train_files, load_feature_config(manifest["feature_config"]), time_gap_buckets,
              split.train_timestamps).save(path)
  return Analysis.load(path)


def encoder_for(cfg: ExperimentConfig, fc: FeatureConfig, config, analysis: Analysis, out) -> object:
  """The run's preprocessor (cfg.id_encoding); hashing writes each table's collision rate to `out`."""
  if cfg.id_encoding == "vocabulary":
    return AnalyzedPreprocessor(fc, analysis, config.time_gap_buckets, cfg.vocabulary_min_count)
  for table, rate in analysis.hash_collisions(config.hash_buckets).items():
    print(f"  hashing {table}: {rate:.1%} of its train values share a row ({config.hash_buckets} rows)",
          file=out, flush=True)
  return hashing_preprocessor(fc, config)


def embedding_norms(model) -> dict:
  """{table: mean L2 norm of its rows but the last, and the last row's}: with vocabularies the last row is
  the out-of-vocabulary one (what cold users and new items read); with hashing an ordinary row. Tables
  the model never reads (e.g. the events' without sequences) are left out."""
  norms = {}
  for name, table in model.embedding.tables.items():
    if not table.built:
      continue
    rows = np.linalg.norm(table.embeddings.numpy(), axis=1)
    norms[name] = {"rows": float(rows[:-1].mean()) if len(rows) > 1 else None, "last": float(rows[-1])}
  return norms


class EpochScores(keras.callbacks.Callback):
  """The scored split's metrics after every epoch (`score()`), with the epoch's mean train loss and the
  embedding tables' norms."""

  def __init__(self, score):
    super().__init__()
    self.score, self.curve = score, []

  def on_epoch_end(self, epoch, logs=None):
    self.curve.append({"epoch": epoch + 1, "train_loss": float(logs["loss"]), "metrics": self.score(),
                       "embedding_norms": embedding_norms(self.model)})


def run_one(cfg: ExperimentConfig, name: str, seed: int, manifest: dict, split: Split,
            learning_rate: float, log: Path) -> dict:
  """Trains one model with one seed on the split's training examples and scores it on its eval ones
  after every epoch; its training progress goes to the file `log` (a line per tenth of the steps)."""
  config = cfg.model_config(name)
  fc = cfg.feature_config(manifest)
  analysis = split_analysis(cfg, manifest, split, config.time_gap_buckets)
  epoch_steps = cfg.train_steps or -(-split.train_examples // cfg.batch_size)
  seen = list(analysis.counts[USER_ID])
  warm = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(seen or [""]), tf.constant([1] * len(seen) or [0], tf.int64)), default_value=0)
  log.parent.mkdir(parents=True, exist_ok=True)
  with log.open("w") as out:
    preprocessor = encoder_for(cfg, fc, config, analysis, out)

    def keep_user(raw):
      user = raw[USER_ID] if raw[USER_ID].dtype == tf.string else tf.strings.as_string(raw[USER_ID])
      history = raw[sequence_feature(SEQUENCES[0], ITEM_ID)].row_lengths() > 0
      return {**preprocessor(raw), GROUP: raw[USER_ID], USERS: tf.where(warm.lookup(user) > 0, "warm", "cold"),
              HISTORY: tf.where(history, "history", "no history")}

    keras.utils.set_random_seed(seed)
    train = with_oov_dropout(make_dataset(split.train_files, preprocessor.raw_spec, cfg.batch_size,
                                          shuffle_buffer=50_000, repeat=True, seed=seed, preprocess=preprocessor,
                                          timestamps=split.train_timestamps, pad_for=fc), config, preprocessor, seed)
    scored = make_dataset(split.eval_files, preprocessor.raw_spec, 2048, preprocess=keep_user,
                          timestamps=split.eval_timestamps, pad_for=fc)
    model = build_and_compile(fc, config, preprocessor.table_sizes, learning_rate, cfg.xla, cfg.warmup_steps)
    scores = EpochScores(lambda: evaluate(model, scored, config.tasks, group_key=GROUP, slice_key=USERS,
                                         within_slice_key=HISTORY))
    start = time.perf_counter()
    model.fit(train.map(lambda f: with_labels(f, config.tasks)), steps_per_epoch=epoch_steps, epochs=cfg.epochs,
              verbose=0, callbacks=[FailOnNonFiniteLoss(), scores,
                                    ProgressLogger(max(1, epoch_steps * cfg.epochs // 10), epoch_steps * cfg.epochs,
                                                   cfg.batch_size, lambda line: print(line, file=out, flush=True))])
  seconds = time.perf_counter() - start  # with the scoring after each epoch
  return {"model": name, "seed": seed, "split": split.name, "learning_rate": learning_rate,
          "steps": epoch_steps * cfg.epochs, "train_seconds": round(seconds, 1),
          "train_loss": scores.curve[-1]["train_loss"], "metrics": scores.curve[-1]["metrics"],
          "curve": scores.curve, **parameter_counts(model, fc), "gflops": forward_gflops(model, fc, config),
          "config": dataclasses.asdict(config)}


def _as_json(config) -> dict:
  """A model config as a run's JSON stores it."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def _matches(stored: dict, config) -> bool:
  """Whether a run stored with config `stored` is a run of `config`. The stored config is read as a saved
  model's is (model_config_from_dict): a field added to the config class after the run is read at its
  default (a new option's default keeps the old behaviour), a renamed option as its new name; a field the
  class no longer has, or a value it no longer accepts, is another config."""
  try:
    then = model_config_from_dict({"type": type(config).__name__, **stored})
  except (TypeError, ValueError):
    return False
  return _as_json(then) == _as_json(config)


def _same_run_in_another_suite(path: Path, config) -> Path | None:
  """A finished run of the same model config and seed under the same protocol in another suite of the
  dataset (<dataset>/<suite>/<runs|tuning>/<protocol>/<model>/seed<k>.json): training is deterministic
  given those (HeMix's runs were bit-identical across suites), so it is not trained twice."""
  protocol, kind, dataset = path.parents[1], path.parents[2], path.parents[4]
  for other in sorted(dataset.glob(f"*/{kind.name}/{protocol.name}/*/{path.name}")):
    if other.parents[3] != path.parents[3] and _matches(json.loads(other.read_text())["config"], config):
      return other
  return None


def _run_all(cfg: ExperimentConfig, grid: list[tuple[str, int]], directory: Path, desc: str, run) -> list[dict]:
  """run(name, seed, log path) for every (name, seed) without a JSON file in `directory` yet (written
  atomically: a run is either finished or absent, so a killed grid resumes here; its training log is the
  .log beside the JSON); all the results, in grid order.
  A finished run whose model config is no longer the suite's is an error, not a silent mix; the same
  run finished in another suite is copied (with `reused_from`), not retrained, and so is a run that
  another process finished in `directory` while this grid ran."""
  def path(name, seed):
    return directory / name.replace("/", "_") / f"seed{seed}.json"

  def config(name):
    return cfg.model_config(name)

  def finished(name, seed) -> bool:
    if not path(name, seed).exists():
      return False
    if not _matches(json.loads(path(name, seed).read_text())["config"], config(name)):
      raise ValueError(f"{path(name, seed)} was run with another config of '{name}' than the suite's "
                       "now; move it away to re-run")
    return True

  pending = [(name, seed) for name, seed in grid if not finished(name, seed)]
  # The bar starts at the finished runs, so a resumed grid shows its true progress and rate.
  with tqdm(total=len(grid), initial=len(grid) - len(pending), desc=desc, unit="run") as bar:
    for name, seed in pending:
      if finished(name, seed):  # by another grid on the same directory since this one started
        bar.update()
        continue
      bar.set_postfix_str(f"{name} seed {seed}")
      same = _same_run_in_another_suite(path(name, seed), config(name))
      result = ({**json.loads(same.read_text()), "model": name, "reused_from": str(same)} if same
                else run(name, seed, path(name, seed).with_suffix(".log")))
      path(name, seed).parent.mkdir(parents=True, exist_ok=True)
      tmp = path(name, seed).with_suffix(".tmp")
      tmp.write_text(json.dumps(result, indent=2) + "\n")
      tmp.rename(path(name, seed))
      bar.write(f"{name} seed {seed}: {result['split']} CTR AUC {result['metrics']['click']['auc']:.4f} "
                + (f"(the run in {same})" if same else f"({result['train_seconds']} s)"))
      bar.update()
  return [json.loads(path(n, s).read_text()) for n, s in grid]


def tune(cfg: ExperimentConfig, names: list[str], manifest: dict, job: dict) -> dict:
  """The shared learning rate: each model (seed 0) trains on train minus validation at every candidate
  rate; the rate with the best mean validation CTR AUC over the models wins."""
  split = validation_split(job, cfg.validation_fraction)
  scores = {}
  for lr in cfg.learning_rates:
    runs = _run_all(cfg, [(n, 0) for n in names], Path(cfg.output_dir) / cfg.dataset / cfg.suite / "tuning" /
                    cfg.protocol(lr), f"tuning {cfg.suite} at lr {lr:g}",
                    lambda n, s, log, lr=lr: run_one(cfg, n, s, manifest, split, lr, log))
    scores[lr] = {r["model"]: r["metrics"]["click"]["auc"] for r in runs}
  mean = {lr: float(np.mean(list(s.values()))) for lr, s in scores.items()}
  best = max(mean, key=mean.get)
  return {"learning_rate": best, "validation_from_timestamp": split.eval_timestamps[0],
          "train_examples": split.train_examples,
          "candidates": [{"learning_rate": lr, "mean_validation_auc": mean[lr], "validation_auc": scores[lr]}
                         for lr in cfg.learning_rates]}


def eval_heuristics(cfg: ExperimentConfig, manifest: dict, split: Split) -> dict:
  """Click AUC of the untrained heuristics on the eval split (hemix_tf.experiments.heuristics), computed
  once per dataset."""
  path = Path(cfg.output_dir) / cfg.dataset / "data" / "heuristics.json"
  if not path.exists():
    with stage("the untrained heuristics on eval"):
      path.write_text(json.dumps(heuristic_aucs(load_feature_config(manifest["feature_config"]), split), indent=2))
  return json.loads(path.read_text())


def run_grid(cfg: ExperimentConfig) -> dict:
  manifest, job = prepare_examples(cfg)
  suite_dir = Path(cfg.output_dir) / cfg.dataset / cfg.suite
  names = list(cfg.models or SUITES[cfg.suite])
  tuning = tune(cfg, names, manifest, job) if len(cfg.learning_rates) > 1 else None
  lr = tuning["learning_rate"] if tuning else cfg.learning_rates[0]
  split = validation_split(job, cfg.validation_fraction) if cfg.on_validation else eval_split(job)
  runs = _run_all(cfg, [(n, s) for n in names for s in range(cfg.seeds)],
                  suite_dir / ("validation" if cfg.on_validation else "runs") / cfg.protocol(lr),
                  f"{cfg.suite} on {cfg.dataset}", lambda n, s, log: run_one(cfg, n, s, manifest, split, lr, log))
  results = aggregate(cfg, runs)
  results.update(learning_rate=lr, protocol=cfg.protocol(lr), tuning=tuning, split=split.name,
                 heuristics=None if cfg.on_validation else eval_heuristics(cfg, manifest, split))
  stem = "validation_results" if cfg.on_validation else "results"
  results["report"] = grid_report(results, runs).write(str(suite_dir / f"{stem}_report"))
  (suite_dir / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
  (suite_dir / f"{stem}.md").write_text(markdown(results))
  return results


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
  """mean ± std over seeds; the mean alone for one seed (whose spread is unknown, not zero)."""
  if stat["mean"] is None:
    return "–"
  if len(stat["values"]) < 2:
    return f"{stat['mean']:.{digits}f}"
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
      cells += [_fmt(row[t]["auc"]), "–" if imp is None or math.isnan(imp) else f"{imp:+.2f}%", _fmt(row[t]["logloss"]),
                _fmt(row[t]["gauc"])]
    cells += [f"{row['dense_params']:,}", f"{row['gflops']:.4f}"]
    lines.append("| " + " | ".join(cells) + " |")
  oracle = oracle_auc(results)
  notes = [""]  # a blank line after the table
  if "protocol" in results:
    notes.append(f"Protocol {results['protocol']} (batch, learning rate, training length[, L_G x L_R, embedding "
                 f"width]), scored on the {results['split']} split.")
  notes.append(f"Rela.Imp: HeMix Eq. 25 against {results['reference']} (CTR / CVR AUC).")
  single = [name for name, row in results["models"].items() if row["seeds"] == 1]
  if single:
    notes.append(f"One seed only (no spread): {', '.join(single)}.")
  tuning = results.get("tuning")
  if tuning:
    tried = ", ".join(f"{c['learning_rate']:g}: {c['mean_validation_auc']:.4f}" for c in tuning["candidates"])
    notes.append(f"Learning rate {results['learning_rate']:g} for every model, chosen by the mean validation CTR "
                 f"AUC over the models (validation = train examples from timestamp "
                 f"{tuning['validation_from_timestamp']} on; {tried}).")
  else:
    notes.append(f"Learning rate {results['learning_rate']:g} for every model (not tuned).")
  if oracle is not None:
    notes.append(f"Oracle CTR AUC (the true click probabilities on the same eval examples): {oracle:.4f}.")
  if results.get("heuristics"):
    scores = ", ".join(f"{name} {v:.4f}" for name, v in results["heuristics"].items() if v is not None)
    notes.append(f"Untrained heuristics' CTR AUC on the same eval examples: {scores}.")
  test = results["t_test"]
  if test:
    notes.append(f"Two-tailed unpaired t-test, {test['metric']}, {test['proposed']} vs {test['best_other']} "
                 f"(best other): t = {test['t']:.2f}, p = {test['p']:.3g}.")
  return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"
