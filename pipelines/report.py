"""The run report: one HTML page per pipeline run, built from what the components wrote.

    ReportGen (pipelines/components.py) -> a RunReport artifact: index.html + PNGs, by `build_report`

Nothing is recomputed from the model or the data; each part reads one component's own output:

  learning curves   the Trainer's TensorBoard event files (<model_run>/logs/train): the training loss per
                    logged step, the step rate from the events' wall times; the eval AUC / LogLoss the
                    Trainer and the Evaluator computed after training
  calibration       TFMA's CalibrationPlot (fine buckets of the prediction, merged into deciles of the
                    eval examples): predicted vs observed rate, and the score distribution per label
  slices            the Evaluator's metrics per slice (overall, user activity buckets; TFMA's AUC, and
                    GAUC and LogLoss from pipelines/tfma_metrics.py) for this model and, when
                    one exists, the last blessed model the Evaluator compared it with; the blessing
                    and its thresholds from the evaluation's config and validation result
  data              the sequence job's counters (<examples_dir>/job_summary.json) and StatisticsGen's
                    number-of-values histograms of the sequence features (the sequences' lengths)
  model             the Trainer's record beside the SavedModel (preset, config, differences from the
                    preset, parameters, forward FLOPs)
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from hemix_tf.data.examples import SEQUENCES, sequence_feature
from hemix_tf.data.feature_config import ITEM_ID
from hemix_tf.model.config import preset
from hemix_tf.report import Report, plt

TRAINING_RECORD = "assets.extra/hemix_training.json"  # written by hemix_tf.trainer beside the SavedModel
DECILES = 10
SCORE_BINS = 50  # the score histogram's bins (TFMA's 1,000 calibration buckets merged)


def report_page(uri: str) -> str:
  return os.path.join(uri, "index.html")


# ---- readers: one per component output -------------------------------------------------------------

def training_curves(model_run_uri: str) -> dict[str, list[tuple[int, float, float]]]:
  """{tag: [(step, value, wall_time)]} of the scalars in the Trainer's TensorBoard train logs."""
  curves: dict[str, list] = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(model_run_uri, "logs", "train", "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        scalar = (value.simple_value if value.HasField("simple_value")
                  else float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else None)
        if scalar is not None:
          curves.setdefault(value.tag, []).append((int(event.step), scalar, event.wall_time))
  return {tag: sorted(points) for tag, points in curves.items()}


def _read_json(path: str) -> dict | None:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())


@dataclasses.dataclass
class Evaluation:
  """What the Evaluator wrote: metrics {slice: {model: {metric: value}}} (model "candidate" or
  "baseline"), calibration buckets per output, and the validation's outcome."""
  metrics: dict
  calibration: dict  # {output: [(lower, upper, examples, positives, sum of predictions)]}
  validation_ok: bool | None
  failures: list[str]
  thresholds: list[str]


def _slice_name(slice_key) -> str:
  keys = slice_key.single_slice_keys
  if not keys:
    return "all"
  parts = []
  for key in keys:
    value = getattr(key, key.WhichOneof("kind"))
    parts.append(f"{key.column}={value.decode() if isinstance(value, bytes) else value}")
  return ",".join(parts)


def evaluation(uri: str) -> Evaluation:
  import tensorflow_model_analysis as tfma
  metrics: dict = {}
  for slice_metrics in tfma.load_metrics(uri):
    per_model = metrics.setdefault(_slice_name(slice_metrics.slice_key), {})
    for item in slice_metrics.metric_keys_and_values:
      if item.key.is_diff or not item.value.HasField("double_value"):
        continue
      model = item.key.model_name or "candidate"
      per_model.setdefault(model, {})[f"{item.key.output_name}/{item.key.name}".lstrip("/")] = \
          item.value.double_value.value
  calibration = {}
  for slice_plots in tfma.load_plots(uri):
    if slice_plots.slice_key.single_slice_keys:
      continue
    for item in slice_plots.plot_keys_and_values:
      if item.key.model_name not in ("", "candidate") or not item.value.HasField("calibration_histogram_buckets"):
        continue
      calibration[item.key.output_name] = [
          (b.lower_threshold_inclusive, b.upper_threshold_exclusive, b.num_weighted_examples.value,
           b.total_weighted_label.value, b.total_weighted_refined_prediction.value)
          for b in item.value.calibration_histogram_buckets.buckets if b.num_weighted_examples.value > 0]
  validation_ok, failures = None, []
  if tf.io.gfile.glob(os.path.join(uri, "validations*")):
    result = tfma.load_validation_result(uri)
    validation_ok = result.validation_ok
    for per_slice in result.metric_validations_per_slice:
      for failure in per_slice.failures:
        failures.append(f"{_slice_name(per_slice.slice_key)} {failure.metric_key.output_name}/"
                        f"{failure.metric_key.name}: {failure.message or failure.metric_value}")
  return Evaluation(metrics, calibration, validation_ok, failures, _thresholds(uri))


def _thresholds(uri: str) -> list[str]:
  """The blessing's thresholds, as the Evaluator's stored eval config states them."""
  config = _read_json(os.path.join(uri, "eval_config.json"))
  found = []
  for spec in (config or {}).get("evalConfig", {}).get("metricsSpecs", []):
    for metric in spec.get("metrics", []):
      for per_slice in metric.get("perSliceThresholds", []):
        threshold = per_slice.get("threshold", {})
        name = f"{','.join(spec.get('outputNames', []))}/{metric.get('className')}"
        if "valueThreshold" in threshold:
          found.append(f"{name} >= {threshold['valueThreshold']['lowerBound']}")
        if "changeThreshold" in threshold:
          found.append(f"{name} - the last blessed model's >= {threshold['changeThreshold']['absolute']}")
  return found


def sequence_lengths(statistics_uri: str, split: str = "train") -> dict[str, list[tuple[float, float, float]]]:
  """{sequence: [(low, high, examples)]}: StatisticsGen's histogram of the number of values of each
  sequence's item-id feature, i.e. of the sequence's length, per example that has one (the sequence
  job's counters count the empty ones)."""
  path = os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb")
  if not tf.io.gfile.exists(path):
    return {}
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  with tf.io.gfile.GFile(path, "rb") as f:
    stats.ParseFromString(f.read())
  wanted = {sequence_feature(s, ITEM_ID): s for s in SEQUENCES}
  found = {}
  for dataset in stats.datasets:
    for feature in dataset.features:
      name = feature.path.step[-1] if feature.path.step else feature.name
      if name in wanted:
        common = (feature.num_stats.common_stats if feature.HasField("num_stats")
                  else feature.string_stats.common_stats)
        found[wanted[name]] = [(b.low_value, b.high_value, b.sample_count)
                               for b in common.num_values_histogram.buckets]
  return found


# ---- figures -----------------------------------------------------------------------------------------

def deciles(buckets: list[tuple]) -> list[tuple[float, float, float]]:
  """Calibration buckets (ascending prediction) merged into DECILES groups of about equal examples (a
  bucket joins the group its middle example falls in): [(mean prediction, observed rate, examples)]."""
  total = sum(b[2] for b in buckets)
  groups = np.zeros((DECILES, 3))
  seen = 0.0
  for _, _, examples, positives, predictions in buckets:
    index = min(DECILES - 1, int((seen + examples / 2) / total * DECILES))
    groups[index] += (examples, positives, predictions)
    seen += examples
  return [(p / n, y / n, n) for n, y, p in groups if n]


def _learning_figure(curves: dict, batch_size: int | None):
  loss = curves.get("batch_loss", [])
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
  if loss:
    for tag in sorted(t for t in curves if t.startswith("batch_") and t.endswith("loss")):
      steps, values, _ = zip(*curves[tag])
      axes[0].plot(steps, values, marker=".", label=tag.removeprefix("batch_"))
    axes[0].set(xlabel="step", ylabel="training loss (running mean)", title="Training loss")
    axes[0].legend()
    rates = [(s1, (s1 - s0) * (batch_size or 1) / (t1 - t0)) for (s0, _, t0), (s1, _, t1)
             in zip(loss, loss[1:]) if t1 > t0]
    if rates:
      axes[1].plot(*zip(*rates), marker=".")
    axes[1].set(xlabel="step", ylabel="examples/s" if batch_size else "steps/s", title="Step rate")
  return fig


def _calibration_figure(calibration: dict):
  fig, axes = plt.subplots(len(calibration), 2, figsize=(11, 3.6 * len(calibration)), squeeze=False)
  for row, (output, buckets) in enumerate(sorted(calibration.items())):
    groups = deciles(buckets)
    ax = axes[row][0]
    top = max(max(g[0] for g in groups), max(g[1] for g in groups)) * 1.05
    ax.plot([0, top], [0, top], color="#999", linestyle="--", linewidth=1)
    ax.plot([g[0] for g in groups], [g[1] for g in groups], marker="o")
    ax.set(xlabel="mean prediction", ylabel="observed rate", title=f"{output}: calibration by decile")
    ax = axes[row][1]
    top = max(b[1] for b in buckets)
    bins = np.linspace(0, top, SCORE_BINS + 1)
    middles = [(b[0] + b[1]) / 2 for b in buckets]
    for label, counts in (("label 0", [b[2] - b[3] for b in buckets]), ("label 1", [b[3] for b in buckets])):
      ax.hist(middles, bins=bins, weights=counts, alpha=0.6, label=label)
    ax.set(xlabel="prediction", ylabel="examples", title=f"{output}: scores per label", yscale="log", xlim=(0, top))
    ax.legend()
  fig.tight_layout()
  return fig


def _lengths_figure(lengths: dict):
  """The share of examples with at most N events, per sequence (StatisticsGen's histograms are
  quantiles: equal counts between their bounds)."""
  fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 3.4), squeeze=False)
  for ax, (sequence, buckets) in zip(axes[0], sorted(lengths.items())):
    total = sum(n for _, _, n in buckets)
    cumulative = np.cumsum([n for _, _, n in buckets]) / total
    ax.step([buckets[0][0]] + [hi for _, hi, _ in buckets], [0.0, *cumulative], where="post")
    ax.set(xlabel="events in the sequence", ylabel="share of examples with at most this many",
           title=f"{sequence} sequence length (train)", ylim=(0, 1.02))
  return fig


# ---- the page ----------------------------------------------------------------------------------------

def _model_record(model_uri: str) -> dict:
  for candidate in (os.path.join(model_uri, "Format-Serving", TRAINING_RECORD), os.path.join(model_uri, TRAINING_RECORD)):
    record = _read_json(candidate)
    if record:
      return record
  return {}


def _config_diff(record: dict) -> list[tuple[str, str, str]]:
  name = record.get("trainer", {}).get("model_preset")
  if not name or "model" not in record:
    return []
  reference = json.loads(json.dumps(dataclasses.asdict(preset(name)), default=str))
  used = json.loads(json.dumps(record["model"], default=str))
  return [(k, str(reference.get(k)), str(v)) for k, v in sorted(used.items()) if reference.get(k) != v]


def build_report(statistics_uri: str, model_run_uri: str, model_uri: str, evaluation_uri: str,
                 blessed: bool | None, examples_dir: str, title: str) -> Report:
  record = _model_record(model_uri)
  trainer = record.get("trainer", {})
  page = Report(title)
  result = evaluation(evaluation_uri)
  overall = result.metrics.get("all", {}).get("candidate", {})
  verdict = {True: "blessed", False: "not blessed", None: "no blessing recorded"}[blessed]
  page.text(f"Eval click AUC {overall.get('click/auc', float('nan')):.4f}, {verdict}. "
            f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            f"Model: {trainer.get('model_preset', '?')}, {trainer.get('train_steps', '?')} steps of "
            f"{trainer.get('batch_size', '?')}; feature config {record.get('feature_config', '?')}; "
            f"code {record.get('code_version', '?')}.", "good" if blessed else "bad")

  page.section("Learning curves", "The training loss every logged step (the Trainer's TensorBoard events: "
               "`tensorboard --logdir <model_run>/logs`) and the training speed between them.")
  curves = training_curves(model_run_uri)
  if curves:
    page.figure("learning_curves", _learning_figure(curves, trainer.get("batch_size")))
  else:
    page.text("No TensorBoard events found.", "bad")
  trainer_metrics = (_read_json(os.path.join(model_run_uri, "metrics.json")) or {}).get("metrics", {})
  page.table(["after training, eval split", "AUC", "LogLoss", "mean label", "mean prediction"],
             [[f"{task} (Trainer)", m.get("auc"), m.get("logloss"), m.get("mean_label"), m.get("mean_prediction")]
              for task, m in trainer_metrics.items()]
             + [[f"{task} (Evaluator, TFMA)", overall.get(f"{task}/auc"), overall.get(f"{task}/binary_crossentropy"),
                 overall.get(f"{task}/mean_label"), overall.get(f"{task}/mean_prediction")]
                for task in trainer_metrics])

  page.section("Calibration", "Predicted against observed rate by decile of the prediction, and the "
               "distribution of the scores per label (TFMA's calibration plot on the eval split).")
  if result.calibration:
    page.figure("calibration", _calibration_figure(result.calibration))

  page.section("Slices and blessing", "AUC, user-level GAUC and LogLoss per slice the Evaluator computes, "
               "beside the last blessed model's on the same examples (when there was one).")
  outputs = sorted({k.split("/")[0] for m in result.metrics.values() for v in m.values() for k in v if "/" in k})
  rows = []
  for name in sorted(result.metrics, key=lambda s: (s != "all", _slice_order(s))):
    models = result.metrics[name]
    for output in outputs:
      this, last = models.get("candidate", {}), models.get("baseline", {})
      count = this.get(f"{output}/example_count")
      rows.append([name, output, None if count is None else int(count)]
                  + [model.get(f"{output}/{metric}") for metric in ("auc", "gauc", "binary_crossentropy")
                     for model in (this, last)])
  page.table(["slice", "output", "examples", "AUC", "AUC, last blessed", "GAUC", "GAUC, last blessed",
              "LogLoss", "LogLoss, last blessed"], rows)
  first = not any(models.get("baseline") for models in result.metrics.values())
  page.text(f"Blessing: {verdict}. Thresholds: {'; '.join(result.thresholds) or 'none'}."
            + (" No model was blessed before this run, so no comparison applied." if first else "")
            + (f" Failed: {'; '.join(result.failures)}." if result.failures else ""),
            "good" if blessed else "bad")

  page.section("Data", "The sequence job's counters and the sequences' lengths (StatisticsGen).")
  summary = _read_json(os.path.join(examples_dir, "job_summary.json")) if examples_dir else None
  if summary:
    page.table(["counter", "value"], sorted(summary.get("counters", {}).items()))
  lengths = sequence_lengths(statistics_uri)
  if lengths:
    page.figure("sequence_lengths", _lengths_figure(lengths))

  page.section("Model")
  page.table(["", ""], [["preset", trainer.get("model_preset")],
                        ["dense parameters", record.get("parameters", {}).get("dense_params")],
                        ["embedding parameters", record.get("parameters", {}).get("embedding_params")],
                        ["forward GFLOPs per example", record.get("forward_gflops")],
                        ["learning rate", trainer.get("learning_rate")],
                        ["SavedModel", model_uri]])
  diff = _config_diff(record)
  page.table(["hyper-parameter", "preset", "this run"], diff or [["(none: the preset as it is)", "", ""]])
  return page


def _slice_order(name: str):
  value = name.split("=")[-1]
  return (0, float(value)) if value.replace(".", "", 1).lstrip("-").isdigit() else (1, value)
