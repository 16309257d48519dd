"""MovieLens as raw logs: every rating is an impression and a behaviour event.

impression = rating; click = rating >= 4; conversion = rating == 5; behaviour event = the same rating
(behavior = the rating value, side info = the movie's first genre); user features age, gender,
occupation, zip prefix; item features release year and genres; context hour and weekday (UTC).

Two sources:
  * MovieLens-100K in RecBole's atomic format (`ml-100k.inter/.user/.item`), from a directory or from
    the files inside the `recbole==1.2.1` wheel on the package index (`pip download --no-deps`, cached);
  * a GroupLens `::` directory (`ratings.dat`, `users.dat`, `movies.dat`: ML-1M, ML-10M) that users bring.
"""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from hemix_tf.data.contract import DataContractError, LogKind, contract_schema
from hemix_tf.data.feature_config import FeatureConfig

RECBOLE_WHEEL = "recbole==1.2.1"
ML100K_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
_WHEEL_DIR = "recbole/dataset_example/ml-100k/"


def _read_delimited(path: Path, names: list[str] | None = None, delimiter: str = "\t",
                    data: bytes | None = None) -> pa.Table:
  """All-string table of a delimited file without quoting (titles contain quotes)."""
  if not path.exists() and data is None:
    raise DataContractError(f"{path}: no such file")
  source = pa.BufferReader(data) if data is not None else str(path)
  read = pa_csv.ReadOptions(column_names=names, autogenerate_column_names=False)
  table = pa_csv.read_csv(source, read_options=read,
                          parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False),
                          convert_options=pa_csv.ConvertOptions(strings_can_be_null=False,
                                                                column_types=None))
  if table.num_rows == 0:
    raise DataContractError(f"{path}: empty file")
  return table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names]))


def _ints(table: pa.Table, column: str, path: Path) -> np.ndarray:
  col = table[column].combine_chunks()
  bad = pc.invert(pc.match_substring_regex(col, r"^\s*\d+(\.0*)?\s*$"))
  if pc.any(bad).as_py():
    i = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
    raise DataContractError(f"{path}, row {i}, column '{column}': '{col[i]}' is not a non-negative integer")
  return pc.cast(pc.replace_substring_regex(pc.utf8_trim_whitespace(col), r"\.0*$", ""),
                 pa.int64()).to_numpy()


def fetch_ml100k(cache_dir: str | Path) -> Path:
  """The ML-100K atomic files from the recbole wheel, downloaded once into `cache_dir`."""
  target = Path(cache_dir) / "ml-100k"
  if all((target / f).exists() for f in ML100K_FILES):
    return target
  wheels = Path(cache_dir) / "wheels"
  found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
  if not found:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), RECBOLE_WHEEL]
    print(f"downloading {RECBOLE_WHEEL} (MovieLens-100K inside) into {wheels} ...", flush=True)
    subprocess.run(cmd, check=True)
    found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
  return extract_ml100k(found[0], target)


def extract_ml100k(wheel: Path, target: Path) -> Path:
  target.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(wheel) as zf:
    for name in ML100K_FILES:
      try:
        (target / name).write_bytes(zf.read(_WHEEL_DIR + name))
      except KeyError:
        raise DataContractError(f"{wheel}: has no {_WHEEL_DIR + name}") from None
  return target


def _strip_types(table: pa.Table) -> pa.Table:
  """RecBole headers are `name:type`; keep the names."""
  return table.rename_columns([c.split(":")[0] for c in table.column_names])


def _year_from_title(title: str) -> str:
  m = re.search(r"\((\d{4})\)\s*$", title)
  return m.group(1) if m else ""


def read_atomic(directory: str | Path) -> tuple[dict, dict, dict]:
  """(ratings, users, items) column dicts from RecBole atomic ml-100k files."""
  d = Path(directory)
  inter = _strip_types(_read_delimited(d / "ml-100k.inter"))
  user = _strip_types(_read_delimited(d / "ml-100k.user"))
  item = _strip_types(_read_delimited(d / "ml-100k.item"))
  path = d / "ml-100k.inter"
  ratings = {"user_id": _ints(inter, "user_id", path), "item_id": _ints(inter, "item_id", path),
             "rating": _ints(inter, "rating", path), "timestamp": _ints(inter, "timestamp", path)}
  users = {"user_id": _ints(user, "user_id", d / "ml-100k.user"),
           "age": user["age"].to_pylist(), "gender": user["gender"].to_pylist(),
           "occupation": user["occupation"].to_pylist(), "zip": user["zip_code"].to_pylist()}
  items = {"item_id": _ints(item, "item_id", d / "ml-100k.item"),
           "year": item["release_year"].to_pylist(),
           "genres": [g.split() for g in item["class"].to_pylist()]}
  return ratings, users, items


def read_grouplens(directory: str | Path) -> tuple[dict, dict, dict]:
  """(ratings, users, items) column dicts from a GroupLens `::` directory (ML-1M / ML-10M)."""
  d = Path(directory)

  def table(name: str, names: list[str]) -> pa.Table:
    path = d / name
    if not path.exists():
      raise DataContractError(f"{path}: no such file (a GroupLens directory has ratings.dat, "
                              f"users.dat, movies.dat)")
    data = path.read_bytes().decode("latin-1").replace("::", "\t").encode("utf-8")
    return _read_delimited(path, names, data=data)

  r = table("ratings.dat", ["user_id", "item_id", "rating", "timestamp"])
  path = d / "ratings.dat"
  ratings = {c: _ints(r, c, path) for c in r.column_names}
  u = table("users.dat", ["user_id", "gender", "age", "occupation", "zip"])
  users = {"user_id": _ints(u, "user_id", d / "users.dat"), "age": u["age"].to_pylist(),
           "gender": u["gender"].to_pylist(), "occupation": u["occupation"].to_pylist(),
           "zip": u["zip"].to_pylist()}
  m = table("movies.dat", ["item_id", "title", "genres"])
  items = {"item_id": _ints(m, "item_id", d / "movies.dat"),
           "year": [_year_from_title(t) for t in m["title"].to_pylist()],
           "genres": [g.split("|") for g in m["genres"].to_pylist()]}
  return ratings, users, items


def to_contract(ratings: dict, users: dict, items: dict, config: FeatureConfig) -> tuple[pa.Table, pa.Table]:
  """(impressions, events) contract tables, ordered by timestamp."""
  order = np.lexsort((ratings["item_id"], ratings["user_id"], ratings["timestamp"]))
  r = {k: np.asarray(v)[order] for k, v in ratings.items()}
  u_index = _index(users["user_id"], r["user_id"], "user", "users")
  i_index = _index(items["item_id"], r["item_id"], "item", "items")
  age = pa.array([int(a) if a.isdigit() else None for a in users["age"]], pa.int64())
  year = pa.array([int(y) if y.isdigit() else None for y in items["year"]], pa.int64())
  genres = pa.array(items["genres"], pa.list_(pa.string()))
  primary = pa.array([g[0] if g else None for g in items["genres"]], pa.string())
  ts = r["timestamp"]
  imp = {
      "request_id": pc.binary_join_element_wise(pa.array(r["user_id"].astype(str)),
                                                pa.array(r["item_id"].astype(str)), "-"),
      "user_id": r["user_id"], "item_id": r["item_id"], "timestamp": ts,
      "click": (r["rating"] >= 4).astype(np.int64), "conversion": (r["rating"] == 5).astype(np.int64),
      "age": age.take(u_index), "gender": pa.array(users["gender"]).take(u_index),
      "occupation": pa.array([str(o) for o in users["occupation"]]).take(u_index),
      "zip_prefix": pa.array([z[:3] for z in users["zip"]]).take(u_index),
      "year": year.take(i_index), "genres": genres.take(i_index),
      "hour": (ts % 86400) // 3600, "weekday": (ts // 86400 + 3) % 7,  # 1970-01-01 was a Thursday
  }
  ev = {"user_id": r["user_id"], "item_id": r["item_id"], "timestamp": ts,
        "behavior": pa.array(r["rating"].astype(str)), "primary_genre": primary.take(i_index)}
  imp_schema = contract_schema(LogKind.IMPRESSIONS, config)
  ev_schema = contract_schema(LogKind.EVENTS, config)
  return (pa.table(imp).select(imp_schema.names).cast(imp_schema),
          pa.table(ev).select(ev_schema.names).cast(ev_schema))


def _index(ids, wanted: np.ndarray, what: str, table: str) -> pa.Array:
  """Positions of `wanted` ids in `ids`; an id missing from the side table is an error."""
  ids = np.asarray(ids)
  sorter = np.argsort(ids)
  pos = np.searchsorted(ids, wanted, sorter=sorter).clip(0, len(ids) - 1)
  found = ids[sorter[pos]] == wanted
  if not found.all():
    raise DataContractError(f"rating row {int(np.flatnonzero(~found)[0])}: {what} "
                            f"{wanted[~found][0]} is not in the {table} file")
  return pa.array(sorter[pos])
