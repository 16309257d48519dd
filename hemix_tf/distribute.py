"""Choosing the tf.distribute strategy: many hosts from TF_CONFIG, many devices on one host, or one.

  "auto":         MultiWorkerMirroredStrategy when TF_CONFIG names more than one worker, else
                  MirroredStrategy when the host has more than one GPU, else the default strategy;
  "mirrored":     MirroredStrategy over all local GPUs (or all logical CPUs when there is no GPU);
  "multi_worker": MultiWorkerMirroredStrategy from TF_CONFIG;
  "none":         the default (single-device) strategy.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker", "none")


def _workers_in_tf_config() -> int:
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def strategy_for(name: str = "auto") -> tf.distribute.Strategy:
  if name not in STRATEGIES:
    raise ValueError(f"unknown distribution '{name}'; choose one of {STRATEGIES}")
  if name == "auto":
    if _workers_in_tf_config() > 1:
      name = "multi_worker"
    elif len(tf.config.list_logical_devices("GPU")) > 1:
      name = "mirrored"
    else:
      name = "none"
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "mirrored":
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the shared outputs: the chief, or worker 0 of a cluster without one
  (a single process always)."""
  resolver = strategy.cluster_resolver
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def write_dir(path: str, strategy: tf.distribute.Strategy) -> str:
  """Where this process writes `path`: the chief the path itself; every other worker a private directory
  beside it (a multi-worker save is collective, so every worker saves, but only the chief's is kept)."""
  if is_chief(strategy):
    return path
  resolver = strategy.cluster_resolver
  return f"{path.rstrip('/')}.{resolver.task_type}-{resolver.task_id}.tmp"
