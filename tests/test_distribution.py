"""MirroredStrategy over 2 logical CPUs and a 2-process MultiWorkerMirroredStrategy match single-device
training; a killed training resumes from BackupAndRestore and ends at the same step count."""
import json
import os
import subprocess
import sys
from pathlib import Path

import portpicker
import pytest

HELPER = str(Path(__file__).with_name("distributed_training.py"))


def train(tmp_path, name, *args, env=None):
  out = tmp_path / f"{name}.json"
  proc = subprocess.run([sys.executable, HELPER, f"--out={out}", *args], capture_output=True, text=True,
                        env={**os.environ, **(env or {})}, timeout=600)
  return proc, out


def result(proc, out):
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(out.read_text())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("single")
  return {**result(*train(tmp, "single", "--mode=single")), "dir": tmp}


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_single_device(tmp_path, single):
  mirrored = result(*train(tmp_path, "mirrored", "--mode=mirrored"))
  assert mirrored["replicas"] == 2 and single["replicas"] == 1
  assert mirrored["steps"] == single["steps"] == 24
  assert mirrored["final_loss"] == pytest.approx(single["final_loss"], rel=0.02)


@pytest.mark.slow
def test_two_process_multi_worker_matches_single_device(tmp_path, single):
  ports = [portpicker.pick_unused_port() for _ in range(2)]
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  out = tmp_path / "multi.json"
  procs = [subprocess.Popen([sys.executable, HELPER, "--mode=multi_worker", f"--out={out}"],
                            env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                        "task": {"type": "worker", "index": i}})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  multi = json.loads(out.read_text())
  assert multi["replicas"] == 2 and multi["steps"] == single["steps"]
  assert multi["final_loss"] == pytest.approx(single["final_loss"], rel=0.05)


@pytest.mark.slow
def test_killed_training_resumes_and_finishes_with_the_uninterrupted_runs_weights(tmp_path, single):
  backup = tmp_path / "backup"
  proc, _ = train(tmp_path, "killed", "--mode=single", f"--backup_dir={backup}", "--kill_at_step=13")
  assert proc.returncode == 3 and any(backup.iterdir())  # died after step 13, a checkpoint at step 8
  proc, out = train(tmp_path, "resumed", "--mode=single", f"--backup_dir={backup}")
  resumed = result(proc, out)
  assert resumed["steps"] == 24  # the same total, not 24 more
  assert resumed["epochs_run"] == 2  # epochs 2 and 3 of 8 steps: epoch 1 came from the backup
  assert resumed["final_loss"] == pytest.approx(single["final_loss"], rel=0.02)
  # The resumed run starts from the weights of the checkpoint at step 8, not from a fresh initialisation.
  checkpointed = json.loads((tmp_path / "killed.json.weights-8.json").read_text())
  restored = json.loads((tmp_path / "resumed.json.weights-begin-8.json").read_text())
  assert set(restored) == set(checkpointed) and len(restored) > 10
  for name, value in checkpointed.items():
    assert restored[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
  fresh = json.loads((tmp_path / "killed.json.weights-begin-0.json").read_text())
  assert sum(fresh[n] != pytest.approx(checkpointed[n], rel=1e-6, abs=1e-6) for n in fresh) > len(fresh) // 2
  # It ends where the uninterrupted run ends: the optimizer restored, and the input stream (shuffled, its
  # passes not aligned with the epochs) resumed after the 8 batches the backup trained on, not from its start.
  final = json.loads((tmp_path / "resumed.json.weights-24.json").read_text())
  uninterrupted = json.loads((single["dir"] / "single.json.weights-24.json").read_text())
  assert set(final) == set(uninterrupted)
  for name, value in uninterrupted.items():
    assert final[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
  assert "unbuilt" not in proc.stderr


class _Resolver:
  def __init__(self, task_type, task_id, jobs):
    self.task_type, self.task_id, self._jobs = task_type, task_id, jobs

  def cluster_spec(self):
    return type("Spec", (), {"jobs": self._jobs})()


class _Strategy:
  def __init__(self, resolver):
    self.cluster_resolver = resolver


@pytest.mark.parametrize("task_type, task_id, jobs, chief", [
    (None, None, [], True),  # one process
    ("worker", 0, ["worker"], True), ("worker", 1, ["worker"], False),
    ("chief", 0, ["chief", "worker"], True), ("worker", 0, ["chief", "worker"], False),
])
def test_only_the_chief_writes_the_saved_model_path(task_type, task_id, jobs, chief):
  """Under MultiWorkerMirroredStrategy every worker saves (the save is collective): the chief into the
  model path, each other worker into its own temporary directory (they all used to write the same path)."""
  from hemix_tf.distribute import is_chief, write_dir
  strategy = _Strategy(_Resolver(task_type, task_id, jobs) if task_type else None)
  assert is_chief(strategy) == chief
  assert (write_dir("gs://b/model", strategy) == "gs://b/model") == chief
  if not chief:
    assert write_dir("gs://b/model", strategy) == f"gs://b/model.{task_type}-{task_id}.tmp"
