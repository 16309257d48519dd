"""Training examples/s and achieved GFLOP/s of a preset next to this machine's matmul GFLOP/s, as JSON;
with --baseline_revision, the same measurement of that git revision's code in the same run.

  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small --xla=interaction
  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small --compare_xla=off,step,interaction
  .venv/bin/python benchmarks/train_throughput.py --preset=paper-small --precision=mixed_bfloat16 \
      --compare_xla=off,off:mixed_bfloat16,interaction,interaction:mixed_bfloat16
  .venv/bin/python benchmarks/train_throughput.py --preset=paper --baseline_revision=7babdb4 \
      --baseline_preset=cpu-small          # the same architecture under its old name
  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small --threads=1
  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small --model=use_global_sequence=false  # a ceiling
  .venv/bin/python benchmarks/train_throughput.py --preset=cpu-small --profile_dir=runs/profile/cpu-small
Training FLOPs per example are taken as 3 x the profiler's forward FLOPs (forward + backward, the usual
estimate). Inputs are a constant in-memory batch with full-length sequences, padded as the input
pipeline pads them, so only the model step is timed (the input pipeline has its own benchmark). Peak:
float32 matmuls of --matmul_size squared, in the same process. The baseline revision runs its own copy
of this script (checked out with `git worktree` into a temporary directory) on the same machine, in
alternation with this tree's (--repeats pairs of processes). On this VM a process now and then runs at
a fixed ~1,000 examples/s whatever the model (docs/BENCHMARKS.md), so the best of the runs is the figure.
"""
import this_tree  # (first: this checkout's hemix_tf, not the editable install's)
import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_string("preset", "cpu-small", "Model preset.")
flags.DEFINE_list("model", [], "HeMix hyper-parameters over --preset, name=value (YAML values), e.g. "
                  "--model=event_norm=false: what a design change would buy. This tree only: a baseline "
                  "revision runs its --baseline_preset as it stands.")
flags.DEFINE_integer("batch_size", 256, "Training batch size (the paper's).")
flags.DEFINE_integer("steps", 40, "Timed steps (after 5 warm-up steps).")
flags.DEFINE_integer("matmul_size", 2048, "Square matmul size for the peak measurement.")
flags.DEFINE_enum("xla", "off", ["off", "step", "interaction"], "XLA: the whole training step, or HeMix's "
                  "dense part after the embedding gathers (build_and_compile).")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"], "HeMixConfig.precision: the dtype "
                  "HeMix's layers after the lookups compute in.")
flags.DEFINE_list("compare_xla", [], "Also time these XLA modes (MODE, or MODE:PRECISION) side by side in this "
                  "process, in alternating rounds (a load that drifts during the run then hits every mode alike).")
flags.DEFINE_integer("rounds", 8, "Alternating rounds of --compare_xla (each of --steps / rounds steps).")
flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TensorFlow's default).")
flags.DEFINE_string("baseline_preset", None, "The baseline revision's preset (default: --preset); presets are "
                    "names, so the same architecture may carry another name there (7babdb4's cpu-small is "
                    "today's paper).")
flags.DEFINE_string("profile_dir", None, "Also trace --profile_steps steps with TensorFlow's profiler into this "
                    "directory (open it in TensorBoard's Profile tab) and print their op-level breakdown.")
flags.DEFINE_integer("profile_steps", 5, "Steps traced with --profile_dir.")
flags.DEFINE_string("baseline_revision", None, "Also measure this git revision (its own script, same flags "
                    "that it knows) and report the speed-up.")
flags.DEFINE_integer("repeats", 3, "With --baseline_revision: alternating pairs of processes (this tree, the "
                     "revision); speed-ups of the best and of the median runs (the best is the least disturbed).")
FLAGS = flags.FLAGS


def matmul_gflops(n: int, repeats: int = 20, dtype: str = "float32") -> float:
  import tensorflow as tf
  a, b = (tf.cast(tf.random.normal([n, n]), dtype) for _ in range(2))
  f = tf.function(lambda: tf.matmul(a, b))
  f().numpy()
  start = time.perf_counter()
  for _ in range(repeats):
    out = f()
  out.numpy()
  return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def model_config(precision: str):
  """--preset with --model's hyper-parameters, computing in `precision`."""
  from hemix_tf.model.config import parse_overrides, preset
  return preset(FLAGS.preset, **{**parse_overrides(FLAGS.model), "precision": precision})


def measure() -> dict:
  import tensorflow as tf
  import tf_keras as keras
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  from hemix_tf.data.feature_config import load_feature_config
  from hemix_tf.data.padding import pad_lists
  from hemix_tf.model.accounting import forward_flops, full_length_features
  from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels

  fc = load_feature_config("synthetic-lbs")
  config = model_config(FLAGS.precision)
  model = build_and_compile(fc, config, hashing_preprocessor(fc, config).table_sizes, xla=FLAGS.xla)
  flops = forward_flops(model, fc)
  batch = with_labels(pad_lists(full_length_features(fc, FLAGS.batch_size), fc), config.tasks)
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace (and compile) + warm up
  # Timed from the end of a first step to the end of the last, leaving out fit's set-up and teardown:
  # deleting the input iterator at the end sometimes held a whole 40-step fit to ~10.2 s on this VM.
  step_ends = []  # (wall, process CPU) seconds at the end of each step
  model.fit(ds, steps_per_epoch=FLAGS.steps + 1, epochs=1, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda batch, logs: step_ends.append((time.perf_counter(), time.process_time())))])
  wall, cpu = (end - start for end, start in zip(step_ends[-1], step_ends[0]))
  examples_per_s = FLAGS.steps * FLAGS.batch_size / wall
  achieved = 3 * flops * examples_per_s / 1e9
  peak, extra = matmul_gflops(FLAGS.matmul_size), {}
  if FLAGS.precision != "float32":  # TensorFlow's (oneDNN's) bfloat16 kernels: AMX / AVX-512 BF16 here
    extra["matmul_peak_bfloat16_gflops_per_s"] = round(matmul_gflops(FLAGS.matmul_size, dtype="bfloat16"), 1)
  if FLAGS.profile_dir:
    from step_profile import op_breakdown
    tf.profiler.experimental.start(FLAGS.profile_dir)
    model.fit(ds, steps_per_epoch=FLAGS.profile_steps, epochs=1, verbose=0)
    tf.profiler.experimental.stop()
    extra["profile"] = {"dir": FLAGS.profile_dir, **op_breakdown(FLAGS.profile_dir, FLAGS.profile_steps)}
  return {"benchmark": "train_throughput", "preset": FLAGS.preset, "model": FLAGS.model, "cpu_count": os.cpu_count(),
          "threads": FLAGS.threads or "default", "xla": FLAGS.xla, "precision": FLAGS.precision,
          "batch_size": FLAGS.batch_size, "steps": FLAGS.steps,
          "examples_per_s": round(examples_per_s, 1),
          "cores_busy": round(cpu / wall, 2),  # the process's CPU time over the timed wall time
          "forward_gflops_per_example": round(flops / 1e9, 5),
          "achieved_train_gflops_per_s": round(achieved, 2),
          "matmul_peak_gflops_per_s": round(peak, 1),
          "fraction_of_peak": round(achieved / peak, 4), **extra}


def compare_xla(variants: list[str]) -> dict:
  """{variant: examples/s}, the median over alternating rounds of the same constant batch; a variant is an
  XLA mode, or MODE:PRECISION (default: --precision)."""
  import tensorflow as tf
  from hemix_tf.data.feature_config import load_feature_config
  from hemix_tf.data.padding import pad_lists
  from hemix_tf.model.accounting import full_length_features
  from hemix_tf.model.training import build_and_compile, hashing_preprocessor, with_labels

  fc = load_feature_config("synthetic-lbs")
  models = {}
  for variant in variants:
    mode, _, precision = variant.partition(":")
    config = model_config(precision or FLAGS.precision)
    models[variant] = build_and_compile(fc, config, hashing_preprocessor(fc, config).table_sizes, xla=mode)
  features, labels = with_labels(pad_lists(full_length_features(fc, FLAGS.batch_size), fc), config.tasks)
  for model in models.values():
    for _ in range(3):  # trace (and compile) + warm up
      model.train_on_batch(features, labels)
  steps = max(1, FLAGS.steps // FLAGS.rounds)
  rates = {variant: [] for variant in variants}
  for _ in range(FLAGS.rounds):
    for variant, model in models.items():
      start = time.perf_counter()
      for _ in range(steps):
        model.train_on_batch(features, labels)
      rates[variant].append(steps * FLAGS.batch_size / (time.perf_counter() - start))
  tf.keras.backend.clear_session()
  return {variant: round(statistics.median(r), 1) for variant, r in rates.items()}


def run_script(tree: str, args: list[str]) -> dict:
  """This benchmark's JSON, run as `tree`'s copy of the script in a new process."""
  env = {**os.environ, "PYTHONPATH": tree}
  if FLAGS.threads:  # TensorFlow's own variables: a revision whose script lacks --threads obeys them too
    env.update(TF_NUM_INTRAOP_THREADS=str(FLAGS.threads), TF_NUM_INTEROP_THREADS=str(FLAGS.threads))
  out = subprocess.run([sys.executable, os.path.join(tree, "benchmarks", "train_throughput.py"), *args],
                       check=True, capture_output=True, text=True, env=env, cwd=tree).stdout
  return json.loads(out[out.index("{"):])


def mode_args(script: str) -> list[str]:
  """--xla and --precision for a revision's copy of this script (its text): each flag it defines, so
  both sides run the same mode; a revision that predates a flag (7babdb4 has neither) runs as this tree
  does with the flag's default."""
  return [f"--{name}={FLAGS[name].value}" for name in ("xla", "precision")
          if f'flags.DEFINE_enum("{name}"' in script]


def compare_with_revision(revision: str) -> dict:
  """The plain measurement of this tree and of `revision` (checked out into a temporary git worktree),
  each in its own process, alternating --repeats times: a load that drifts hits both alike."""
  common = [f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}", f"--matmul_size={FLAGS.matmul_size}"]
  current_args = [f"--preset={FLAGS.preset}", f"--model={','.join(FLAGS.model)}", f"--xla={FLAGS.xla}",
                  f"--precision={FLAGS.precision}", *common]
  runs = {"current": [], "baseline": []}
  with this_tree.code_trees(revision) as trees:
    with open(os.path.join(trees["baseline"], "benchmarks", "train_throughput.py")) as f:
      baseline_args = [f"--preset={FLAGS.baseline_preset or FLAGS.preset}", *mode_args(f.read()), *common]
    for _ in range(FLAGS.repeats):
      runs["current"].append(run_script(trees["current"], current_args))
      runs["baseline"].append(run_script(trees["baseline"], baseline_args))
  rates = {side: [run["examples_per_s"] for run in side_runs] for side, side_runs in runs.items()}
  return {"revision": revision, "repeats": FLAGS.repeats, "baseline_preset": FLAGS.baseline_preset or FLAGS.preset,
          "examples_per_s": {side: {"best": max(r), "median": statistics.median(r), "runs": r}
                             for side, r in rates.items()},
          "speedup_of_best": round(max(rates["current"]) / max(rates["baseline"]), 2),
          "speedup_of_median": round(statistics.median(rates["current"]) / statistics.median(rates["baseline"]), 2)}


def main(argv):
  del argv
  current = measure()
  if FLAGS.compare_xla:
    current["examples_per_s_by_xla"] = compare_xla(FLAGS.compare_xla)
  if FLAGS.baseline_revision:
    current = {"current": current, "comparison": compare_with_revision(FLAGS.baseline_revision)}
  print(json.dumps(current, indent=2))


if __name__ == "__main__":
  app.run(main)
