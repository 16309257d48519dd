"""The model grids of the suites, at the CPU scale of this project (HeMix `cpu-small`: ~0.4M dense
parameters). The paper's protocol: the same batch size and learning rate for every model (Section
4.1.4); for Table 2 the models are sized to about the same dense-parameter budget (the figures the
harness reports show how close each lands).
"""
from __future__ import annotations

import dataclasses

from hemix_tf.model.config import BaselineConfig, HyFormerConfig, InputConfig, Interaction, MixFormerConfig, preset

HEMIX = preset("cpu-small")
PAPER = preset("paper")  # cpu-small's sizes with the paper's literal design
# The first validated step from `paper` (session 1's default): the attention learns from the first step.
ATTENTION_FIXES = "sigmoid + QK-norm + event norm + embedding std 0.25"
FIXES = dataclasses.replace(PAPER, attention_normalization="sigmoid", qk_norm=True, event_norm=True,
                            embedding_init_stddev=0.25)
# Session 2's default: the fixes with a flattened read-out and pre-LN blocks (HEMIX without the search).
FLAT_PRE_LN = dataclasses.replace(FIXES, pooling="flatten", pre_norm=True)
# Session 4's default: with SIM's hard search on the global sequence (HEMIX without the real-time search).
GLOBAL_SEARCH = dataclasses.replace(FLAT_PRE_LN, global_search=True)
# Session 5's default: both searches, embeddings still N(0, 0.25²) (HEMIX with the fixes' initialisation).
BOTH_SEARCHES = dataclasses.replace(GLOBAL_SEARCH, realtime_search=True)
SCALES = (16, 32, 64, 128)  # token widths of the scaling suite
_SHARED = {k: getattr(HEMIX, k) for k in ("embedding_dim", "hash_buckets", "time_gap_buckets", "tasks", "head_hidden",
                                          "oov_dropout", "oov_dropout_tables")}


def baseline(model: str, **size) -> BaselineConfig:
  """A baseline with HeMix's embeddings, tables, tasks and heads, and the default HeMix's hard searches
  (for its DIN pooling of each sequence): a baseline never reads less than HeMix is given."""
  return BaselineConfig(model=model, **_SHARED, **{"global_search": HEMIX.global_search,
                                                   "realtime_search": HEMIX.realtime_search, **size})


DNN = baseline("dnn", hidden=(256, 128))
DLRM = baseline("dlrm", hidden=(768, 384, 128))
DLRM_NO_SEARCH = dataclasses.replace(DLRM, global_search=False, realtime_search=False)  # before session 4

SUITES: dict[str, dict[str, InputConfig]] = {
    # HeMix Table 2: dense parameters within about 0.7-1.4x of HeMix cpu-small's.
    "table2": {
        # What a user compares with first (FuxiCTR's DNN and DIN): the concatenated embeddings through an MLP.
        "DNN": DNN,
        "DNN w/o sequences": dataclasses.replace(DNN, use_sequences=False),
        "DIN": baseline("din", hidden=(256, 128)),
        "DLRM": DLRM,
        "DLRM w/o search": DLRM_NO_SEARCH,
        "DCNv2": baseline("dcnv2", cross_rank=64, hidden=(256, 128)),
        "DCNv2-parallel": baseline("dcnv2-parallel", cross_rank=64, hidden=(256, 128)),
        "AutoInt+": baseline("autoint", d=48, layers=3, hidden=(256, 128)),
        "Hiformer": baseline("hiformer", d=32, layers=2),
        "MTGR": baseline("mtgr", d=96, heads=4, layers=3),
        "RankMixer": baseline("rankmixer", d=32, tokens=16, layers=2),
        "Transformer": baseline("transformer", d=64, tokens=16, heads=4, layers=3),
        "HeMix": HEMIX,
        "HeMix (paper)": PAPER,
    },
    # HeMix Table 3: tokenization ablations.
    "table3": {
        "HeMix": HEMIX,
        "w/o Fixed Query": dataclasses.replace(HEMIX, use_fixed_queries=False),
        "w/o Mixed-Queries": dataclasses.replace(HEMIX, use_mixed_queries=False),
        "w/o Global Sequence": dataclasses.replace(HEMIX, use_global_sequence=False),
        "w/o Real-time Sequence": dataclasses.replace(HEMIX, use_realtime_sequence=False),
    },
    # HeMix Table 4: the interaction block on HeMix's tokens.
    "table4": {
        "HeteroMixer": HEMIX,
        "RankMixer": dataclasses.replace(HEMIX, interaction=Interaction.RANKMIXER),
        "Transformer": dataclasses.replace(HEMIX, interaction=Interaction.TRANSFORMER),
    },
    # HyFormer Table 1 style: HyFormer (its three sequence encoders) against LONGER + RankMixer; MixFormer,
    # UI-MixFormer and HeMix beside them. MixFormer at D=16: its event SwiGLU runs at width N·D over every
    # event in every block, so even this size costs 0.10 GFLOPs per ML-100K example (0.25M dense params);
    # D=64 cost 1.6 GFLOPs and 3.6M dense params, 6x the HyFormer models' budget.
    "hyformer": {
        "LONGER+RankMixer": HyFormerConfig(**_SHARED, d=64, two_stage=True),
        "HyFormer (LONGER enc.)": HyFormerConfig(**_SHARED, d=64, encoder="longer"),
        "HyFormer (Transformer enc.)": HyFormerConfig(**_SHARED, d=64, encoder="transformer"),
        "HyFormer (SwiGLU enc.)": HyFormerConfig(**_SHARED, d=64, encoder="swiglu"),
        "MixFormer": MixFormerConfig(**_SHARED, heads=8, d=16),
        "UI-MixFormer": MixFormerConfig(**_SHARED, heads=8, d=16, user_heads=4),
        # HyFormer and MixFormer read the long sequence their own way and have no search: HeMix neither.
        "HeMix": FLAT_PRE_LN,
    },
    # HeMix's named deviations from the paper (docs/ARCHITECTURE.md), each alone and together, scored on
    # the validation split carved from train (`--on_validation`) to choose the default.
    "ablation": {
        "paper": PAPER,
        "sigmoid attention": dataclasses.replace(PAPER, attention_normalization="sigmoid"),
        "QK-norm + event norm + sigmoid": dataclasses.replace(PAPER, qk_norm=True, event_norm=True,
                                                              attention_normalization="sigmoid"),
        "embedding std 0.25": dataclasses.replace(PAPER, embedding_init_stddev=0.25),
        # Keras' uniform ±0.05 instead of PyTorch's N(0, 1), the paper presets' embedding start since the
        # twelfth session (finding 22): `paper` before it. Rows built on PAPER were run with this start before.
        "paper with Keras embedding init": dataclasses.replace(PAPER, embedding_init_stddev=None),
        "pre-LN": dataclasses.replace(PAPER, pre_norm=True),
        ATTENTION_FIXES: FIXES,
        "fixes with softmax attention": dataclasses.replace(FIXES, attention_normalization="softmax"),
        "fixes + flatten pooling": dataclasses.replace(FIXES, pooling="flatten"),
        "fixes + flatten w/o global sequence": dataclasses.replace(FIXES, pooling="flatten",
                                                                  use_global_sequence=False),
        "fixes + flatten w/o fixed queries": dataclasses.replace(FIXES, pooling="flatten", use_fixed_queries=False),
        "fixes + flatten + pre-LN": FLAT_PRE_LN,
        "fixes + flatten + pre-LN w/o global sequence": dataclasses.replace(FLAT_PRE_LN, use_global_sequence=False),
        # Softmax with a learned null key instead of the sigmoid gates: the count as a log, not a scale.
        "fixes + flatten + pre-LN + sink attention": dataclasses.replace(FLAT_PRE_LN, attention_normalization="sink"),
        "fixes + flatten + pre-LN + sink attention w/o global sequence": dataclasses.replace(
            FLAT_PRE_LN, attention_normalization="sink", use_global_sequence=False),
        # F_NS's hidden width: every non-sequential cross passes its 128 units at cpu-small (DLRM's top MLP: 768).
        **{f"fixes + flatten + pre-LN with F_NS hidden {'-'.join(map(str, h))}": dataclasses.replace(
            FLAT_PRE_LN, ns_hidden=h) for h in ((512,), (1024,), (512, 512))},
        # SIM's hard search on the global sequence: the candidate-dependent queries read only the events of
        # the candidate's category (the fixed queries still read the whole history). Session 4's default.
        "fixes + flatten + pre-LN + SIM hard search": GLOBAL_SEARCH,
        "paper + SIM hard search": dataclasses.replace(PAPER, global_search=True),
        # With the search the sink's null weighs against the matching events only: their count as a log.
        "fixes + flatten + pre-LN + SIM hard search + sink attention": dataclasses.replace(
            GLOBAL_SEARCH, attention_normalization="sink"),
        "fixes + flatten + pre-LN + SIM hard search with F_NS hidden 512": dataclasses.replace(
            GLOBAL_SEARCH, ns_hidden=(512,)),
        # The same filter on today's events: the dynamic queries read the candidate's category's share of the
        # day (the intent), which the learned gates must otherwise find among ~10 events. Session 5's default.
        "fixes + flatten + pre-LN + SIM hard search + real-time search": BOTH_SEARCHES,
        # Keras' uniform ±0.05 embedding start (the paper's and every baseline's) instead of N(0, 0.25²):
        # chosen on both datasets' validation splits, the default from session 6 to 20 (finding 19).
        "fixes + flatten + pre-LN + SIM hard search + real-time search with Keras embedding init":
            dataclasses.replace(HEMIX, pooling="flatten", pre_norm=True),
        # The paper's mean token as the heads' input again (finding 27), then its post-LN blocks too: the
        # default since session 21 (finding 29).
        "default with pre-LN blocks": dataclasses.replace(HEMIX, pre_norm=True),
        "default with heads reading o alone (mean read-out and post-LN)": dataclasses.replace(HEMIX, heads_read=()),
        # The heads read the user's embeddings E_U beside o: first on Amazon's validation split (finding 37).
        "default with heads reading o and the user's embeddings": dataclasses.replace(HEMIX, heads_read=("user",)),
        # The heads read E_{U,I,C} beside o, as the baselines' MLPs do (finding 35): the default since session 25.
        "default (heads read o and the embeddings)": HEMIX,
        # The sink's weight on the searched events grows with the log of their count, as the click logit
        # grows with the log of the interest (the synthetic generator's w_interest term).
        "fixes + flatten + pre-LN + SIM hard search + real-time search + sink attention": dataclasses.replace(
            BOTH_SEARCHES, attention_normalization="sink"),
        # DLRM's pairwise field dots (at DLRM's projection width) beside E_{U,I,C} in F_NS's input: an MLP
        # learns a user x item dot product slowly, and MovieLens' signal is collaborative.
        "default + field dot products": dataclasses.replace(HEMIX, ns_dots=32),
        "paper + field dot products": dataclasses.replace(PAPER, ns_dots=32),
        # An execution choice, not a deviation: the layers after the lookups compute in bfloat16 (faster
        # matmuls on CPUs with AMX / AVX-512 BF16, and on GPUs); does the AUC hold?
        "default in mixed bfloat16": dataclasses.replace(HEMIX, precision="mixed_bfloat16"),
        # The attention's norms were chosen with the sigmoid gates, before the searches did the pick; each
        # prices 1.1-1.3x of the default's step (docs/BENCHMARKS.md): do they still earn it?
        "default w/o event norm": dataclasses.replace(HEMIX, event_norm=False),
        "default w/o QK-norm and event norm": dataclasses.replace(HEMIX, qk_norm=False, event_norm=False),
        # The same searches given to the strongest baseline (its DIN poolings), for a fair comparison.
        "DLRM + SIM hard search": dataclasses.replace(DLRM, realtime_search=False),
        "DLRM + SIM hard search + real-time search": DLRM,
        # The attention fixes' initialisation given to the strongest baseline: does it help DLRM too?
        "DLRM with embedding std 0.25": dataclasses.replace(DLRM_NO_SEARCH, embedding_init_stddev=0.25),
    },
    # HeMix Figure 3: HeMix and RankMixer at four widths (AUC against params and GFLOPs: scaling.png).
    "scaling": {
        **{f"HeMix d_T={d}": dataclasses.replace(HEMIX, d_t=d, attention_dim=d, ns_hidden=(4 * d,)) for d in SCALES},
        **{f"RankMixer d={d}": baseline("rankmixer", d=d, tokens=16, layers=2) for d in SCALES},
    },
}
REFERENCE = {"table2": "DLRM", "table3": "HeMix", "table4": "HeteroMixer",  # Rela.Imp base (Eq. 25)
             "hyformer": "LONGER+RankMixer", "scaling": f"RankMixer d={SCALES[0]}", "ablation": "paper"}
PROPOSED = {"table2": "HeMix", "table3": "HeMix", "table4": "HeteroMixer",  # t-tested against the best other
            "hyformer": "HyFormer (LONGER enc.)", "scaling": f"HeMix d_T={SCALES[-1]}",
            "ablation": "default (heads read o and the embeddings)"}
