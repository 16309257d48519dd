"""pipelines.progress: LocalDagRunner's absl records become one line per component; logs go to a file."""
import logging
import os

from absl import logging as absl_logging

from pipelines.progress import ComponentProgress, component_progress


def test_one_line_per_component_cached_or_ran(tmp_path, capsys):
  log_file = tmp_path / "run.log"
  with component_progress(3, str(log_file)) as progress:
    absl_logging.info("Component %s is running.", "ExampleGen")
    absl_logging.info("A cached execution %d is used.", 4)
    absl_logging.info("Component %s is finished.", "ExampleGen")
    absl_logging.info("Component %s is running.", "Trainer")
    absl_logging.info("Going to run a new execution %d", 5)
    logging.getLogger("apache_beam.runners").info("a library line")
    os.write(1, b"pip: Successfully installed tfx-user-code\n")  # a subprocess / C++ writing to the fds
    os.write(2, b"E0000 cuda_platform.cc: failed call to cuInit\n")
    absl_logging.info("Component %s is finished.", "Trainer")
    absl_logging.info("Skipping component %s.", "Pusher")
  out = capsys.readouterr()
  lines = out.out.splitlines()
  assert [line.split(" in ")[0] for line in lines] == [
      "[1/3] ExampleGen: cached", "[2/3] Trainer: ran", "[3/3] Pusher: skipped"]
  assert progress.lines == lines
  assert "a library line" not in out.err and "a library line" in log_file.read_text()
  log = log_file.read_text()
  assert "Going to run a new execution 5" in log and log.count("a library line") == 1
  assert "Successfully installed" in log and "failed call to cuInit" in log
  # Outside the block the logging configuration is as it was.
  assert not any(isinstance(h, ComponentProgress) for h in logging.getLogger().handlers)


def test_a_finished_component_shows_its_key_figure(tmp_path, capsys):
  figures = {"StatisticsGen": "train 90 examples, eval 10 examples", "Evaluator": "click AUC 0.8000, blessed"}
  with component_progress(3, str(tmp_path / "run.log"), figure=lambda c: figures.get(c, "")):
    for component in ("StatisticsGen", "SchemaGen", "Evaluator"):
      absl_logging.info("Component %s is running.", component)
      absl_logging.info("Component %s is finished.", component)
  lines = [line.split(" s", 1)[-1] for line in capsys.readouterr().out.splitlines()]
  assert lines == [", train 90 examples, eval 10 examples", "", ", click AUC 0.8000, blessed"]


def test_the_trainers_progress_shows_under_its_component_and_a_silent_component_beats(tmp_path, capsys):
  from hemix_tf.trainer import PROGRESS
  with component_progress(2, str(tmp_path / "run.log")) as progress:
    absl_logging.info("Component %s is running.", "Transform")
    progress.heartbeat = 0.0  # "nothing printed for long enough", now
    progress.beat()
    progress.heartbeat = 3600.0
    absl_logging.info("Component %s is finished.", "Transform")
    absl_logging.info("Component %s is running.", "Trainer")
    PROGRESS.info("step 20/40  loss 0.5000  1,000 examples/s  ETA 5 s")
    progress.beat()  # a line was just printed: no beat
    absl_logging.info("Component %s is finished.", "Trainer")
  lines = capsys.readouterr().out.splitlines()
  assert [line.split(" in ")[0] for line in lines] == [
      "      Transform: running for 0 s", "[1/2] Transform: ran",
      "      step 20/40  loss 0.5000  1,000 examples/s  ETA 5 s", "[2/2] Trainer: ran"]
  assert "step 20/40" in (tmp_path / "run.log").read_text()


def test_a_silent_component_beats_at_30_60_120_seconds(monkeypatch):
  import io
  from pipelines import progress as module
  now = [0.0]
  monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
  out = io.StringIO()
  progress = ComponentProgress(1, out)
  progress.emit(logging.LogRecord("absl", logging.INFO, "", 0, "Component Transform is running.", (), None))
  for now[0] in range(0, 250, 5):
    progress.beat()
  assert [line.split("for ")[1] for line in out.getvalue().splitlines()] == ["30 s", "60 s", "120 s", "240 s"]
