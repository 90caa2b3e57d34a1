"""CUB-200-2011 in its official layout: split by class (retrieval) or by image (classification)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from dml.data.base import register_dataset
from dml.data.checks import (
    check_images_exist,
    read_text_lines,
    require_dir,
    require_file,
    warn_if_counts_differ,
)
from dml.data.records import RetrievalData, Split, split_by_class
from dml.errors import DmlError

# Official image counts of classes 1-100 / 101-200; module-level so tests can patch them.
CUB_EXPECTED: tuple[int, int] = (5864, 5924)
CUB_TRAIN_CLASSES: frozenset[int] = frozenset(range(1, 101))
# Official train / test image counts of train_test_split.txt (all 200 classes on both sides).
CUB_CLASSIFICATION_EXPECTED: tuple[int, int] = (5994, 5794)
_V = TypeVar("_V")

CUB_LAYOUT = "a CUB-200-2011 folder holding images/, images.txt, image_class_labels.txt"


def load_cub200(root: Path) -> RetrievalData:
    """Load CUB-200-2011 with classes 1-100 as train and 101-200 as test."""
    root = Path(root)
    data = split_by_class(read_cub_layout(root), set(CUB_TRAIN_CLASSES))
    warn_if_counts_differ("CUB-200-2011", root, data, CUB_EXPECTED)
    return data


def load_cub200_classification(root: Path) -> RetrievalData:
    """Load CUB-200-2011 split by image as train_test_split.txt says (1 train, 0 test)."""
    root = Path(root)
    image_ids, split = _read_cub_images(root)
    split_file = require_file(
        root / "train_test_split.txt", "'<image_id> <is_training_image>' lines (1 train, 0 test)"
    )
    is_train = _read_id_table(split_file, _parse_split_line)
    unlisted = [image_id for image_id in image_ids if image_id not in is_train]
    if unlisted:
        raise DmlError(
            f"{split_file} has no entry for image id {unlisted[0]} "
            f"({len(unlisted)} of {len(image_ids)} images in {root / 'images.txt'} unlisted)"
        )
    data = split_by_image(split, [is_train[image_id] for image_id in image_ids])
    warn_if_counts_differ("CUB-200-2011", root, data, CUB_CLASSIFICATION_EXPECTED)
    return data


def split_by_image(split: Split, is_train: Sequence[bool]) -> RetrievalData:
    """Split records image by image: True in is_train (one flag per record) goes to train."""
    if len(is_train) != len(split):
        raise ValueError(f"{len(is_train)} train flags for {len(split)} records")
    records = list(zip(split.paths, split.labels, is_train))
    return RetrievalData(
        train=Split([p for p, _, t in records if t], [y for _, y, t in records if t]),
        test=Split([p for p, _, t in records if not t], [y for _, y, t in records if not t]),
    )


def read_cub_layout(root: Path) -> Split:
    """Read every image path and its 1-based class id from a CUB-200-2011 folder."""
    return _read_cub_images(Path(root))[1]


def _read_cub_images(root: Path) -> tuple[list[int], Split]:
    """Image ids (in images.txt order) and the Split of their paths and class ids."""
    require_dir(root, CUB_LAYOUT)
    images_file = require_file(root / "images.txt", "'<image_id> <path under images/>' lines")
    labels_file = require_file(root / "image_class_labels.txt", "'<image_id> <class_id>' lines")
    # train_test_split.txt is not read here: it is the classification split, read only by
    # load_cub200_classification, while retrieval benchmarks split by class.
    images = _read_id_table(images_file, _parse_image_line)
    labels = _read_id_table(labels_file, _parse_label_line)
    unlabelled = [image_id for image_id in images if image_id not in labels]
    if unlabelled:
        raise DmlError(
            f"{labels_file} has no class label for image id {unlabelled[0]} "
            f"({len(unlabelled)} of {len(images)} images in {images_file} unlabelled)"
        )
    split = Split(
        paths=[root / "images" / rel for rel in images.values()],
        labels=[labels[image_id] for image_id in images],
    )
    check_images_exist(split.paths, images_file)
    return list(images), split


def _parse_image_line(line: str) -> tuple[int, str]:
    # maxsplit=1 keeps a relative path intact even if it contains spaces.
    image_id, rel = line.split(maxsplit=1)
    return int(image_id), rel.strip()


def _parse_label_line(line: str) -> tuple[int, int]:
    image_id, class_id = line.split()
    return int(image_id), int(class_id)


def _parse_split_line(line: str) -> tuple[int, bool]:
    image_id, flag = line.split()
    if flag not in ("0", "1"):
        raise ValueError(f"is_training_image {flag!r} is not 0 or 1")
    return int(image_id), flag == "1"


def _read_id_table(path: Path, parse: Callable[[str], tuple[int, _V]]) -> dict[int, _V]:
    """Parse '<image_id> <value>' lines into an insertion-ordered dict keyed by image id."""
    table: dict[int, _V] = {}
    lines = read_text_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            key, value = parse(line)
        except ValueError:
            raise DmlError(f"{path}:{lineno}: malformed line {line.strip()!r}") from None
        if key in table:
            raise DmlError(f"{path}:{lineno}: duplicate image id {key}")
        table[key] = value
    return table


register_dataset(
    "cub200",
    "CUB-200-2011",
    {
        "retrieval": lambda cfg: load_cub200(Path(cfg.root)),
        "classification": lambda cfg: load_cub200_classification(Path(cfg.root)),
    },
)
