"""CUB-200-2011 in its official layout, split by class for zero-shot retrieval."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dml.data.checks import check_images_exist, require_dir, require_file, warn_if_counts_differ
from dml.data.records import RetrievalData, Split, split_by_class
from dml.errors import DmlError

# Official image counts of classes 1-100 / 101-200; module-level so tests can patch them.
CUB_EXPECTED: tuple[int, int] = (5864, 5924)
CUB_TRAIN_CLASSES: frozenset[int] = frozenset(range(1, 101))
_V = TypeVar("_V")

CUB_LAYOUT = "a CUB-200-2011 folder holding images/, images.txt, image_class_labels.txt"


def load_cub200(root: Path) -> RetrievalData:
    """Load CUB-200-2011 with classes 1-100 as train and 101-200 as test."""
    root = Path(root)
    data = split_by_class(read_cub_layout(root), set(CUB_TRAIN_CLASSES))
    warn_if_counts_differ("CUB-200-2011", root, data, CUB_EXPECTED)
    return data


def read_cub_layout(root: Path) -> Split:
    """Read every image path and its 1-based class id from a CUB-200-2011 folder."""
    root = Path(root)
    require_dir(root, CUB_LAYOUT)
    images_file = require_file(root / "images.txt", "'<image_id> <path under images/>' lines")
    labels_file = require_file(root / "image_class_labels.txt", "'<image_id> <class_id>' lines")
    # train_test_split.txt is deliberately not read: it is the classification split,
    # while retrieval benchmarks split by class.
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
    return split


def _parse_image_line(line: str) -> tuple[int, str]:
    # maxsplit=1 keeps a relative path intact even if it contains spaces.
    image_id, rel = line.split(maxsplit=1)
    return int(image_id), rel.strip()


def _parse_label_line(line: str) -> tuple[int, int]:
    image_id, class_id = line.split()
    return int(image_id), int(class_id)


def _read_id_table(path: Path, parse: Callable[[str], tuple[int, _V]]) -> dict[int, _V]:
    """Parse '<image_id> <value>' lines into an insertion-ordered dict keyed by image id."""
    table: dict[int, _V] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DmlError(f"cannot read {path}: {exc}") from None
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
