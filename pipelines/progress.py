"""One progress line per TFX component, with the full library log in a file.

LocalDagRunner reports its work only in absl INFO records ("Component X is running.", "A cached
execution N is used.", "Going to run a new execution N", "Component X is finished."), mixed with
thousands of lines from Beam, TFMA and TensorFlow. `component_progress` reads those records and prints

  [3/9] SchemaGen: ran in 2 s
  [4/9] ExampleValidator: cached in 0 s

while every INFO record goes to `log_file`, and the terminal shows only errors (unless `verbose`).
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from typing import Iterator, TextIO

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_SKIPPED = re.compile(r"Skipping component (\S+)\.")


class ComponentProgress(logging.Handler):
  """absl records of LocalDagRunner -> `[i/n] <component>: cached|ran|skipped in <s> s` on `out`."""

  def __init__(self, total: int, out: TextIO | None = None):
    super().__init__(logging.INFO)
    self.total, self.out = total, out
    self.done, self.lines = 0, []
    self._started, self._outcome = {}, "ran"

  def _line(self, component: str, outcome: str) -> None:
    self.done += 1
    seconds = time.monotonic() - self._started.pop(component, time.monotonic())
    line = f"[{self.done}/{self.total}] {component}: {outcome} in {seconds:.0f} s"
    self.lines.append(line)
    print(line, file=self.out or sys.stdout, flush=True)

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    if match := _RUNNING.match(message):
      self._started[match.group(1)], self._outcome = time.monotonic(), "ran"
    elif message.startswith("A cached execution"):
      self._outcome = "cached"
    elif match := _FINISHED.match(message):
      self._line(match.group(1), self._outcome)
    elif match := _SKIPPED.match(message):
      self._line(match.group(1), "skipped")


@contextlib.contextmanager
def component_progress(total: int, log_file: str, verbose: bool = False) -> Iterator[ComponentProgress]:
  """Within the block: the progress lines on stdout, absl / Python INFO records in `log_file`, and
  (unless `verbose`) nothing below ERROR from the libraries on the terminal."""
  from absl import logging as absl_logging
  root, absl_logger = logging.getLogger(), logging.getLogger("absl")
  saved = (root.level, absl_logger.level, absl_logging.get_verbosity(),
           [(h, h.level) for h in root.handlers])
  progress = ComponentProgress(total)
  to_file = logging.FileHandler(log_file)
  to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  if not verbose:
    for handler in root.handlers:
      handler.setLevel(max(handler.level, logging.ERROR))
  absl_logging.set_verbosity(absl_logging.INFO)
  root.setLevel(logging.INFO)
  for handler in (progress, to_file):
    root.addHandler(handler)
  try:
    yield progress
  finally:
    for handler in (progress, to_file):
      root.removeHandler(handler)
    to_file.close()
    root.setLevel(saved[0])
    absl_logger.setLevel(saved[1])
    absl_logging.set_verbosity(saved[2])
    for handler, level in saved[3]:
      handler.setLevel(level)
