"""HeMix hyper-parameters (HeMix Sections 3 and 4.1.4) as a dataclass, with named presets.

Token budget (paper-small, Section 4.1.4): N_NS = 20 NS tokens split 4:1 into T_NS^G (16) and T_NS^R
(4); fixed queries Q^G (16) and Q^R (4); so O^G has 32 tokens, O^R 8, N_S = 40 = 2 N_NS and N = 60.
"""
from __future__ import annotations

import dataclasses
import enum

import yaml

from hemix_tf.data.feature_config import FeatureGroup


class Interaction(str, enum.Enum):
  """The interaction block of Table 4."""
  HETEROMIXER = "heteromixer"
  RANKMIXER = "rankmixer"
  TRANSFORMER = "transformer"


POOLINGS = ("mean", "flatten")
# HeMixConfig.precision: Keras dtype policies (variables float32; "mixed_bfloat16" computes in bfloat16).
PRECISIONS = ("float32", "mixed_bfloat16")


def check_sizes(config) -> None:
  """Every field a model config declares as a size (an int, a tuple of ints, the embedding widths) is
  positive, any other number non-negative, the embedding std positive: a config that builds a model
  without blocks, heads or width fails here, in one line, instead of training something else."""
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if isinstance(value, bool) or value is None:
      continue
    if field.type in ("int", "float") and not isinstance(value, (int, float)):
      raise ValueError(f"{field.name}={value!r} must be a number")
    if field.type == "int" and not isinstance(value, int):
      raise ValueError(f"{field.name}={value!r} must be an integer")
    if field.type == "tuple[int, ...]" and not all(isinstance(v, int) and v >= 1 for v in value):
      raise ValueError(f"{field.name}={value!r} must be positive integers (layer widths)")
    if field.name == "embedding_dim" and not all(isinstance(v, int) and v >= 1 for v in value.values()):
      raise ValueError(f"embedding_dim={value!r}: every width must be a positive integer")
    if isinstance(value, (int, float)) and value < 0:
      raise ValueError(f"{field.name}={value} must not be negative")
    if field.type == "int" and value < 1 and field.name not in NON_NEGATIVE:
      raise ValueError(f"{field.name}={value} must be at least 1")
    if field.name == "embedding_init_stddev" and value <= 0:
      raise ValueError(f"embedding_init_stddev={value} must be positive (or unset: Keras' uniform start)")


# Counts that may be 0 (a model without fixed queries or dot products); every other int field is a size.
NON_NEGATIVE = ("global_fixed_queries", "realtime_fixed_queries", "ns_dots", "user_heads")


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """What every model (HeMix and the baselines) shares: the embeddings of the same inputs and the heads."""
  # Embeddings (Section 3.2).
  embedding_dim: dict = dataclasses.field(
      default_factory=lambda: {"user": 32, "item": 32, "context": 16, "sequence": 32})
  # Initial standard deviation of every embedding (normal); None: Keras' uniform(-0.05, 0.05), whose
  # embeddings start ~30x smaller than the dense features beside them in E_{U,I,C} (docs/ARCHITECTURE.md).
  embedding_init_stddev: float | None = None
  hash_buckets: int = 100_003  # rows per table when ids are hashed (no Transform: HashingPreprocessor)
  time_gap_buckets: int = 32  # buckets of an event's age: log2 seconds (hashing) or quantiles (Transform)
  # Training only: the probability that an example's id in each of `oov_dropout_tables` is read as out of
  # vocabulary (the table's last row), so that the row every id unseen in train is read as (a cold user)
  # trains on a representative sample of examples (model.training.with_oov_dropout). 0: off, the paper's.
  oov_dropout: float = 0.0
  oov_dropout_tables: tuple[str, ...] = ("user_id",)
  # Prediction (Section 3.5).
  tasks: tuple[str, ...] = ("click", "conversion")  # label names; CTR and CVR
  head_hidden: tuple[int, ...] = (256,)

  def __post_init__(self):
    check_sizes(self)
    if not 0 <= self.oov_dropout < 1:
      raise ValueError(f"oov_dropout={self.oov_dropout} must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class HeMixConfig(InputConfig):
  # Tokens (Eqs. 2, 10).
  d_t: int = 256  # d_T, token width
  n_ns: int = 20  # N_NS; split 4:1 into the global and real-time dynamic queries
  global_fixed_queries: int = 16  # |Q^G|
  realtime_fixed_queries: int = 4  # |Q^R|
  ns_hidden: tuple[int, ...] = (1024,)  # hidden layers of F_NS before the N_NS * d_T output layer
  # > 0: F_NS also reads the pairwise dot products of the U/I/C fields, each projected to this width
  # (DLRM's interaction): an MLP learns a dot product (user x item affinity) slowly (Rendle et al. 2020).
  ns_dots: int = 0
  # Mixed Hetero Attention (Eqs. 3-9).
  attention_dim: int = 256  # d, width of the projected queries / keys / values
  attention_heads: int = 4
  # Eq. 6 "softmax"; "sigmoid": DIN-style gates averaged over the events; "sink": softmax with a learned
  # null key and value (the output then moves with the log of how many events match).
  attention_normalization: str = "softmax"
  qk_norm: bool = False  # LayerNorm on each head's queries and keys (scores at unit scale from the start)
  event_norm: bool = False  # LayerNorm on each event before W_K, W_V (keys and values at unit scale)
  # SIM's hard search (Pi et al. 2020) on the global sequence: its dynamic queries attend only over the
  # events whose side info `sequence.search` of the feature config (e.g. the category) is the candidate's.
  global_search: bool = False
  realtime_search: bool = False  # the same search on the real-time sequence (today's events)
  # HeteroMixer blocks (Eqs. 11-21).
  num_blocks: int = 2  # L
  mixer_heads: int = 16  # M; d_T must divide by it
  low_rank: int = 64  # d_r
  ffn_expansion: int = 4  # k
  interaction: Interaction = Interaction.HETEROMIXER
  pre_norm: bool = False  # the paper's Add&Norm is post-LN (Eqs. 11, 21); True: x + f(LN(x))
  # Section 3.5 mean-pools T_L to o [B, d_T]; "flatten": o = the concatenated tokens [B, N * d_T], so the
  # heads read every token on its own (at a small d_T the mean is a d_T-wide bottleneck for N tokens).
  pooling: str = "mean"
  # The feature groups ("user", "item", "context") whose embeddings each task's head reads beside o: Eq. 22
  # on [o, E_G] (a wide path, as Wide & Deep's), so e.g. the user's level reaches the prediction without
  # passing the tokens. (): o alone, the paper's.
  heads_read: tuple[str, ...] = ()
  # Ablations (Figure 3).
  use_fixed_queries: bool = True
  use_mixed_queries: bool = True  # False: sequence tokens by AutoSplit of the mean-pooled sequence
  use_global_sequence: bool = True
  use_realtime_sequence: bool = True
  # The dtype the layers after the embedding lookups compute in (model/precision.py); the weights, the
  # embeddings and the probabilities stay float32. An execution choice: the paper's architecture either way.
  precision: str = "float32"

  def __post_init__(self):
    super().__post_init__()
    if self.precision not in PRECISIONS:
      raise ValueError(f"precision '{self.precision}' is not one of {PRECISIONS}")
    if self.ns_dots < 0:
      raise ValueError(f"ns_dots={self.ns_dots} must be 0 (off) or a projection width")
    if self.n_ns % 5:
      raise ValueError(f"n_ns={self.n_ns} must split 4:1 into global / real-time queries (a multiple of 5)")
    if self.d_t % self.mixer_heads:
      raise ValueError(f"d_t={self.d_t} must be divisible by mixer_heads={self.mixer_heads}")
    if self.attention_dim % self.attention_heads:
      raise ValueError(f"attention_dim={self.attention_dim} must divide by attention_heads")
    groups = [g.value for g in FeatureGroup]
    if any(g not in groups for g in self.heads_read):
      raise ValueError(f"heads_read={self.heads_read}: each must be one of the feature groups {groups}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"pooling '{self.pooling}' is not one of {POOLINGS}")
    object.__setattr__(self, "interaction", Interaction(self.interaction))

  @property
  def global_dynamic_queries(self) -> int:
    return self.n_ns * 4 // 5  # |T_NS^G|

  @property
  def realtime_dynamic_queries(self) -> int:
    return self.n_ns // 5  # |T_NS^R|

  def sequence_tokens(self, sequence: str) -> int:
    """Tokens produced from one sequence: dynamic + fixed queries (0 when the sequence is ablated)."""
    if sequence == "global":
      used, dyn, fixed = self.use_global_sequence, self.global_dynamic_queries, self.global_fixed_queries
    else:
      used, dyn, fixed = self.use_realtime_sequence, self.realtime_dynamic_queries, self.realtime_fixed_queries
    return (dyn + (fixed if self.use_fixed_queries else 0)) if used else 0

  @property
  def num_tokens(self) -> int:
    """N = N_S + N_NS (Eq. 10)."""
    return self.n_ns + self.sequence_tokens("global") + self.sequence_tokens("realtime")


# The baselines' and the comparison models' configurations (their layers: baselines.py, hyformer.py,
# mixformer.py), here so that a configuration can be read without importing TensorFlow.
BASELINES = ("dnn", "din", "dlrm", "dcnv2", "dcnv2-parallel", "autoint", "hiformer", "mtgr", "rankmixer", "transformer")


@dataclasses.dataclass(frozen=True)
class BaselineConfig(InputConfig):
  model: str = "dlrm"  # one of BASELINES
  use_sequences: bool = True  # False: the non-sequential fields only (e.g. "DNN w/o sequences")
  # One sequence left out, as HeMixConfig's ablations of Figure 3: the same instrument on every model.
  use_global_sequence: bool = True
  use_realtime_sequence: bool = True
  d: int = 32  # field / token width
  layers: int = 2  # cross / attention / mixer layers
  heads: int = 2
  tokens: int = 16  # RankMixer / Transformer: T tokens from the automatic split (d must divide by T)
  hidden: tuple[int, ...] = (256, 128)  # DNN / DIN's MLP, DLRM's top MLP
  expansion: int = 4  # FFN width factor
  cross_rank: int | None = None  # DCNv2: low-rank W (None: full rank)
  din_hidden: int = 32  # DIN activation unit
  # SIM's hard search on the global sequence: its DIN pooling reads only the events of the candidate's
  # `sequence.search` side info, scaled by their share of the sequence (as HeMixConfig.global_search).
  global_search: bool = False
  realtime_search: bool = False

  def __post_init__(self):
    super().__post_init__()
    if self.model not in BASELINES:
      raise ValueError(f"unknown baseline '{self.model}'; choose one of {BASELINES}")


ENCODERS = ("transformer", "longer", "swiglu")


@dataclasses.dataclass(frozen=True)
class HyFormerConfig(InputConfig):
  d: int = 32  # D; must divide by T = sum of queries + 3 NS tokens
  queries: tuple[int, int] = (4, 1)  # N_s for the global and the real-time sequence
  layers: int = 2
  heads: int = 2
  encoder: str = "longer"  # Section 3.4.1: transformer (5), longer (6), swiglu (7)
  short_length: int = 16  # L_H of the LONGER encoder
  query_hidden: int = 64  # width of the query-generation FFNs
  expansion: int = 2  # per-token FFN width factor
  two_stage: bool = False  # True: the LONGER + RankMixer baseline (HyFormer Table 1) instead

  def __post_init__(self):
    super().__post_init__()
    if self.encoder not in ENCODERS:
      raise ValueError(f"unknown encoder '{self.encoder}'; choose one of {ENCODERS}")
    if self.d % self.num_tokens:
      raise ValueError(f"d ({self.d}) must divide by T = queries + NS tokens ({self.num_tokens})")

  @property
  def num_tokens(self) -> int:
    return sum(self.queries) + len(FeatureGroup)


@dataclasses.dataclass(frozen=True)
class MixFormerConfig(InputConfig):
  heads: int = 8  # N
  d: int = 32  # D; must divide by N (HeadMixing)
  layers: int = 2
  expansion: int = 2  # SwiGLU width factor
  user_heads: int = 0  # N_U > 0: UI-MixFormer (user heads first), 0: plain MixFormer

  def __post_init__(self):
    super().__post_init__()
    if self.d % self.heads:
      raise ValueError(f"d ({self.d}) must divide by heads ({self.heads}) for HeadMixing")
    if not 0 <= self.user_heads < self.heads:
      raise ValueError(f"user_heads ({self.user_heads}) must be in [0, heads)")


def paper_design(**sizes) -> HeMixConfig:
  """The paper's design (every deviation off) at the given sizes. The paper does not say how its
  embeddings start: we read it as PyTorch's nn.Embedding (the public PyTorch HeMix's) does, N(0, 1),
  over Keras' uniform ±0.05: +0.029 on the synthetic validation split, -0.007 on MovieLens'
  (docs/ARCHITECTURE.md, finding 22)."""
  return HeMixConfig(embedding_init_stddev=1.0, **sizes)


PRESETS = {
    # Section 4.1.4: N = 60, d_T = 256, N_NS = 20, global 16 + 16, real-time 4 + 4, L = 3: Eq. 24 gives 94M.
    "paper-small": paper_design(d_t=256, n_ns=20, global_fixed_queries=16, realtime_fixed_queries=4,
                                ns_hidden=(1024,), attention_dim=256, attention_heads=4, num_blocks=3,
                                mixer_heads=16, low_rank=64, ffn_expansion=4),
    # Scaled by width (d_T 256 -> 1024, L = 3): Eq. 24 gives 1.51B (Table 2: HeMix-Large 1,484M).
    "paper-large": paper_design(d_t=1024, n_ns=20, global_fixed_queries=16, realtime_fixed_queries=4,
                                ns_hidden=(1024,), attention_dim=512, attention_heads=8, num_blocks=3,
                                mixer_heads=32, low_rank=128, ffn_expansion=4),
    # The paper's design at a CPU size, for tests, the demo's comparison and the ablation table.
    # N = 10 + (8 + 10) + (2 + 2) = 32 tokens, so RankMixer token mixing (d_T divisible by N) applies too.
    "paper": paper_design(d_t=32, n_ns=10, global_fixed_queries=10, realtime_fixed_queries=2,
                          ns_hidden=(128,), attention_dim=32, attention_heads=2, num_blocks=2,
                          mixer_heads=4, low_rank=16, ffn_expansion=2,
                          embedding_dim={"user": 16, "item": 16, "context": 8, "sequence": 16},
                          hash_buckets=20_011, head_hidden=(64,)),
}
# The default: `paper` with the deviations chosen on validation (docs/ARCHITECTURE.md, "Deviations"):
# the attention fixes (sigmoid gates, QK-norm, event norm), then SIM's hard search on the global sequence
# and on the real-time one. The blocks and the read-out are the paper's again: the flattened read-out with
# pre-LN blocks (the default from the second to the twentieth session) is level with them on the synthetic
# validation split and 0.005 below them on MovieLens' (findings 27, 29). The embeddings start as every
# baseline's (Keras' uniform ±0.05): with the searches, N(0, 0.25²) no longer helps (finding 19). A fifth
# of the training examples read their user as out of vocabulary, as every cold user is read (finding 26;
# the baselines share it: experiments/suites.py). The heads read E_{U,I,C} beside the mean token, as the
# baselines' MLPs read it: the users' level reaches the prediction (finding 35; on Amazon, whose eval items
# are mostly new, the user's embeddings alone do better: finding 37).
PRESETS["cpu-small"] = dataclasses.replace(PRESETS["paper"], attention_normalization="sigmoid", qk_norm=True,
                                           event_norm=True,
                                           global_search=True, realtime_search=True, embedding_init_stddev=None,
                                           oov_dropout=0.2, heads_read=("user", "item", "context"))


MODEL_CONFIGS = {c.__name__: c for c in (HeMixConfig, BaselineConfig, HyFormerConfig, MixFormerConfig)}


def model_config_to_dict(config: InputConfig) -> dict:
  """A JSON-able mapping of any model config, with its type (for a Keras model's get_config)."""
  fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
  return {"type": type(config).__name__,
          **{k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}}


def model_config_from_dict(raw: dict) -> InputConfig:
  """The inverse of model_config_to_dict (JSON lists become the dataclasses' tuples)."""
  raw = dict(raw)
  kind = raw.pop("type")
  if kind not in MODEL_CONFIGS:
    raise ValueError(f"unknown model config type '{kind}'; expected one of {sorted(MODEL_CONFIGS)}")
  if raw.pop("heads_read_embeddings", False):  # a model saved before `heads_read`: every group's embeddings
    raw["heads_read"] = [g.value for g in FeatureGroup]
  return MODEL_CONFIGS[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def parse_overrides(items: list[str]) -> dict:
  """Hyper-parameters given on a command line as name=value (YAML values: `false`, `64`, `[128, 64]`)
  -> {name: value}; `preset` checks the names."""
  overrides = {}
  for item in items:
    name, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"'{item}': expected name=value, e.g. d_t=64")
    overrides[name.strip()] = yaml.safe_load(value)
  return overrides


def replace_fields(config: InputConfig, **overrides) -> InputConfig:
  """Any model config with some fields replaced (from a pipeline YAML or flags: lists become tuples)."""
  fields = {f.name for f in dataclasses.fields(config)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown {type(config).__name__} hyper-parameter(s) {unknown}; the fields are "
                     f"{sorted(fields)}")
  return dataclasses.replace(config, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def preset(name: str, **overrides) -> HeMixConfig:
  """A preset with some fields replaced (replace_fields)."""
  if name not in PRESETS:
    raise ValueError(f"unknown preset '{name}'; choose one of {sorted(PRESETS)}")
  return replace_fields(PRESETS[name], **overrides)
