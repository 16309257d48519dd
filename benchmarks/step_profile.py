"""Op-level breakdown of a TensorFlow profiler trace (the .xplane.pb that `tf.profiler.experimental`
writes, and TensorBoard's profile plugin reads): where the threads of the host spent their time.

Every event of a host thread is classified by its name and thread, and given its self time (its
duration less that of the events nested in it on the same thread):
  tf_op    "scope/name:Type": a TensorFlow kernel outside any XLA cluster (grouped by Type);
  xla      an HLO instruction of a compiled XLA cluster ("dot.3", "transpose_copy_fusion.4",
           "MatMul_1.48"; grouped without the numeric suffix);
  runtime  everything else: C++ frames ("ExecutorState::Process", "ThunkExecutor::Execute"), thread
           pools ("ParallelFor"), and threads that wait: the Python thread for the step it launched
           ("KernelAndDeviceFunc::Run"), the executor for a cluster ("BlockUntilReady").
Small clusters run on the calling thread, so every host thread is read. Summed over threads, so on 2 cores
a step's total can reach twice its wall time.
"""
from __future__ import annotations

import collections
import glob
import os
import re

TF_OP = re.compile(r"^[^:\s]+:([A-Za-z_][A-Za-z0-9_]*)$")  # scope/name:Type, never "Class::method"
NUMERIC_SUFFIX = re.compile(r"[._]\d+$")
HLO = re.compile(r"[a-z][\w.\-]*|[A-Z]\w*[._]\d+")  # dot.3, wrapped_reduce-window, MatMul_1.48


def latest_trace(logdir: str) -> str:
  """The newest .xplane.pb under a profiler log directory."""
  paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
  if not paths:
    raise FileNotFoundError(f"no profiler trace (*.xplane.pb) under {logdir}")
  return paths[-1]


def classify(name: str) -> tuple[str, str]:
  """An event name -> (kind, group): see the module docstring."""
  match = TF_OP.match(name)
  if match:
    return "tf_op", match.group(1)
  if HLO.fullmatch(name):
    return "xla", NUMERIC_SUFFIX.sub("", name)
  return "runtime", name


def self_times(events) -> list[tuple[str, float]]:
  """(name, self time in ms) of each event of one thread; events: (name, start_ps, duration_ps)."""
  out, stack = [], []  # stack: [name, end_ps, child_ps]
  def close(frame):
    out.append((frame[0], (frame[3] - frame[2]) / 1e9))
  for name, start, duration in sorted(events, key=lambda e: (e[1], -e[2])):
    while stack and start >= stack[-1][1]:
      close(stack.pop())
    if stack:
      stack[-1][2] += duration
    stack.append([name, start + duration, 0, duration])
  while stack:
    close(stack.pop())
  return out


def op_breakdown(logdir: str, steps: int, top: int = 8) -> dict:
  """Per training step, the thread time (ms) by kind and the `top` groups of the tf_op and xla kinds."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2
  space = xplane_pb2.XSpace()
  with open(latest_trace(logdir), "rb") as f:
    space.ParseFromString(f.read())
  kinds, groups = collections.Counter(), {"tf_op": collections.Counter(), "xla": collections.Counter()}
  for plane in space.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    for line in plane.lines:
      names = plane.event_metadata
      events = [(names[e.metadata_id].name, e.offset_ps, e.duration_ps) for e in line.events]
      for name, ms in self_times(events):
        kind, group = classify(name)
        kinds[kind] += ms
        if kind in groups:
          groups[kind][group] += ms
  def per_step(ms: float) -> float:
    return round(ms / steps, 2)
  return {"thread_ms_per_step": {k: per_step(v) for k, v in sorted(kinds.items())},
          **{f"top_{kind}_ms_per_step": {g: per_step(ms) for g, ms in counter.most_common(top)}
             for kind, counter in groups.items()}}
