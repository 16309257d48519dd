"""Atomic job outputs: a Beam job writes into a staging directory beside its output directory and
publishes it whole when its counts balance, so a failed, killed or re-run job never leaves a mix of old
and new files where its outputs are read.

    <output_dir>.staging-<id>/   while the job runs (Beam's own beam-temp-* folders live inside it)
    <output_dir>/                after success; an existing one is replaced only with `overwrite`

A staging directory left by a killed or failed run is deleted by the next run into the same output.
`--overwrite` replaces only a finished output of the same tool, never an input, the working directory or
a directory the tool did not write (`check_output_dir`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from typing import Iterable, Iterator

from apache_beam.io.filesystems import FileSystems

STAGING = ".staging-"


def _is_local(path: str) -> bool:
  return FileSystems.get_scheme(path) in (None, "file")


def _exists_non_empty(path: str) -> bool:
  if _is_local(path):
    return os.path.isdir(path) and any(os.scandir(path)) or os.path.isfile(path)
  return bool(FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list)


def _delete(path: str) -> None:
  if _is_local(path):
    shutil.rmtree(path, ignore_errors=True)
  elif FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list:
    FileSystems.delete([path.rstrip("/") + "/"])


SUMMARY = "job_summary.json"  # every job writes it last into its outputs (pipelines/beam_jobs.py)


def _normal(path: str) -> str:
  """An absolute, normalised path (local) or the URL without its trailing slash; the part of a glob
  pattern before its first wildcard."""
  path = re.split(r"[*?\[]", path, maxsplit=1)[0]
  if _is_local(path):
    return os.path.realpath(os.path.abspath(path or "."))
  return path.rstrip("/")


def _within(path: str, directory: str) -> bool:
  return path == directory or path.startswith(directory.rstrip("/") + "/")


def _made_by(output_dir: str, tool: str) -> bool:
  """Whether `output_dir` holds a finished output of `tool` (its summary names it)."""
  path = FileSystems.join(output_dir, SUMMARY)
  if not FileSystems.exists(path):
    return False
  try:
    with FileSystems.open(path) as f:
      return json.loads(f.read()).get("tool") == tool
  except (ValueError, OSError):
    return False


def check_output_dir(output_dir: str, overwrite: bool, tool: str, inputs: Iterable[str] = ()) -> None:
  """Refuses an output directory the job could not safely replace, before any work: one that is or
  contains the working directory, or is, contains or lies inside one of its `inputs`; a non-empty one
  without `overwrite`; with `overwrite`, one that is not a finished output of the same `tool`. So a job
  only ever deletes what it wrote."""
  target = _normal(output_dir)
  if _within(os.getcwd(), target):
    raise FileExistsError(f"--output_dir={output_dir} is or contains the working directory: choose a new "
                          "directory for the outputs")
  for given in inputs:
    source = _normal(given)
    if _within(source, target) or _within(target, source):
      raise FileExistsError(f"--output_dir={output_dir} overlaps the input {given}: the outputs need a "
                            "directory of their own")
  if not _exists_non_empty(output_dir):
    return
  if not overwrite:
    raise FileExistsError(f"{output_dir} is not empty: pass --overwrite to replace it, or choose a new "
                          "output directory")
  if not _made_by(output_dir, tool):
    raise FileExistsError(f"{output_dir} is not an output of {tool} (no {SUMMARY} of it inside): "
                          "--overwrite replaces only that; remove the directory yourself or choose another")


def _publish(staging: str, output_dir: str) -> None:
  _delete(output_dir)
  if _is_local(output_dir):
    os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
    os.rename(staging, output_dir)
    return
  files = [m.path for m in FileSystems.match([staging.rstrip("/") + "/**"])[0].metadata_list]
  FileSystems.rename(files, [output_dir.rstrip("/") + f[len(staging.rstrip("/")):] for f in files])
  _delete(staging)


@contextlib.contextmanager
def staged_output(output_dir: str, overwrite: bool, tool: str, inputs: Iterable[str] = ()) -> Iterator[str]:
  """Yields the staging directory to write into; publishes it as `output_dir` if the block succeeds
  (`check_output_dir` first). On an error the staging directory is kept for inspection (the error is
  re-raised) and deleted by the next run."""
  check_output_dir(output_dir, overwrite, tool, inputs)
  base = output_dir.rstrip("/")
  if _is_local(base):
    parent = os.path.dirname(os.path.abspath(base))
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
      if name.startswith(os.path.basename(base) + STAGING):
        _delete(os.path.join(parent, name))
  else:
    for m in FileSystems.match([base + STAGING + "*/**"])[0].metadata_list:
      FileSystems.delete([m.path])
  staging = f"{base}{STAGING}{uuid.uuid4().hex[:8]}"
  yield staging
  _publish(staging, output_dir)
