"""MovieLens and Amazon Grocery adapters: the published counts, the split, fixtures, bad input."""
import dataclasses
import json
import zipfile

import numpy as np
import pyarrow.compute as pc
import pytest

from hemix_tf.data import amazon, movielens
from hemix_tf.data.cli import build
from hemix_tf.data.contract import DataContractError, LogKind
from hemix_tf.data.dataset import eval_start_timestamp, read_manifest
from hemix_tf.data.feature_config import FeatureGroup, FeatureKind, FeatureSpec, load_feature_config
from hemix_tf.data.io import read_log

ML = load_feature_config("movielens")
# The shipped config leaves out what the adapter also provides (the zip prefix, the rating's hour and
# weekday; hemix_tf/configs/movielens.yaml): a config that lists them gets them.
ML_ALL = dataclasses.replace(ML, features=ML.features + (
    FeatureSpec("zip_prefix", FeatureKind.CATEGORICAL_STRING, FeatureGroup.USER),
    FeatureSpec("hour", FeatureKind.CATEGORICAL_ID, FeatureGroup.CONTEXT),
    FeatureSpec("weekday", FeatureKind.CATEGORICAL_ID, FeatureGroup.CONTEXT)))
AMAZON = load_feature_config("amazon-grocery")


def test_ml100k_counts_and_labels(ml100k_dir):
  imp, ev = movielens.to_contract(*movielens.read_atomic(ml100k_dir), ML_ALL)
  assert imp.num_rows == ev.num_rows == 100_000
  assert pc.count_distinct(imp["user_id"]).as_py() == 943
  assert pc.count_distinct(imp["item_id"]).as_py() == 1682
  rating = ev["behavior"].to_numpy(zero_copy_only=False).astype(int)
  by_key = dict(zip(zip(ev["user_id"].to_pylist(), ev["item_id"].to_pylist()), rating))
  ratings = np.array([by_key[k] for k in zip(imp["user_id"].to_pylist(), imp["item_id"].to_pylist())])
  np.testing.assert_array_equal(imp["click"].to_numpy(), ratings >= 4)
  np.testing.assert_array_equal(imp["conversion"].to_numpy(), ratings == 5)
  row = imp.filter(pc.equal(imp["request_id"], "196-242")).to_pylist()[0]
  assert (row["age"], row["gender"], row["occupation"], row["zip_prefix"]) == (49, "M", "writer", "551")
  assert row["timestamp"] == 881250949 and row["hour"] == 15 and row["weekday"] == 3  # 1997-12-04 15:55 UTC, Thursday (Monday = 0)
  assert row["genres"] == ["Comedy"] and row["year"] == 1996  # Kolya (1996)


def test_ml100k_dataset_and_standard_split(tmp_path, ml100k_dir):
  manifest = build("ml-100k", str(tmp_path / "ml"), source_dir=str(ml100k_dir))
  assert manifest["impressions"] == 100_000 and manifest["impression_users"] == 943
  assert 9_900 <= manifest["eval_impressions"] <= 10_100
  imp = read_log(tmp_path / "ml" / "impressions", LogKind.IMPRESSIONS, ML)
  assert manifest["eval_start_timestamp"] == eval_start_timestamp(imp["timestamp"].to_numpy())
  assert read_manifest(tmp_path / "ml") == manifest


def test_ml100k_from_the_recbole_wheel_layout(tmp_path, ml100k_dir):
  wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as zf:
    for name in movielens.ML100K_FILES:
      zf.write(ml100k_dir / name, f"recbole/dataset_example/ml-100k/{name}")
  (tmp_path / "cache" / "wheels").mkdir(parents=True)
  wheel.rename(tmp_path / "cache" / "wheels" / wheel.name)
  target = movielens.fetch_ml100k(tmp_path / "cache")  # cached wheel: no download
  assert (target / "ml-100k.inter").read_bytes() == (ml100k_dir / "ml-100k.inter").read_bytes()


def _write_grouplens(d):
  d.mkdir()
  (d / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
  (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
  (d / "movies.dat").write_bytes("10::GoldenEye (1995)::Action|Adventure|Thriller\n"
                                 "20::Amélie (2001)::Comedy|Romance\n".encode("latin-1"))


def test_grouplens_reader(tmp_path):
  _write_grouplens(tmp_path / "ml-1m")
  ratings, users, items, rejected = movielens.read_grouplens(tmp_path / "ml-1m")
  assert not rejected and ratings["line"].tolist() == [1, 2, 3]
  imp, ev = movielens.to_contract(ratings, users, items, ML_ALL)
  rows = {r["request_id"]: r for r in imp.to_pylist()}
  assert set(rows) == {"1-10", "1-20", "2-10"}
  assert rows["1-10"]["click"] == 1 and rows["1-10"]["conversion"] == 1 and rows["1-20"]["click"] == 0
  assert rows["2-10"]["occupation"] == "16" and rows["2-10"]["zip_prefix"] == "700"
  assert rows["1-20"]["genres"] == ["Comedy", "Romance"] and rows["1-20"]["year"] == 2001
  assert ev["behavior"].to_pylist() == ["5", "4", "3"]  # ordered by timestamp
  assert ev["primary_genre"].to_pylist() == ["Action", "Action", "Comedy"]


def test_grouplens_utf8_half_stars_and_ratings_alone(tmp_path):
  """ML-10M: UTF-8 files and half-star ratings; without users.dat / movies.dat the features are null."""
  d = tmp_path / "ml-10m"
  _write_grouplens(d)
  (d / "users.dat").write_bytes("1::F::1::10::Zürich\n2::M::56::16::70072\n".encode("utf-8"))
  (d / "ratings.dat").write_text("1::10::3.5::978300760\n2::10::0.5::978301968\n")
  ratings, users, items, _ = movielens.read_grouplens(d)
  imp, ev = movielens.to_contract(ratings, users, items, ML_ALL)
  assert imp.to_pylist()[0]["zip_prefix"] == "Zür"  # not mojibake
  assert ev["behavior"].to_pylist() == ["3.5", "0.5"] and set(ev["behavior"].to_pylist()) <= set(ML.sequence.behaviors)
  (d / "users.dat").unlink()
  (d / "movies.dat").unlink()
  imp, _ = movielens.to_contract(*movielens.read_grouplens(d)[:3], ML)
  assert imp.num_rows == 2 and imp["gender"].null_count == 2 and imp["genres"].null_count == 2


def test_grouplens_bad_values_are_dead_letters_with_their_lines(tmp_path):
  d = tmp_path / "g"
  _write_grouplens(d)
  (d / "ratings.dat").write_text("1::10::5::978300760\n1::20::0::978302109\n2::10::9::978301968\n"
                                 "1::x::3::978302109\n1::10::4::978309999\n2::20::4::978301969\n")
  ratings, users, items, rejected = movielens.read_grouplens(d)
  assert ratings["line"].tolist() == [1, 6]
  assert [(r["line"], r["column"]) for r in rejected] == [(2, "rating"), (3, "rating"), (4, "item_id"), (5, "item_id")]
  assert "already rated movie 10 on line 1" in rejected[3]["reason"] and rejected[1]["text"] == "2::10::9::978301968"
  assert len(ratings["line"]) + len(rejected) == 6  # every line in exactly one place


def test_grouplens_bad_files_fail_naming_file_and_line(tmp_path):
  d = tmp_path / "g"
  _write_grouplens(d)
  for text, message in [("", r"ratings.dat: empty file"),
                        ("1::10::5::978300760\n1::10::5\n", r"ratings.dat, line 2: 3 '::'-separated fields"),
                        ("1::10::5::978300760::x\n", r"ratings.dat, line 1: 5 '::'-separated fields")]:
    (d / "ratings.dat").write_text(text)
    with pytest.raises(DataContractError, match=message):
      movielens.read_grouplens(d)
  (d / "ratings.dat").write_text("1::10::4::978300000\n2::10::4::978300000\n1::99::5::1\n")
  with pytest.raises(DataContractError, match="ratings line 3: item 99 is not in the items file"):
    movielens.to_contract(*movielens.read_grouplens(d)[:3], ML)  # the source line, not a row after sorting
  (d / "ratings.dat").unlink()
  with pytest.raises(DataContractError, match="ratings.dat: no such file"):
    movielens.read_grouplens(d)


def test_hemix_data_grouplens_writes_dead_letters_and_balances(tmp_path):
  d = tmp_path / "g"
  _write_grouplens(d)
  (d / "ratings.dat").write_text("1::10::5::978300760\n1::20::7::978302109\n2::10::4::978301968\n")
  manifest = build("grouplens", str(tmp_path / "out"), source_dir=str(d))
  assert manifest["source_records"] == 3 == manifest["impressions"] + manifest["rejected_records"]
  letters = [json.loads(x) for x in (tmp_path / "out" / "dead_letters.jsonl").read_text().splitlines()]
  assert [(x["line"], x["column"]) for x in letters] == [(2, "rating")]


def test_amazon_counts_and_negatives(amazon_dir):
  interactions, items = amazon.read_grocery(amazon_dir)
  imp, ev = amazon.to_contract(interactions, items, AMAZON, negatives_per_positive=2, seed=5, negatives="popularity")
  assert ev.num_rows == 121_892
  assert pc.count_distinct(ev["user_id"]).as_py() == 14_681
  assert pc.count_distinct(ev["item_id"]).as_py() == 8_687
  assert imp.num_rows == 3 * 121_892 and pc.sum(imp["click"]).as_py() == 121_892
  assert pc.count_distinct(imp["request_id"]).as_py() == imp.num_rows
  # Negatives: at the positive's second, never the reviewed item, from items reviewed that month.
  rid = imp["request_id"].to_pylist()
  pos_item = {r.rsplit("-", 1)[0]: i for r, i, c in zip(rid, imp["item_id"].to_pylist(),
                                                         imp["click"].to_pylist()) if c}
  month = amazon._month(ev["timestamp"].to_numpy())
  month_items = {}
  for m, i in zip(month, ev["item_id"].to_pylist()):
    month_items.setdefault(m, set()).add(i)
  neg = imp.filter(pc.equal(imp["click"], 0))
  neg_month = amazon._month(neg["timestamp"].to_numpy())
  in_month = [i in month_items[m] for i, m in zip(neg["item_id"].to_pylist(), neg_month)]
  assert np.mean(in_month) > 0.999
  for r, i in zip(neg["request_id"].to_pylist(), neg["item_id"].to_pylist()):
    assert pos_item[r.rsplit("-", 1)[0]] != i
  again = amazon.to_contract(interactions, items, AMAZON, negatives_per_positive=2, seed=5, negatives="popularity")[0]
  assert again.equals(imp)
  other = amazon.to_contract(interactions, items, AMAZON, negatives_per_positive=2, seed=6, negatives="popularity")[0]
  assert not other["item_id"].equals(imp["item_id"])


def test_amazon_catalogue_negatives_are_uniform_over_the_items_as_dins(amazon_dir):
  """The default (DIN's Amazon protocol): one negative per review drawn uniformly from the catalogue,
  never the reviewed item: rare items are drawn as often as popular ones."""
  interactions, items = amazon.read_grocery(amazon_dir)
  imp, _ = amazon.to_contract(interactions, items, AMAZON, seed=5)
  assert imp.num_rows == 2 * 121_892 and pc.sum(imp["click"]).as_py() == 121_892
  neg = imp.filter(pc.equal(imp["click"], 0))["item_id"].to_numpy()
  pos = imp.filter(pc.equal(imp["click"], 1))["item_id"].to_numpy()
  catalogue = np.unique(items["item_id"])
  assert set(neg) <= set(catalogue)
  # Uniform: each item drawn about 121,892 / |catalogue| times, the most reviewed one's included.
  counts = np.bincount(np.searchsorted(catalogue, neg), minlength=len(catalogue))
  expected = len(neg) / len(catalogue)
  assert abs(counts.mean() - expected) < 1e-9 and counts.max() < 3 * expected + 10
  assert counts[np.bincount(np.searchsorted(catalogue, pos)).argmax()] < 3 * expected + 10
  by_review = {}
  for r, i, c in zip(imp["request_id"].to_pylist(), imp["item_id"].to_pylist(), imp["click"].to_pylist()):
    by_review.setdefault(r.rsplit("-", 1)[0], {})[c] = i
  assert all(v[0] != v[1] for v in by_review.values())
  with pytest.raises(ValueError, match="negatives"):
    amazon.to_contract(interactions, items, AMAZON, negatives="hard")
