"""Datasets: real loaders (CUB-200-2011, Cars-196), synthetic data, transforms, sampler."""

from __future__ import annotations

from pathlib import Path

from dml.data.records import ImageListDataset, RetrievalData, Split, split_by_class
from dml.errors import DmlError

DATASETS = ("synthetic", "cub200", "cars196")


def load_retrieval_data(cfg) -> RetrievalData:
    """Train/test splits (disjoint classes) of the dataset named by cfg.name."""
    root = Path(cfg.root)
    if cfg.name == "cub200":
        from dml.data.cub import load_cub200

        return load_cub200(root)
    if cfg.name == "cars196":
        from dml.data.cars import load_cars196

        return load_cars196(root)
    if cfg.name == "synthetic":
        return load_synthetic(cfg)
    raise DmlError(f"unknown dataset.name '{cfg.name}': expected one of {list(DATASETS)}")


def load_synthetic(cfg) -> RetrievalData:
    """Generate (once) the synthetic target set and split it: first half of classes train."""
    from dml.data.cub import read_cub_layout
    from dml.data.synthetic import ensure_synthetic

    root = ensure_synthetic(
        Path(cfg.root),
        domain="target",
        num_classes=cfg.num_classes,
        images_per_class=cfg.images_per_class,
        image_size=cfg.generated_size,
        seed=cfg.generator_seed,
    )
    return split_by_class(read_cub_layout(root), set(range(1, cfg.num_classes // 2 + 1)))


__all__ = ["ImageListDataset", "RetrievalData", "Split", "load_retrieval_data", "split_by_class"]
