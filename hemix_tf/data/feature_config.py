"""Feature configuration: which raw-log columns exist, their kinds and groups (HeMix Section 3.2).

A feature config is a YAML file (the packaged ones live in ``hemix_tf/configs/``). It names
  * the non-sequential features of the impression log by group -- user (U), item (I), context (C) --
    and kind (categorical id, categorical string, dense float, multi-valued);
  * the behaviour-event side-info columns that make up one sequence event (d_I in Section 3.2),
    the allowed behaviour types and the sequence lengths L_G / L_R;
  * the UTC offset of the local day that separates the global from the real-time sequence.
Nothing about feature names is hard-coded elsewhere: the contract, schemas, sequence job and model
all read this object.
"""
from __future__ import annotations

import dataclasses
import enum
from importlib import resources
from pathlib import Path

import yaml

# The train vocabularies' threshold (the Transform's and the harness's): values seen fewer times share the
# out-of-vocabulary row, which is then trained: the row that ids new in serving (cold users, new items) read.
VOCABULARY_MIN_COUNT = 2


class FeatureKind(str, enum.Enum):
  CATEGORICAL_ID = "categorical_id"  # int64 identifier, e.g. an item id or a geo cell
  CATEGORICAL_STRING = "categorical_string"  # string category, e.g. gender
  DENSE = "dense"  # float, e.g. distance in km
  MULTI_VALUED = "multi_valued"  # list of strings, e.g. genres


class FeatureGroup(str, enum.Enum):
  USER = "user"
  ITEM = "item"
  CONTEXT = "context"


# Columns every impression / event log carries, whatever the config (docs/DATA.md).
REQUEST_ID, USER_ID, ITEM_ID, TIMESTAMP, BEHAVIOR = (
    "request_id", "user_id", "item_id", "timestamp", "behavior")
LABELS = ("click", "conversion")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  name: str
  kind: FeatureKind
  group: FeatureGroup | None = None  # None for sequence side info


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
  """The two behaviour sequences of Section 3.2 and how one event is described."""
  side_info: tuple[FeatureSpec, ...]  # event columns besides item_id, timestamp, behavior
  behaviors: tuple[str, ...]  # allowed values of the `behavior` column
  global_length: int  # L_G: most recent events before the impression's local day
  realtime_length: int  # L_R: most recent events of that day, strictly before the impression
  # The side info of SIM's hard search (HeMixConfig.global_search): an item feature of the same name too,
  # so that the candidate's id and the events' ids share one vocabulary (e.g. the category).
  search: str | None = None


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  name: str
  features: tuple[FeatureSpec, ...]
  sequence: SequenceConfig
  day_utc_offset_hours: float = 0.0  # local day = [00:00, 24:00) at UTC + offset
  passthrough: tuple[str, ...] = ()  # extra float impression columns kept as-is (e.g. oracle_ctr)

  def group(self, group: FeatureGroup) -> tuple[FeatureSpec, ...]:
    return tuple(f for f in self.features if f.group == group)

  @property
  def day_offset_seconds(self) -> int:
    return int(round(self.day_utc_offset_hours * 3600))

  def day_start(self, timestamps):
    """Start (UTC seconds) of the local day that contains each timestamp; works on ints and arrays."""
    off = self.day_offset_seconds
    return (timestamps + off) // 86400 * 86400 - off


def _spec(raw: dict, group: FeatureGroup | None, where: str) -> FeatureSpec:
  unknown = set(raw) - {"name", "kind"}
  if unknown or "name" not in raw or "kind" not in raw:
    raise ValueError(f"{where}: a feature needs exactly 'name' and 'kind', got {sorted(raw)}")
  try:
    kind = FeatureKind(raw["kind"])
  except ValueError:
    raise ValueError(f"{where}: feature '{raw['name']}' has unknown kind '{raw['kind']}'; "
                     f"expected one of {[k.value for k in FeatureKind]}") from None
  return FeatureSpec(name=str(raw["name"]), kind=kind, group=group)


def parse_feature_config(raw: dict, where: str = "<config>") -> FeatureConfig:
  """Builds and validates a FeatureConfig from the YAML mapping."""
  features = []
  for group in FeatureGroup:
    for i, f in enumerate(raw.get("features", {}).get(group.value, [])):
      features.append(_spec(f, group, f"{where}: features.{group.value}[{i}]"))
  seq = raw.get("sequence", {})
  side_info = tuple(_spec(f, None, f"{where}: sequence.side_info[{i}]")
                    for i, f in enumerate(seq.get("side_info", [])))
  sequence = SequenceConfig(
      side_info=side_info,
      behaviors=tuple(str(b) for b in seq.get("behaviors", [])),
      global_length=int(seq.get("global_length", 0)),
      realtime_length=int(seq.get("realtime_length", 0)),
      search=seq.get("search"))
  config = FeatureConfig(
      name=str(raw.get("name", where)), features=tuple(features), sequence=sequence,
      day_utc_offset_hours=float(raw.get("day_utc_offset_hours", 0.0)),
      passthrough=tuple(raw.get("passthrough", [])))
  _check(config, where)
  return config


def feature_config_to_dict(config: FeatureConfig) -> dict:
  """The YAML mapping of a FeatureConfig: parse_feature_config(feature_config_to_dict(c)) == c."""
  def spec(f: FeatureSpec) -> dict:
    return {"name": f.name, "kind": f.kind.value}
  return {"name": config.name, "day_utc_offset_hours": config.day_utc_offset_hours,
          "passthrough": list(config.passthrough),
          "features": {g.value: [spec(f) for f in config.group(g)] for g in FeatureGroup},
          "sequence": {"side_info": [spec(f) for f in config.sequence.side_info],
                       "behaviors": list(config.sequence.behaviors),
                       "global_length": config.sequence.global_length,
                       "realtime_length": config.sequence.realtime_length,
                       **({"search": config.sequence.search} if config.sequence.search else {})}}


def _check(config: FeatureConfig, where: str) -> None:
  names = [f.name for f in config.features]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"{where}: features listed twice: {dupes}")
  reserved = {REQUEST_ID, TIMESTAMP, BEHAVIOR, *LABELS, *config.passthrough}
  clash = sorted(reserved & set(names))
  if clash:
    raise ValueError(f"{where}: {clash} are contract columns, not features")
  for ident in (USER_ID, ITEM_ID):
    spec = next((f for f in config.features if f.name == ident), None)
    if spec is not None and spec.kind != FeatureKind.CATEGORICAL_ID:
      raise ValueError(f"{where}: '{ident}' must have kind categorical_id")
  side = [f.name for f in config.sequence.side_info]
  if {USER_ID, ITEM_ID, TIMESTAMP, BEHAVIOR} & set(side):
    raise ValueError(f"{where}: sequence.side_info repeats a contract column: {side}")
  if not config.sequence.behaviors:
    raise ValueError(f"{where}: sequence.behaviors must list the behaviour types")
  if config.sequence.global_length <= 0 or config.sequence.realtime_length <= 0:
    raise ValueError(f"{where}: sequence.global_length and realtime_length must be positive")
  search = config.sequence.search
  items = {f.name: f.kind for f in config.group(FeatureGroup.ITEM)}
  if search is not None and not (search in side and items.get(search) in (FeatureKind.CATEGORICAL_ID,
                                                                         FeatureKind.CATEGORICAL_STRING)):
    raise ValueError(f"{where}: sequence.search '{search}' must be a sequence side info and a single-valued "
                     f"categorical item feature")


PACKAGED = ("synthetic-lbs", "movielens", "amazon-grocery")


def read_text(path: str) -> str:
  """A local file, or a URI (gs://, s3://, hdfs://) through tf.io.gfile: a Kubeflow run reads its config
  from the bucket."""
  if "://" not in path:
    return Path(path).read_text()
  import tensorflow as tf  # only for URIs: the light tools never need it
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def load_feature_config(name_or_path: str | Path) -> FeatureConfig:
  """Loads a packaged config by name (see PACKAGED) or a YAML file by path."""
  path = Path(name_or_path)
  if path.suffix in (".yaml", ".yml"):
    text, where = read_text(str(name_or_path)), str(name_or_path)
  elif str(name_or_path) in PACKAGED:
    res = resources.files("hemix_tf") / "configs" / f"{name_or_path}.yaml"
    text, where = res.read_text(), f"{name_or_path}.yaml"
  else:
    raise ValueError(f"unknown feature config '{name_or_path}': give a .yaml path or one of {PACKAGED}")
  return parse_feature_config(yaml.safe_load(text), where)
