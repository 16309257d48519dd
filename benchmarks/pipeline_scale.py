"""The whole path at a given size, stage by stage, as JSON: seconds, examples/s and peak RSS.

  .venv/bin/python benchmarks/pipeline_scale.py --impressions=1000000 [--work_dir=runs/scale]

Stages, each through its command-line tool in a child process (so its memory is its own):
  generate         hemix-data --dataset=synthetic
  sequence_job     hemix-sequence-job
  <component>      every TFX component of hemix-pipeline (one epoch of training: train examples / batch
                   steps), timed from the pipeline's own progress lines
  batch_scoring    hemix-batch-score of the eval examples with the pushed model
Peak RSS is the largest sum of the resident memory of the stage's process and all its children, sampled
every 0.2 s (for a pipeline component: while that component ran). Examples/s counts the examples the
stage handled: impressions for the generator and the sequence job, train + eval examples for the
components that read both splits, train examples x epochs for the Trainer, eval examples for the
Evaluator and batch scoring. The Done-when checks of issue 41 are printed beside the figures.
Progress goes to stderr.
"""
import this_tree  # noqa: F401  (first: this checkout's hemix_tf, not the editable install's)
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from absl import app, flags

flags.DEFINE_integer("impressions", 100_000, "Synthetic impressions to generate.")
flags.DEFINE_string("work_dir", None, "Where the data and runs go (default: a temporary directory).")
flags.DEFINE_integer("batch_size", 256, "The Trainer's batch size; one epoch of training.")
FLAGS = flags.FLAGS

BIN = Path(sys.executable).parent
_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+): (ran|cached|skipped) in (\d+) s")


class PeakMemory:
  """Samples the resident memory of a process tree; `peak(since, until)` over a time window."""

  def __init__(self, pid: int, every: float = 0.2):
    self.samples: list[tuple[float, int]] = []
    self._process, self._every, self._stop = psutil.Process(pid), every, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while not self._stop.wait(self._every):
      try:
        tree = [self._process, *self._process.children(recursive=True)]
        total = 0
        for process in tree:
          try:
            total += process.memory_info().rss
          except psutil.Error:
            pass
      except psutil.Error:
        return
      self.samples.append((time.monotonic(), total))

  def stop(self) -> None:
    self._stop.set()
    self._thread.join()

  def peak(self, since: float = 0.0, until: float = float("inf")) -> float:
    return max((rss for t, rss in self.samples if since <= t <= until), default=0) / 2**20


def run_stage(name: str, argv: list[str], on_line=None) -> tuple[float, PeakMemory]:
  """Runs a tool, echoing its output to stderr; returns its seconds and its memory samples."""
  print(f"[{name}] {' '.join(argv)}", file=sys.stderr, flush=True)
  start = time.monotonic()
  process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  memory = PeakMemory(process.pid)
  for line in process.stdout:
    print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
    if on_line:
      on_line(line.rstrip(), time.monotonic())
  code = process.wait()
  memory.stop()
  if code:
    raise SystemExit(f"{name} failed (exit {code}) after {time.monotonic() - start:.0f} s, its process tree "
                     f"at {memory.peak():,.0f} MB resident at most (exit -9: killed, e.g. out of memory)")
  return time.monotonic() - start, memory


def row(stage: str, seconds: float, examples: int, peak_mb: float) -> dict:
  """A stage's figures, also on stderr at once: a run the machine cannot finish still tells its stages."""
  figures = {"stage": stage, "seconds": round(seconds, 1), "examples": examples,
             "examples_per_s": round(examples / seconds, 1) if seconds else None, "peak_rss_mb": round(peak_mb)}
  print(f"[done] {json.dumps(figures)}", file=sys.stderr, flush=True)
  return figures


def main(argv):
  del argv
  work = Path(FLAGS.work_dir or tempfile.mkdtemp(prefix="pipeline-scale-"))
  raw, examples, run = work / "raw", work / "examples", work / "pipeline"
  rows = []
  seconds, memory = run_stage("generate", [str(BIN / "hemix-data"), "--dataset=synthetic",
                                           f"--num_impressions={FLAGS.impressions}", f"--output_dir={raw}"])
  rows.append(row("generate", seconds, FLAGS.impressions, memory.peak()))
  seconds, memory = run_stage("sequence_job", [str(BIN / "hemix-sequence-job"), f"--dataset_dir={raw}",
                                               f"--output_dir={examples}"])
  rows.append(row("sequence_job", seconds, FLAGS.impressions, memory.peak()))
  counters = json.loads((examples / "job_summary.json").read_text())["counters"]
  train, evaluated = counters["train_examples"], counters["eval_examples"]
  steps = -(-train // FLAGS.batch_size)

  components, started = [], [time.monotonic()]

  def on_line(line: str, now: float) -> None:
    if match := _LINE.match(line):
      components.append((match.group(3), match.group(4), started[0], now))
      started[0] = now

  (work / "run.yaml").write_text(f"batch_size: {FLAGS.batch_size}\n")  # PipelineConfig's field (no flag)
  seconds, memory = run_stage("pipeline", [str(BIN / "hemix-pipeline"), f"--config={work / 'run.yaml'}",
                                           f"--examples_dir={examples}", f"--run_dir={run}",
                                           f"--train_steps={steps}"], on_line)
  handled = {"Trainer": steps * FLAGS.batch_size, "Evaluator": evaluated, "Pusher": 0, "ReportGen": 0,
             "SchemaGen": 0, "ExampleValidator": 0, "AnomaliesGate": 0, "EvaluationSchema": 0,
             "latest_blessed_model_resolver": 0}
  for name, outcome, since, until in components:
    rows.append({**row(name, until - since, handled.get(name, train + evaluated), memory.peak(since, until)),
                 "outcome": outcome})
  pushed = sorted((run / "serving").iterdir())[-1]
  seconds, memory = run_stage("batch_scoring", [str(BIN / "hemix-batch-score"), f"--saved_model={pushed}",
                                                f"--examples={examples}/eval/part-*", f"--output_dir={work / 'scores'}"])
  rows.append(row("batch_scoring", seconds, evaluated, memory.peak()))

  trainer = next((r for r in rows if r["stage"] == "Trainer"), None)
  measured = [r for r in rows if r["examples"] and r["stage"] != "Trainer"]
  total = sum(r["seconds"] for r in rows)
  checks = {
      "slower_than_the_trainer": [r["stage"] for r in measured
                                  if trainer and r["examples_per_s"] < trainer["examples_per_s"]],
      "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
      "peak_rss_at_most_8_gb": max(r["peak_rss_mb"] for r in rows) <= 8192,
      "total_over_trainer": round(total / trainer["seconds"], 2) if trainer else None,
  }
  print(json.dumps({"benchmark": "pipeline_scale", "impressions": FLAGS.impressions, "train_examples": train,
                    "eval_examples": evaluated, "train_steps": steps, "work_dir": str(work),
                    "total_seconds": round(total, 1), "stages": rows, "checks": checks}, indent=2))


if __name__ == "__main__":
  app.run(main)
