"""The run report's parts: the page and its figures in a real browser, and the readers of the components'
outputs (TensorBoard events, TFMA calibration buckets, StatisticsGen histograms). The report of a whole
pipeline run is tested in test_pipeline.py."""
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from browser import rendered
from hemix_tf.report import Report, plt
from pipelines.report import DECILES, deciles, sequence_lengths, training_curves


def test_a_report_page_carries_its_figures_and_a_browser_shows_them(tmp_path):
  page = Report("a run")
  page.section("Curves", "text")
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  page.figure("curve", fig)
  page.table(["slice", "AUC", "examples"], [["all", 0.81234, 12345], ["none", None, 0]])
  path = page.write(str(tmp_path / "report"))
  shown = rendered(path)
  assert shown["title"] == "a run" and shown["headings"] == ["Curves"]
  assert [alt for alt, _ in shown["images"]] == ["curve"] and shown["images"][0][1] > 0
  assert (tmp_path / "report" / "curve.png").read_bytes()[:4] == b"\x89PNG"
  html = (tmp_path / "report" / "index.html").read_text()
  assert "0.8123" in html and "12,345" in html and "–" in html
  # The same check on a page whose figure is not there: the browser reports it as not loaded.
  (tmp_path / "broken.html").write_text('<html><body><img alt="gone" src="missing.png"></body></html>')
  assert rendered(tmp_path / "broken.html")["images"] == [["gone", 0]]


def test_calibration_buckets_merge_into_deciles_of_the_examples():
  # 100 buckets of 10 examples each, prediction p in the bucket, p of them positive out of 10.
  buckets = [(i / 100, (i + 1) / 100, 10.0, i / 10, 10 * (i + 0.5) / 100) for i in range(100)]
  groups = deciles(buckets)
  assert len(groups) == DECILES and all(n == 100 for _, _, n in groups)
  assert [round(p, 3) for p, _, _ in groups][:2] == [0.05, 0.15]
  assert groups[0][1] == sum(i / 10 for i in range(10)) / 100  # observed rate of the first decile
  assert sum(n for _, _, n in deciles(buckets[:3] + [(0.9, 1.0, 1000.0, 900.0, 950.0)])) == 1030


def test_training_curves_are_read_from_the_trainers_tensorboard_events(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path / "logs" / "train"))
  with writer.as_default():
    for step in (50, 100, 150):
      tf.summary.scalar("batch_loss", 1.0 / step, step=step)
  writer.close()
  curves = training_curves(str(tmp_path))
  assert [(s, round(v, 4)) for s, v, _ in curves["batch_loss"]] == [(50, 0.02), (100, 0.01), (150, 0.0067)]


def test_sequence_lengths_are_statisticsgens_number_of_values_histograms(tmp_path):
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  dataset = stats.datasets.add()
  for name, missing in (("global_item_id", 0), ("realtime_item_id", 7), ("item_id", 0)):
    feature = dataset.features.add()
    feature.path.step.append(name)
    common = feature.num_stats.common_stats
    common.num_missing = missing
    bucket = common.num_values_histogram.buckets.add()
    bucket.low_value, bucket.high_value, bucket.sample_count = 1, 20, 93
  (tmp_path / "Split-train").mkdir()
  (tmp_path / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
  lengths = sequence_lengths(str(tmp_path))
  assert lengths == {"global": [(1, 20, 93)], "realtime": [(1, 20, 93)]}  # not the candidate's item_id
