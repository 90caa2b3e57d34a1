"""Datasets: real loaders (CUB, Cars, SOP, In-Shop, FGVC-Aircraft), synthetic data, transforms."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from dml.data.records import ImageListDataset, RetrievalData, Split, split_by_class
from dml.errors import DmlError

DATASETS = ("synthetic", "cub200", "cars196", "aircraft", "sop", "inshop")
# Retrieval-only benchmarks (no classification split): name -> full name.
RETRIEVAL_ONLY = {"sop": "Stanford Online Products", "inshop": "In-Shop Clothes Retrieval"}


def load_retrieval_data(cfg) -> RetrievalData:
    """Train/test splits (disjoint classes) of the dataset named by cfg.name.

    For inshop the result also holds a gallery: test is then the query split.
    """
    root = Path(cfg.root)
    if cfg.name == "cub200":
        from dml.data.cub import load_cub200

        return load_cub200(root)
    if cfg.name == "cars196":
        from dml.data.cars import load_cars196

        return load_cars196(root)
    if cfg.name == "sop":
        from dml.data.sop import load_sop

        return load_sop(root)
    if cfg.name == "inshop":
        from dml.data.inshop import load_inshop

        return load_inshop(root)
    if cfg.name == "synthetic":
        return load_synthetic(cfg)
    if cfg.name == "aircraft":
        raise DmlError(
            "dataset=aircraft is a classification benchmark (FGVC-Aircraft): "
            "use task=classification"
        )
    raise DmlError(f"unknown dataset.name '{cfg.name}': expected one of {list(DATASETS)}")


def load_classification_data(cfg) -> RetrievalData:
    """Train/test splits (same classes, disjoint images) of the dataset named by cfg.name."""
    root = Path(cfg.root)
    if cfg.name == "cub200":
        from dml.data.cub import load_cub200_classification

        return load_cub200_classification(root)
    if cfg.name == "cars196":
        from dml.data.cars import load_cars196_classification

        return load_cars196_classification(root)
    if cfg.name == "aircraft":
        from dml.data.aircraft import load_aircraft

        return load_aircraft(root)
    if cfg.name == "synthetic":
        return load_synthetic_classification(cfg)
    if cfg.name in RETRIEVAL_ONLY:
        raise DmlError(
            f"dataset={cfg.name} is a retrieval benchmark ({RETRIEVAL_ONLY[cfg.name]}) with no "
            "classification split: use task=retrieval"
        )
    raise DmlError(f"unknown dataset.name '{cfg.name}': expected one of {list(DATASETS)}")


def load_synthetic(cfg) -> RetrievalData:
    """Generate (once) the synthetic target set and split it: first half of classes train."""
    return split_by_class(_synthetic_target(cfg), set(range(1, cfg.num_classes // 2 + 1)))


def load_synthetic_classification(cfg) -> RetrievalData:
    """Generate (once) the synthetic target set; per class, the first ceil(n/2) images train."""
    from dml.data.cub import split_by_image

    split = _synthetic_target(cfg)
    return split_by_image(split, first_half_per_class(split.labels))


def first_half_per_class(labels: Sequence[int]) -> list[bool]:
    """One flag per record: True for the first ceil(n/2) of each class's n records, in order."""
    totals, seen = Counter(labels), Counter()
    flags = []
    for label in labels:
        flags.append(seen[label] < (totals[label] + 1) // 2)
        seen[label] += 1
    return flags


def _synthetic_target(cfg) -> Split:
    """All images of the synthetic target set (generated on first use), in image-id order."""
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
    return read_cub_layout(root)


__all__ = [
    "ImageListDataset",
    "RetrievalData",
    "Split",
    "load_classification_data",
    "load_retrieval_data",
    "split_by_class",
]
