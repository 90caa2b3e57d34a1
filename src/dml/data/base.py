"""What every dataset shares: the dataset group's base schema and the registry of datasets.

A dataset module registers itself with register_dataset: its name, schema, full name and one
loader per task it serves (retrieval: disjoint train / test classes; classification: the same
classes, disjoint images). Asking a dataset for a task it does not serve is a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from omegaconf import MISSING

from dml.data.records import RetrievalData
from dml.errors import DmlError
from dml.predicates import NON_NEGATIVE, at_least, choice, optional
from dml.registry import Check, Entry, Registry

CACHES = ("none", "ram")
AUGMENT_ON = ("auto", "cpu", "device")
INTERPOLATION_NAMES = ("bilinear", "bicubic")
EVAL_RESIZES = ("shorter", "square")


@dataclass
class DatasetConfig:
    """The dataset group's keys every dataset has (a dataset's schema may add its own)."""

    name: str = MISSING
    root: str = MISSING
    image_size: int = 224
    resize_size: int | None = None  # None: round(image_size * 256 / 224)
    eval_resize: str = "shorter"  # square: Resize((r, r)); shorter: shorter side to r
    interpolation: str = "bilinear"  # bilinear | bicubic (train and eval resizes)
    hflip: bool = True
    random_resized_crop: bool = False
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop
    color_jitter: float = 0.0
    num_workers: int | None = None  # null: one per core but one (at most 8 on a CPU run)
    cache: str = "none"  # none | ram (each image decoded and resized once, kept as uint8)
    # where training augmentation and normalisation run: auto (the device on CUDA with
    # cache=ram, else cpu) | cpu (loader processes) | device (dml.data.device)
    augment_on: str = "auto"
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # the benchmark's Recall@K


def _crop_scale(s) -> bool:
    return len(s) == 2 and all(NON_NEGATIVE[0](x) for x in s) and 0 < s[0] <= s[1] <= 1


DATASETS = Registry(
    "dataset",
    "dataset",
    checks={
        "image_size": (at_least(1), "an integer >= 1"),
        "resize_size": (optional(at_least(1)), "null or an integer >= 1"),
        "num_workers": (optional(at_least(0)), "null (chosen from the cores) or >= 0"),
        "color_jitter": NON_NEGATIVE,
        "crop_scale": (_crop_scale, "[low, high] with 0 < low <= high <= 1"),
        "eval_resize": choice(EVAL_RESIZES),
        "cache": choice(CACHES),
        "augment_on": choice(AUGMENT_ON),
        "interpolation": choice(INTERPOLATION_NAMES),
        "ks": (lambda ks: len(ks) > 0 and all(at_least(1)(k) for k in ks), "integers >= 1"),
    },
)

Loader = Callable[[object], RetrievalData]  # the dataset group -> its splits


def register_dataset(
    name: str,
    full_name: str,
    loaders: Mapping[str, Loader],
    schema: type = DatasetConfig,
    checks: Mapping[str, Check] | None = None,
) -> None:
    """Register a dataset with one loader per task it serves ({"retrieval": fn, ...})."""

    def load(cfg, task: str) -> RetrievalData:
        if task not in loaders:
            served = " or ".join(loaders)
            raise DmlError(
                f"dataset={name} is a {served} benchmark ({full_name}) with no {task} split: "
                f"use task={served}"
            )
        return loaders[task](cfg)

    info = {"full_name": full_name, "tasks": tuple(loaders)}
    DATASETS.add(Entry(name, schema, load, dict(checks or {}), info=info))


def load_data(cfg, task: str) -> RetrievalData:
    """The splits of the dataset named by cfg.name for `task`."""
    return DATASETS.get(cfg.name).build(cfg, task)
