"""dataset=synthetic: the procedurally generated twin (dml.data.synthetic draws it), its
schema, its splits for both tasks and its registration."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dml.data.base import DatasetConfig, register_dataset
from dml.data.records import RetrievalData, Split, split_by_class
from dml.predicates import at_least


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    num_classes: int = 100
    images_per_class: int = 30
    generated_size: int = 64
    generator_seed: int = 0
    image_size: int = 64
    resize_size: int | None = 64  # generated tight: no crop margin (the YAML follows image_size)
    cache: str = "ram"  # 3,000 images at 64 px: 37 MiB, decoded once


def load_synthetic(cfg) -> RetrievalData:
    """Generate (once) the synthetic target set and split it: first half of classes train."""
    return split_by_class(synthetic_target(cfg), set(range(1, cfg.num_classes // 2 + 1)))


def load_synthetic_classification(cfg) -> RetrievalData:
    """Generate (once) the synthetic target set; per class, the first ceil(n/2) images train."""
    from dml.data.cub import split_by_image

    split = synthetic_target(cfg)
    return split_by_image(split, first_half_per_class(split.labels))


def first_half_per_class(labels: Sequence[int]) -> list[bool]:
    """One flag per record: True for the first ceil(n/2) of each class's n records, in order."""
    totals, seen = Counter(labels), Counter()
    flags = []
    for label in labels:
        flags.append(seen[label] < (totals[label] + 1) // 2)
        seen[label] += 1
    return flags


def synthetic_target(cfg) -> Split:
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


def _class_count(n) -> bool:
    from dml.data.synthetic import max_classes

    return at_least(4)(n) and n <= max_classes("target")


register_dataset(
    "synthetic",
    "the synthetic twin",
    {"retrieval": load_synthetic, "classification": load_synthetic_classification},
    schema=SyntheticDatasetConfig,
    checks={
        "images_per_class": (at_least(2), "an integer >= 2"),
        "num_classes": (
            _class_count,
            "an integer from 4 (half train, half test) to 432 (the generator's distinct classes)",
        ),
        "generated_size": (at_least(16), "an integer >= 16"),
        "generator_seed": (at_least(0), "an integer >= 0"),
    },
)
