"""One progress line per TFX component, with the full library log in a file.

LocalDagRunner reports its work only in absl INFO records ("Component X is running.", "A cached
execution N is used.", "Going to run a new execution N", "Component X is finished."), mixed with
thousands of lines from Beam, TFMA and TensorFlow. `component_progress` reads those records and prints

  [3/10] StatisticsGen: ran in 12 s, train 90,000 examples, eval 10,000 examples
  [4/10] SchemaGen: cached in 0 s

with the component's key figure (rows, anomalies, AUC, blessing, pushed path) when `figure` gives one,
the records of the `hemix_tf.progress` logger (the Trainer's steps, loss, examples/s, ETA) indented below
its component, and "running for N s" at 30, 60, 120, ... s while a component runs without printing anything

      step 120/400  loss 0.2841  1,512 examples/s  ETA 19 s
      Transform: running for 60 s

while every log record and everything written to the process's stdout / stderr goes to `log_file`
(unless `verbose`: then the terminal shows it all as well).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from typing import Callable, Iterator, TextIO

from hemix_tf.trainer import PROGRESS

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_SKIPPED = re.compile(r"Skipping component (\S+)\.")
HEARTBEAT = 30.0  # the first "running for N s" of a silent component; then at twice its running time
INDENT = "      "


class ComponentProgress(logging.Handler):
  """absl records of LocalDagRunner -> `[i/n] <component>: cached|ran|skipped in <s> s` on `out`."""

  def __init__(self, total: int, out: TextIO | None = None, figure: Callable[[str], str] | None = None,
               heartbeat: float = HEARTBEAT):
    super().__init__(logging.INFO)
    self.total, self.out, self.figure, self.heartbeat = total, out, figure, heartbeat
    self.done, self.lines = 0, []
    self._started, self._outcome = {}, "ran"
    self._printed, self._lock, self._stop = time.monotonic(), threading.Lock(), threading.Event()

  def _print(self, line: str) -> None:
    with self._lock:
      self.lines.append(line)
      print(line, file=self.out or sys.stdout, flush=True)
      self._printed = time.monotonic()

  def _line(self, component: str, outcome: str) -> None:
    self.done += 1
    seconds = time.monotonic() - self._started.pop(component, time.monotonic())
    line = f"[{self.done}/{self.total}] {component}: {outcome} in {seconds:.0f} s"
    figure = self.figure(component) if self.figure and outcome != "skipped" else ""
    if figure:
      line += f", {figure}"
    self._print(line)

  def beat(self) -> None:
    """Prints "running for N s" for a running component once nothing was printed for `heartbeat`
    seconds and for half its running time: at 30, 60, 120, 240 s ..., a few lines however long it runs."""
    now = time.monotonic()
    quiet = now - self._printed
    for component, started in list(self._started.items()):
      if quiet >= max(self.heartbeat, (now - started) / 2):
        self._print(f"{INDENT}{component}: running for {now - started:.0f} s")

  def start(self) -> None:
    """Beats from a daemon thread until `stop`."""
    def loop():
      while not self._stop.wait(min(5.0, self.heartbeat)):
        self.beat()
    threading.Thread(target=loop, daemon=True, name="component-progress").start()

  def stop(self) -> None:
    self._stop.set()

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    if record.name == PROGRESS.name:
      self._print(INDENT + message)
    elif match := _RUNNING.match(message):
      self._started[match.group(1)], self._outcome = time.monotonic(), "ran"
    elif message.startswith("A cached execution"):
      self._outcome = "cached"
    elif match := _FINISHED.match(message):
      self._line(match.group(1), self._outcome)
    elif match := _SKIPPED.match(message):
      self._line(match.group(1), "skipped")


@contextlib.contextmanager
def component_progress(total: int, log_file: str, verbose: bool = False,
                       figure: Callable[[str], str] | None = None) -> Iterator[ComponentProgress]:
  """Within the block: the progress lines on stdout and every log record, absl INFO included, in
  `log_file`. Unless `verbose`, the process's stdout and stderr file descriptors point at `log_file`
  too, so what writes to them directly (the pip installs of Beam stages, TensorFlow's C++ logs,
  libraries' handlers) stays off the terminal."""
  from absl import logging as absl_logging
  root = logging.getLogger()
  saved_level, saved_verbosity = root.level, absl_logging.get_verbosity()
  to_file = logging.FileHandler(log_file)
  to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  with contextlib.ExitStack() as stack:
    terminal = sys.stdout
    if not verbose:
      terminal = stack.enter_context(_descriptors_to(log_file))
      for handler in root.handlers:  # they would write each record to the file a second time
        stack.callback(handler.setLevel, handler.level)
        handler.setLevel(max(handler.level, logging.ERROR))
    progress = ComponentProgress(total, terminal, figure)
    absl_logging.set_verbosity(absl_logging.INFO)
    root.setLevel(logging.INFO)
    for handler in (progress, to_file):
      root.addHandler(handler)
    progress.start()
    try:
      yield progress
    finally:
      progress.stop()
      for handler in (progress, to_file):
        root.removeHandler(handler)
      to_file.close()
      root.setLevel(saved_level)
      absl_logging.set_verbosity(saved_verbosity)


@contextlib.contextmanager
def _descriptors_to(log_file: str) -> Iterator[TextIO]:
  """File descriptors 1 and 2 appended to `log_file` within the block; yields a text stream on the
  original stdout (or sys.stdout itself when it is not file descriptor 1, e.g. under pytest's capture)."""
  try:
    direct = sys.stdout.fileno() == 1
  except (AttributeError, OSError, ValueError):  # a captured / replaced sys.stdout
    direct = False
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  saved = [os.dup(1), os.dup(2)]
  terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1) if direct else sys.stdout
  with open(log_file, "a") as log:
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
  try:
    yield terminal
  finally:
    for stream in (sys.stdout, sys.stderr):
      stream.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved:
      os.close(fd)
    if direct:
      terminal.close()
