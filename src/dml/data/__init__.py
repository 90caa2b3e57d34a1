"""Datasets: one module per dataset (registered in DATASETS), records, transforms, loaders."""

from __future__ import annotations

from dml.data.base import DATASETS, DatasetConfig, load_data
from dml.data.records import ImageListDataset, RetrievalData, Split, split_by_class
from dml.registry import import_submodules

import_submodules(__name__)  # every dataset module registers itself


def load_retrieval_data(cfg) -> RetrievalData:
    """Train/test splits (disjoint classes) of the dataset named by cfg.name.

    For inshop the result also holds a gallery: test is then the query split.
    """
    return load_data(cfg, "retrieval")


def load_classification_data(cfg) -> RetrievalData:
    """Train/test splits (same classes, disjoint images) of the dataset named by cfg.name."""
    return load_data(cfg, "classification")


__all__ = [
    "DATASETS",
    "DatasetConfig",
    "ImageListDataset",
    "RetrievalData",
    "Split",
    "load_classification_data",
    "load_data",
    "load_retrieval_data",
    "split_by_class",
]
