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
             "rating": _ints(inter, "rating", path), "timestamp": _ints(inter, "timestamp", path),
             "line": np.arange(inter.num_rows) + 2}  # after the header line
  users = {"user_id": _ints(user, "user_id", d / "ml-100k.user"),
           "age": user["age"].to_pylist(), "gender": user["gender"].to_pylist(),
           "occupation": user["occupation"].to_pylist(), "zip": user["zip_code"].to_pylist()}
  items = {"item_id": _ints(item, "item_id", d / "ml-100k.item"),
           "year": item["release_year"].to_pylist(),
           "genres": [g.split() for g in item["class"].to_pylist()]}
  return ratings, users, items


# GroupLens ratings: whole stars 1-5 (ML-1M), half stars 0.5-5 (ML-10M).
RATING_VALUES = frozenset(np.arange(1, 11) / 2)
GROUPLENS_FILES = {"ratings.dat": ("user_id", "item_id", "rating", "timestamp"),
                   "users.dat": ("user_id", "gender", "age", "occupation", "zip"),
                   "movies.dat": ("item_id", "title", "genres")}


def _read_dat(path: Path) -> list[tuple[int, list[str]]]:
  """(line number, fields) of every line of a GroupLens `::` file. The encoding is UTF-8 where the file
  is valid UTF-8 (ML-10M), else latin-1 (ML-1M). A line with another field count is not GroupLens."""
  names = GROUPLENS_FILES[path.name]
  raw = path.read_bytes()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    text = raw.decode("latin-1")
  rows = []
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    fields = line.split("::")
    if len(fields) != len(names):
      raise DataContractError(f"{path}, line {number}: {len(fields)} '::'-separated fields, expected "
                              f"{len(names)} ({', '.join(names)})")
    rows.append((number, fields))
  if not rows:
    raise DataContractError(f"{path}: empty file")
  return rows


def _side_ids(path: Path, rows: list[tuple[int, list[str]]]) -> np.ndarray:
  """The first column of users.dat / movies.dat as ids; a side table that is not one fails."""
  ids = []
  for number, fields in rows:
    if not fields[0].strip().isdigit():
      raise DataContractError(f"{path}, line {number}, column '{GROUPLENS_FILES[path.name][0]}': "
                              f"'{fields[0]}' is not a non-negative integer")
    ids.append(int(fields[0]))
  return np.array(ids, np.int64)


def read_grouplens(directory: str | Path) -> tuple[dict, dict | None, dict | None, list[dict]]:
  """(ratings, users, items, rejected) from a GroupLens `::` directory (ML-1M / ML-10M).

  ratings.dat is required; without users.dat or movies.dat their features are null (None here).
  Every ratings.dat line ends in `ratings` (with its `line` number) or in `rejected` (a dead letter:
  file, line, column, reason, text): an id or timestamp that is not an integer, a rating outside
  RATING_VALUES, a second rating of the same movie by the same user (the request id is user-item)."""
  d = Path(directory)
  path = d / "ratings.dat"
  if not path.exists():
    raise DataContractError(f"{path}: no such file (a GroupLens directory has ratings.dat, and "
                            f"optionally users.dat and movies.dat)")
  columns = {name: [] for name in (*GROUPLENS_FILES["ratings.dat"], "line")}
  rejected, first_rating = [], {}

  def reject(number: int, column: str, reason: str, fields: list[str]) -> None:
    rejected.append({"file": str(path), "line": number, "column": column, "reason": reason,
                     "text": "::".join(fields)})

  for number, fields in _read_dat(path):
    user, item, rating, timestamp = (f.strip() for f in fields)
    bad = next((c for c, v in (("user_id", user), ("item_id", item), ("timestamp", timestamp))
                if not v.isdigit()), None)
    if bad:
      reject(number, bad, "not a non-negative integer", fields)
      continue
    try:
      value = float(rating)
    except ValueError:
      value = None
    if value not in RATING_VALUES:
      reject(number, "rating", f"not a rating in {min(RATING_VALUES)}-{max(RATING_VALUES)} (half stars)", fields)
      continue
    key = (int(user), int(item))
    if key in first_rating:
      reject(number, "item_id", f"user {user} already rated movie {item} on line {first_rating[key]}", fields)
      continue
    first_rating[key] = number
    for name, v in zip(columns, (int(user), int(item), value, int(timestamp), number)):
      columns[name].append(v)
  ratings = {k: np.array(v, np.float64 if k == "rating" else np.int64) for k, v in columns.items()}
  users = items = None
  if (d / "users.dat").exists():
    rows = _read_dat(d / "users.dat")
    users = {"user_id": _side_ids(d / "users.dat", rows), **{
        name: [fields[i].strip() for _, fields in rows] for i, name in enumerate(GROUPLENS_FILES["users.dat"]) if i}}
  if (d / "movies.dat").exists():
    rows = _read_dat(d / "movies.dat")
    items = {"item_id": _side_ids(d / "movies.dat", rows),
             "year": [_year_from_title(fields[1]) for _, fields in rows],
             "genres": [fields[2].strip().split("|") for _, fields in rows]}
  return ratings, users, items, rejected


def to_contract(ratings: dict, users: dict | None, items: dict | None,
                config: FeatureConfig) -> tuple[pa.Table, pa.Table]:
  """(impressions, events) contract tables, ordered by timestamp. `users` / `items` None: no side
  table, those features are null. `ratings["line"]` (optional) names a rating's source line in errors."""
  order = np.lexsort((ratings["item_id"], ratings["user_id"], ratings["timestamp"]))
  r = {k: np.asarray(v)[order] for k, v in ratings.items()}
  lines = r.get("line")
  n = len(order)
  if users is None:
    user = {name: pa.nulls(n, pa.string()) for name in ("gender", "occupation", "zip_prefix")}
    user["age"] = pa.nulls(n, pa.int64())
  else:
    u_index = _index(users["user_id"], r["user_id"], "user", "users", lines)
    user = {"age": pa.array([int(a) if a.isdigit() else None for a in users["age"]], pa.int64()).take(u_index),
            "gender": pa.array(users["gender"]).take(u_index),
            "occupation": pa.array([str(o) for o in users["occupation"]]).take(u_index),
            "zip_prefix": pa.array([z[:3] for z in users["zip"]]).take(u_index)}
  if items is None:
    item = {"year": pa.nulls(n, pa.int64()), "genres": pa.nulls(n, pa.list_(pa.string())),
            "primary_genre": pa.nulls(n, pa.string())}
  else:
    i_index = _index(items["item_id"], r["item_id"], "item", "items", lines)
    item = {"year": pa.array([int(y) if y.isdigit() else None for y in items["year"]], pa.int64()).take(i_index),
            "genres": pa.array(items["genres"], pa.list_(pa.string())).take(i_index),
            "primary_genre": pa.array([g[0] if g else None for g in items["genres"]], pa.string()).take(i_index)}
  ts = r["timestamp"]
  rating = r["rating"].astype(np.float64)
  imp = {
      "request_id": pc.binary_join_element_wise(pa.array(r["user_id"].astype(str)),
                                                pa.array(r["item_id"].astype(str)), "-"),
      "user_id": r["user_id"], "item_id": r["item_id"], "timestamp": ts,
      "click": (rating >= 4).astype(np.int64), "conversion": (rating == 5).astype(np.int64),
      "age": user["age"], "gender": user["gender"], "occupation": user["occupation"],
      "zip_prefix": user["zip_prefix"], "year": item["year"], "genres": item["genres"],
      "hour": (ts % 86400) // 3600, "weekday": (ts // 86400 + 3) % 7,  # 1970-01-01 was a Thursday
  }
  behavior = [f"{v:g}" for v in rating]  # "5", "3.5"
  ev = {"user_id": r["user_id"], "item_id": r["item_id"], "timestamp": ts,
        "behavior": pa.array(behavior, pa.string()), "primary_genre": item["primary_genre"]}
  imp_schema = contract_schema(LogKind.IMPRESSIONS, config)
  ev_schema = contract_schema(LogKind.EVENTS, config)
  return (pa.table(imp).select(imp_schema.names).cast(imp_schema),
          pa.table(ev).select(ev_schema.names).cast(ev_schema))


def _index(ids, wanted: np.ndarray, what: str, table: str, lines: np.ndarray | None = None) -> pa.Array:
  """Positions of `wanted` ids in `ids`; an id missing from the side table is an error naming the
  source line of the record (`lines`), else its row."""
  ids = np.asarray(ids)
  sorter = np.argsort(ids)
  pos = np.searchsorted(ids, wanted, sorter=sorter).clip(0, len(ids) - 1)
  found = ids[sorter[pos]] == wanted
  if not found.all():
    first = int(np.flatnonzero(~found)[0])
    where = f"ratings line {int(lines[first])}" if lines is not None else f"row {first}"
    raise DataContractError(f"{where}: {what} {wanted[first]} is not in the {table} file")
  return pa.array(sorter[pos])
