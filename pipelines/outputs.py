"""Atomic job outputs: a Beam job writes into a staging directory beside its output directory and
publishes it whole when its counts balance, so a failed, killed or re-run job never leaves a mix of old
and new files where its outputs are read.

    <output_dir>.staging-<id>/   while the job runs (Beam's own beam-temp-* folders live inside it)
    <output_dir>/                after success; an existing one is replaced only with `overwrite`

A staging directory left by a killed or failed run is deleted by the next run into the same output.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Iterator

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


def check_output_dir(output_dir: str, overwrite: bool) -> None:
  """A non-empty output directory is refused unless `overwrite` (then it is replaced whole)."""
  if not overwrite and _exists_non_empty(output_dir):
    raise FileExistsError(f"{output_dir} is not empty: pass --overwrite to replace it, or choose a new "
                          "output directory")


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
def staged_output(output_dir: str, overwrite: bool) -> Iterator[str]:
  """Yields the staging directory to write into; publishes it as `output_dir` if the block succeeds.
  On an error the staging directory is kept for inspection (the error is re-raised) and deleted by the
  next run."""
  check_output_dir(output_dir, overwrite)
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
