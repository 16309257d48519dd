"""benchmarks/: every script measures the code of the checkout it lives in."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def _imported_from(tmp_path: pathlib.Path, first_line: str) -> str:
  """Where a script in `tmp_path`/benchmarks, starting with `first_line`, imports hemix_tf from."""
  script = tmp_path / "benchmarks" / "probe.py"
  script.write_text(f"{first_line}\nimport hemix_tf\nprint(hemix_tf.__file__)\n")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, env=env,
                        cwd=tmp_path).stdout.strip()


def test_a_benchmark_run_from_another_checkout_measures_that_checkouts_code(tmp_path):
  """The editable install maps hemix_tf to the checkout it was installed from: a benchmark run from a
  git worktree measured that checkout's code instead (edits in progress included)."""
  (tmp_path / "benchmarks").mkdir()
  shutil.copy(REPO / "benchmarks" / "this_tree.py", tmp_path / "benchmarks")
  (tmp_path / "hemix_tf").mkdir()
  (tmp_path / "hemix_tf" / "__init__.py").write_text("")
  assert _imported_from(tmp_path, "import this_tree") == str(tmp_path / "hemix_tf" / "__init__.py")
  assert _imported_from(tmp_path, "") != str(tmp_path / "hemix_tf" / "__init__.py")  # the editable install


def test_every_benchmark_that_imports_the_product_imports_this_tree_first():
  for script in sorted(set((REPO / "benchmarks").glob("*.py")) - {REPO / "benchmarks" / "this_tree.py"}):
    text = script.read_text()
    if "hemix_tf" not in text and "pipelines" not in text:
      continue
    if not any(line.startswith(("import hemix_tf", "from hemix_tf", "import pipelines", "from pipelines"))
               for line in text.splitlines()):
      continue  # names the product without importing it (fuxictr_dnn.py runs in FuxiCTR's interpreter)
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    first = [line for line in imports if not line.startswith("from __future__")][0]
    assert first.startswith("import this_tree"), script.name


def test_the_movielens_protocol_reports_the_last_epoch_and_the_decay_after_the_best():
  sys.path.insert(0, str(REPO / "benchmarks"))
  try:
    from run_summary import model_row
  finally:
    sys.path.remove(str(REPO / "benchmarks"))

  def run(aucs):
    slices = {"warm": {"auc": 0.8, "gauc": 0.75, "between_auc": 0.7}, "cold": {"auc": 0.7, "gauc": 0.7, "between_auc": 0.6}}
    return {"curve": [{"train_loss": 0.5, "metrics": {"click": {"auc": a, "slices": slices}}} for a in aucs],
            "metrics": {"click": {"auc": aucs[-1], "slices": slices}}}

  row = model_row([run([0.75, 0.74, 0.73]), run([0.76, 0.75, 0.74])])
  assert row["click_auc_values"] == [0.73, 0.74] and abs(row["click_auc_mean"] - 0.735) < 1e-9
  assert row["per_epoch_mean"] == [0.755, 0.745, 0.735] and abs(row["best_epoch_minus_last"] - 0.02) < 1e-9
  assert row["click_auc_by_users"] == {"warm": 0.8, "cold": 0.7}
  assert row["click_between_user_auc_by_users"] == {"warm": 0.7, "cold": 0.6}
  stored_before = run([0.75, 0.74, 0.73])  # a run stored before the between-user AUC existed: None, not NaN
  del stored_before["metrics"]["click"]["slices"]["warm"]["between_auc"]
  assert model_row([stored_before])["click_between_user_auc_by_users"]["warm"] is None
  assert model_row([stored_before])["click_by_users_and_history"] is None  # stored before the split
  split = run([0.75, 0.74, 0.73])  # each slice split again by whether the example has a global event
  for users, rate in (("warm", 0.5), ("cold", 0.6)):
    split["metrics"]["click"]["slices"][users] = {**split["metrics"]["click"]["slices"][users], "by_history": {
        "history": {"auc": 0.7, "mean_label": rate, "mean_prediction": 0.4},
        "no history": {"auc": None, "mean_label": 1.0, "mean_prediction": 0.9}}}
  parts = model_row([split])["click_by_users_and_history"]
  assert parts["cold"]["history"] == {"auc": 0.7, "mean_label": 0.6, "mean_prediction": 0.4}
  assert parts["warm"]["no history"]["auc"] is None  # one class only: no AUC, not NaN


def test_the_movielens_protocol_reads_hemix_against_each_model_seed_by_seed():
  """A gap between two means over 3 seeds said nothing of the seeds' noise: the report pairs the seeds."""
  sys.path.insert(0, str(REPO / "benchmarks"))
  try:
    from movielens_fixed_protocol import paired_difference
  finally:
    sys.path.remove(str(REPO / "benchmarks"))

  d = paired_difference([0.7594, 0.7548, 0.7578], [0.7591, 0.7576, 0.7555])
  assert abs(d["mean"] - (0.0003 - 0.0028 + 0.0023) / 3) < 1e-5 and d["seeds_ahead"] == 2 and d["seeds"] == 3
  assert abs(d["standard_error"] - np.std([0.0003, -0.0028, 0.0023], ddof=1) / np.sqrt(3)) < 1e-5
  assert 0.9 < d["paired_t_p"] <= 1.0
  assert paired_difference([0.75], [0.74])["standard_error"] is None


FAKE_FUXICTR = '''import argparse, csv, json, os, sys
import numpy as np
parser = argparse.ArgumentParser()
for flag in ("--split_dir", "--seed", "--scores_out"):
  parser.add_argument(flag)
parser.add_argument("--without_sequences", action="store_true")
args = parser.parse_args(sys.argv[2:])  # argv[1]: the FuxiCTR script this interpreter was given
rows = list(csv.DictReader(open(os.path.join(args.split_dir, "eval.csv"))))
order = slice(None, None, -1) if os.environ.get("FAKE_REORDER") else slice(None)
labels = np.array([float(r["click"]) for r in rows])[order]
np.savez(args.scores_out, labels=labels, scores=np.array([float(r["score"]) for r in rows])[order])
print(json.dumps({"curve": [{"click_auc": 0.7, "train_loss": 0.6}, {"click_auc": 0.71, "train_loss": 0.5}]}))
'''


def test_the_parity_report_splits_fuxictrs_scores_by_users_and_refuses_another_order(tmp_path):
  """FuxiCTR's DNN was compared with this repository's by its AUC alone: where the two differ (the users'
  order, or each user's films) took a scratch copy of its script (ARCHITECTURE finding 39)."""
  split = tmp_path / "split"
  split.mkdir()
  (split / "train.csv").write_text("click,user_id\n1,1\n0,2\n")
  rows = [(1, 1, 0.9), (0, 1, 0.1), (1, 1, 0.8), (0, 1, 0.2), (1, 3, 0.6), (0, 3, 0.4), (1, 4, 0.3), (0, 4, 0.2),
          (0, 4, 0.1)]
  (split / "eval.csv").write_text("click,user_id,score\n" + "".join(f"{c},{u},{s}\n" for c, u, s in rows))
  fake = tmp_path / "python"
  fake.write_text(f"#!{sys.executable}\n{FAKE_FUXICTR}")
  fake.chmod(0o755)
  code = ("import json, sys; sys.path.insert(0, 'benchmarks'); from public_library_parity import fuxictr_runs, "
          f"summary; print(json.dumps(summary(fuxictr_runs('{fake}', __import__('pathlib').Path('{split}'), True, 2))))")
  env = {k: v for k, v in os.environ.items() if k != "FAKE_REORDER"}
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  report = json.loads(out.stdout.strip().splitlines()[-1])
  assert report["last_epoch"] == [0.71, 0.71] and report["per_epoch_mean"] == [0.7, 0.71]
  assert report["click_auc_by_users"] == {"warm": 1.0, "cold": 5 / 6}
  assert report["click_gauc_by_users"] == {"warm": 1.0, "cold": 1.0}
  # cold users' mean logits: user 3's 0 above user 4's; pairs (tie 0.5) + 2 + 0 + (ties 1) out of 6
  assert abs(report["click_between_user_auc_by_users"]["cold"] - 3.5 / 6) < 1e-9
  reordered = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                             env={**env, "FAKE_REORDER": "1"})
  assert reordered.returncode != 0 and "in another order than its rows" in reordered.stderr
