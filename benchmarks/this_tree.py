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
