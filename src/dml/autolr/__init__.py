"""AutoLR: layer-wise pruning and auto-tuning of learning rates (Ro & Choi, AAAI 2021)."""

from dml.autolr.rules import initial_targets, repaired_targets, sorting_score, updated_lrs

__all__ = [
    "initial_targets",
    "repaired_targets",
    "sorting_score",
    "updated_lrs",
]
