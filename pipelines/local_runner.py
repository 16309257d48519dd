"""The local Beam runner of every job and TFX component here (light: the CLIs' --help imports it).

Beam's "DirectRunner" (2.77) first tries the PrismRunner, which downloads a Go binary: offline the
attempt fails and Beam falls back to the FnApiRunner, but a machine with internet would run on Prism,
another runner than the one documented and tested. So the runner is named: the FnApiRunner (Beam's
portable in-process runner, the Fn API harness that Dataflow, Flink and Spark run Python in), in memory
(in multi-processing mode it lost rows at the GroupByKey here, docs/BENCHMARKS.md).
"""
LOCAL_OPTIONS = ("--runner=FnApiRunner", "--direct_running_mode=in_memory")
