"""ExampleGen for the sequence job's output: its split files become the Examples artifact as they are.

The sequence job already writes what ExampleGen would: gzip TFRecords of tf.Examples, one directory per
split. TFX's ImportExampleGen reads every record and writes it again through a Beam Reshuffle, which the
local runners hold in memory whole (7.4 GB at 300k examples, killed at 1M: docs/BENCHMARKS.md). This
executor links each input file into `Split-<name>/` (a hard link where the file system has them, else a
byte copy through tf.io.gfile, e.g. on GCS): no record is parsed, memory does not depend on the logs, and
the artifact holds the same records. The component keeps ExampleGen's driver (FileBasedExampleGen), so
the input fingerprint, spans and the cache behave as ImportExampleGen's.

  <input_base>/<split pattern>   ->  <artifact uri>/Split-<split>/<input file name>
"""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

FILE_FORMAT = "tfrecords_gzip"  # what the sequence job writes and tfx-bsl reads


def publish_file(source: str, destination: str) -> None:
  """`destination` holds `source`'s bytes: a hard link on one local file system, else a copy."""
  try:
    os.link(source, destination)
  except OSError:  # another device, or a file system without links (gs://, ...)
    tf.io.gfile.copy(source, destination, overwrite=True)


class Executor(base_executor.BaseExecutor):
  """Publishes every split's input files into the Examples artifact without reading them."""

  def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    examples.split_names = artifact_utils.encode_split_names([split.name for split in input_config.splits])
    for split in input_config.splits:
      files = sorted(tf.io.gfile.glob(os.path.join(base, split.pattern)))
      if not files:
        raise FileNotFoundError(f"no file matches split '{split.name}': {os.path.join(base, split.pattern)}")
      split_dir = artifact_utils.get_split_uri([examples], split.name)
      tf.io.gfile.makedirs(split_dir)
      for path in files:
        publish_file(path, os.path.join(split_dir, os.path.basename(path)))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, FILE_FORMAT)


def ExampleImport(input_base: str, splits: dict[str, str]) -> FileBasedExampleGen:
  """The component: `splits` {name: file pattern under input_base}, e.g. {"train": "train/*"}."""
  return FileBasedExampleGen(
      input_base=input_base,
      input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=n, pattern=p) for n, p in splits.items()]),
      custom_executor_spec=executor_spec.ExecutorClassSpec(Executor)).with_id("ImportExampleGen")
