"""The pipeline's ExampleGen: the sequence job's split files become the Examples artifact unread."""
import os

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from pipelines.example_import import ExampleImport, Executor

SPLITS = {"train": "train/*", "eval": "eval/*"}


def _write(path, values):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(str(path), "GZIP") as w:
    for v in values:
      w.write(tf.train.Example(features=tf.train.Features(feature={
          "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))})).SerializeToString())


def _run(input_base, out_uri, splits=SPLITS) -> standard_artifacts.Examples:
  examples = standard_artifacts.Examples()
  examples.uri = str(out_uri)
  config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name=n, pattern=p) for n, p in splits.items()])
  Executor().Do({}, {"examples": [examples]},
                {"input_base": str(input_base), "input_config": proto_utils.proto_to_json(config)})
  return examples


def test_every_split_file_is_published_unread_and_downstream_reads_the_same_records(tmp_path):
  base = tmp_path / "examples"
  _write(base / "train" / "part-00000-of-00002.tfrecord.gz", [1, 2])
  _write(base / "train" / "part-00001-of-00002.tfrecord.gz", [3])
  _write(base / "eval" / "part-00000-of-00001.tfrecord.gz", [4])
  examples = _run(base, tmp_path / "artifact")

  assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
  assert examples_utils.get_payload_format(examples) == example_gen_pb2.FORMAT_TF_EXAMPLE
  assert examples_utils.get_file_format(examples) == "tfrecords_gzip"
  for split, expected in (("train", [1, 2, 3]), ("eval", [4])):
    published = sorted(tf.io.gfile.glob(examples_utils.get_split_file_patterns([examples], split)[0]))
    for path in published:  # hard links: no byte was read or written
      assert os.path.samefile(path, base / split / os.path.basename(path))
    records = [tf.train.Example.FromString(r.numpy()).features.feature["x"].int64_list.value[0]
               for r in tf.data.TFRecordDataset(published, compression_type="GZIP")]
    assert sorted(records) == expected


def test_a_copy_where_links_fail_and_a_split_without_files_names_its_pattern(tmp_path, monkeypatch):
  base = tmp_path / "examples"
  _write(base / "train" / "part-0.tfrecord.gz", [1])
  _write(base / "eval" / "part-0.tfrecord.gz", [2])

  def no_links(*_):
    raise OSError("Invalid cross-device link")
  monkeypatch.setattr(os, "link", no_links)
  examples = _run(base, tmp_path / "copied")
  copy = os.path.join(artifact_utils.get_split_uri([examples], "train"), "part-0.tfrecord.gz")
  assert not os.path.samefile(copy, base / "train" / "part-0.tfrecord.gz")
  assert open(copy, "rb").read() == (base / "train" / "part-0.tfrecord.gz").read_bytes()

  with pytest.raises(FileNotFoundError, match="split 'eval'.*eval/\\*"):
    _run(base, tmp_path / "missing", {"train": "train/*", "eval": "validation/eval/*"})


def test_the_component_keeps_example_gens_id_and_driver():
  component = ExampleImport("/data/examples", SPLITS)
  assert component.id == "ImportExampleGen"
  assert component.driver_class.__name__ == "FileBasedDriver"
