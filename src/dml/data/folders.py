"""Your own images as a retrieval benchmark: one sub-folder of dataset.root per class, the
classes sorted by folder name, the first share (dataset.train_classes) trains and the rest
are the test classes, as CUB's 100/100 split. The worked example of docs/extending.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dml.data.base import DatasetConfig, register_dataset
from dml.data.checks import is_image_name, require_dir
from dml.data.records import RetrievalData, Split
from dml.errors import DmlError
from dml.predicates import SHARE

FOLDERS_LAYOUT = "a folder with one sub-folder of JPEG/PNG images per class"


@dataclass
class FoldersConfig(DatasetConfig):
    train_classes: float = 0.5  # share of the classes (sorted by name) that train


def load_folders(cfg) -> RetrievalData:
    """Train and test splits of the class folders under cfg.root (labels: folder ranks)."""
    root = require_dir(Path(cfg.root), FOLDERS_LAYOUT)
    found = [_images(d) for d in sorted(root.iterdir()) if d.is_dir() and d.name[0] != "."]
    classes = [images for images in found if images]
    cut = int(len(classes) * cfg.train_classes)
    if not 0 < cut < len(classes):
        raise DmlError(
            f"{root} holds {len(classes)} class folder(s) with images: dataset.train_classes="
            f"{cfg.train_classes} leaves no class on one side; expected {FOLDERS_LAYOUT} "
            "with enough classes for both"
        )
    return RetrievalData(_split(classes[:cut], 0), _split(classes[cut:], cut))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p))


def _split(classes: list[list[Path]], first: int) -> Split:
    paths = [path for images in classes for path in images]
    labels = [first + k for k, images in enumerate(classes) for _ in images]
    return Split(paths, labels)


register_dataset(
    "folders",
    "image folders",
    {"retrieval": load_folders},
    schema=FoldersConfig,
    checks={"train_classes": SHARE},
)
