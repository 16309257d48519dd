"""The local Beam runner of every job and TFX component here (light: the CLIs' --help imports it).

Beam's "DirectRunner" (2.77) first tries the PrismRunner, which downloads a Go binary: offline the
attempt fails and Beam falls back to the FnApiRunner, but a machine with internet would run on Prism,
another runner than the one documented and tested. So the runner is named: the FnApiRunner (Beam's
portable in-process runner, the Fn API harness that Dataflow, Flink and Spark run Python in), in memory
(on 2 cores as fast as multi-processing, docs/BENCHMARKS.md).
"""
LOCAL_OPTIONS = ("--runner=FnApiRunner", "--direct_running_mode=in_memory")


def multi_processing_options(workers: int) -> tuple[str, ...]:
  """Options that, after LOCAL_OPTIONS, run the same runner with `workers` SDK worker processes (0: one
  per core), for a stage whose Python per element outweighs starting them (the Evaluator). A worker
  reads whole files: the input needs as many. Call `without_timed_flush` in the process that runs it."""
  return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def without_timed_flush() -> None:
  """Turns off the FnApiRunner's timed flush of its gRPC data plane (Beam 2.77), which loses data.

  In multi-processing (and gRPC) mode the runner sends each bundle's input to a worker through a
  TimeBasedBufferingClosableOutputStream (worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 1000): a thread
  flushes it every second, `flush_callback(get())` then `_clear()`, while the runner's thread writes the
  input chunks into it without a lock. A chunk written between the two is in neither message: silently
  lost (docs/DATA.md, "Root cause of the multi-processing loss"). With 0 the streams flush by size only,
  from the writing thread, as the SDK workers' do by default. Call before the pipeline runs.
  """
  from apache_beam.runners.portability.fn_api_runner import worker_handlers
  worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
