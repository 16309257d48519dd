"""Imported first by every benchmark: puts the checkout the script lives in first on sys.path.

The editable install maps `hemix_tf` and `pipelines` to the checkout it was installed from; without
this, a benchmark run from a git worktree (a frozen tree, or `train_throughput.py`'s own process beside
a baseline revision) would measure the main checkout's code, edits in progress included.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path[:1]:
  sys.path.insert(0, ROOT)


def code_trees(baseline_revision):
  """A context manager: {"current": this checkout} and, with `baseline_revision`, {"baseline": that
  revision checked out into a temporary git worktree}, removed on exit. A side's scripts run from
  `<tree>/benchmarks/` measure that tree's code (this module)."""
  import contextlib
  import subprocess
  import tempfile

  @contextlib.contextmanager
  def trees():
    sides = {"current": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
      if baseline_revision:
        sides["baseline"] = os.path.join(tmp, "tree")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", sides["baseline"], baseline_revision],
                       check=True, capture_output=True)
      try:
        yield sides
      finally:
        if baseline_revision:
          subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", sides["baseline"]], capture_output=True)
  return trees()
