"""CUB-200-2011 in its official layout, split by class for zero-shot retrieval."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

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


def require_dir(root: Path, layout: str) -> Path:
    """Raise DmlError unless root is an existing directory; layout describes what belongs there."""
    if not root.exists():
        raise DmlError(f"dataset root {root} does not exist; expected {layout}")
    if not root.is_dir():
        raise DmlError(f"dataset root {root} is not a directory; expected {layout}")
    return root


def require_file(path: Path, content: str) -> Path:
    """Raise DmlError unless path is an existing file; content describes what it should hold."""
    if not path.is_file():
        raise DmlError(f"missing {path}; expected a file with {content}")
    return path


def check_images_exist(paths: Sequence[Path], listed_in: Path) -> None:
    """Raise DmlError naming the first image of paths that is missing on disk, and the count."""
    missing = [p for p in _probably_missing(paths) if not p.is_file()]
    if missing:
        raise DmlError(
            f"{len(missing)} of {len(paths)} images listed in {listed_in} are missing on disk; "
            f"first missing: {missing[0]}"
        )


def _probably_missing(paths: Sequence[Path]) -> list[Path]:
    # One listdir per folder instead of one stat per image keeps this cheap on network
    # filesystems; callers re-check the few candidates (e.g. case-insensitive filesystems).
    listings: dict[Path, set[str]] = {}
    candidates = []
    for path in paths:
        parent = path.parent
        if parent not in listings:
            try:
                listings[parent] = set(os.listdir(parent))
            except OSError:
                listings[parent] = set()
        if path.name not in listings[parent]:
            candidates.append(path)
    return candidates


def warn_if_counts_differ(
    name: str, root: Path, data: RetrievalData, expected: tuple[int, int]
) -> None:
    """Warn (UserWarning) when the train/test image counts differ from the official ones."""
    found = (len(data.train), len(data.test))
    if found != tuple(expected):
        warnings.warn(
            f"{name} at {root}: found {found[0]} train / {found[1]} test images, "
            f"expected {expected[0]} / {expected[1]} (partial or modified dataset)",
            UserWarning,
            stacklevel=3,
        )
