"""FGVC-Aircraft 2013b in its official layout, split by image (trainval / test) at variant level."""

from __future__ import annotations

import re
from pathlib import Path

from dml.data.base import register_dataset
from dml.data.checks import (
    check_images_exist,
    read_text_lines,
    require_dir,
    require_file,
    warn_if_counts_differ,
)
from dml.data.records import RetrievalData, Split
from dml.errors import DmlError

# Official trainval / test image counts (100 variants on both sides); patched by tests.
AIRCRAFT_EXPECTED: tuple[int, int] = (6667, 3333)
AIRCRAFT_LAYOUT = (
    "an FGVC-Aircraft 2013b folder holding data/images/, data/variants.txt, "
    "data/images_variant_trainval.txt and data/images_variant_test.txt"
)
_LIST_LINE = "'<7-digit image id> <variant name>' lines"
_IMAGE_ID = re.compile(r"[0-9]{7}")


def load_aircraft(root: Path) -> RetrievalData:
    """Load FGVC-Aircraft variants: trainval train, test test; labels 1-based in variants.txt."""
    root = Path(root)
    require_dir(root, AIRCRAFT_LAYOUT)
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise DmlError(
            f"{root} has no data/ folder; expected {AIRCRAFT_LAYOUT} "
            "(dataset.root is the folder above data/)"
        )
    variants_file = require_file(data_dir / "variants.txt", "one variant name a line (100 names)")
    labels = read_variants(variants_file)
    train_file = require_file(data_dir / "images_variant_trainval.txt", _LIST_LINE)
    test_file = require_file(data_dir / "images_variant_test.txt", _LIST_LINE)
    train_ids = read_image_variants(train_file, labels, variants_file)
    test_ids = read_image_variants(test_file, labels, variants_file)
    shared = [image_id for image_id in test_ids if image_id in train_ids]
    if shared:
        raise DmlError(
            f"image id {shared[0]} is listed in both {train_file} and {test_file} "
            f"({len(shared)} images in both); expected disjoint trainval and test lists"
        )
    data = RetrievalData(
        train=_split(data_dir, train_ids, train_file), test=_split(data_dir, test_ids, test_file)
    )
    warn_if_counts_differ("FGVC-Aircraft", root, data, AIRCRAFT_EXPECTED)
    return data


def read_variants(path: Path) -> dict[str, int]:
    """Map each variant name of variants.txt to its 1-based line rank (blank lines skipped)."""
    labels: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        name = line.strip()
        if name in labels:
            raise DmlError(f"{path}:{lineno}: duplicate variant {name!r}")
        labels[name] = len(labels) + 1
    return labels


def read_image_variants(path: Path, labels: dict[str, int], variants_file: Path) -> dict[str, int]:
    """Parse '<image id> <variant name>' lines into {image id: label}, in file order."""
    table: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or not _IMAGE_ID.fullmatch(parts[0]):
            raise DmlError(
                f"{path}:{lineno}: malformed line {line.strip()!r}; expected {_LIST_LINE}"
            )
        # The name is the rest of the line: variants contain spaces and slashes ("F-16A/B").
        image_id, name = parts[0], parts[1].strip()
        if name not in labels:
            raise DmlError(f"{path}:{lineno}: variant {name!r} is not in {variants_file}")
        if image_id in table:
            raise DmlError(f"{path}:{lineno}: duplicate image id {image_id}")
        table[image_id] = labels[name]
    return table


def _split(data_dir: Path, ids: dict[str, int], listed_in: Path) -> Split:
    # Ids stay strings: their leading zeros are part of the file name (0034309.jpg).
    split = Split(
        paths=[data_dir / "images" / f"{image_id}.jpg" for image_id in ids],
        labels=list(ids.values()),
    )
    check_images_exist(split.paths, listed_in)
    return split


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based line numbers."""
    lines = read_text_lines(path)
    return [(lineno, line) for lineno, line in enumerate(lines, start=1) if line.strip()]


register_dataset(
    "aircraft",
    "FGVC-Aircraft",
    {"classification": lambda cfg: load_aircraft(Path(cfg.root))},
)
