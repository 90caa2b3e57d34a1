"""In-Shop Clothes Retrieval (DeepFashion), Eval/list_eval_partition.txt: train, query, gallery."""

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

# Official train / query / gallery image counts (3,997 train items; 3,985 test items);
# module-level so tests can patch them.
INSHOP_EXPECTED: tuple[int, int, int] = (25882, 14218, 12612)
INSHOP_LAYOUT = "an In-Shop (DeepFashion) folder holding Eval/list_eval_partition.txt and Img/img/"
INSHOP_HEADER = ("image_name", "item_id", "evaluation_status")
INSHOP_STATUSES = ("train", "query", "gallery")
_INSHOP_LINE = "'<image_name> <item_id> <evaluation_status>' lines"
_INSHOP_CONTENT = (
    f"the number of images on line 1, the header '{' '.join(INSHOP_HEADER)}' on line 2, "
    f"then {_INSHOP_LINE}"
)
_ITEM_ID = re.compile(r"id_([0-9]+)")
_COUNT = re.compile(r"[0-9]+")


def load_inshop(root: Path) -> RetrievalData:
    """Load In-Shop: train the 'train' images, test the 'query' ones, gallery the 'gallery' ones.

    Labels are the item ids as integers (id_00000002 -> 2); image paths are root / "Img" /
    image_name. Train items must not appear among the query or gallery items.
    """
    root = Path(root)
    require_dir(root, INSHOP_LAYOUT)
    partition = require_file(root / "Eval" / "list_eval_partition.txt", _INSHOP_CONTENT)
    splits = read_inshop_partition(partition, root / "Img")
    train, query, gallery = (splits[s] for s in INSHOP_STATUSES)
    shared = sorted(set(train.labels) & (set(query.labels) | set(gallery.labels)))
    if shared:
        raise DmlError(
            f"item id_{shared[0]:08d} of {partition} has both train and query/gallery images "
            f"({len(shared)} of {train.num_classes} train items); retrieval needs disjoint "
            "train and test items"
        )
    check_images_exist([p for s in INSHOP_STATUSES for p in splits[s].paths], partition)
    data = RetrievalData(train=train, test=query, gallery=gallery)
    warn_if_counts_differ("In-Shop", root, data, INSHOP_EXPECTED)
    return data


def read_inshop_partition(path: Path, image_root: Path) -> dict[str, Split]:
    """The Split of each evaluation status ('train', 'query', 'gallery'), in file order.

    Line 1 holds the number of images and must match the lines listed; line 2 is the
    header. Fields are separated by any whitespace (the official file pads with spaces).
    """
    lines = read_text_lines(path)
    first = lines[0].strip() if lines else ""
    if not _COUNT.fullmatch(first):
        found = repr(first) if lines else "an empty file"
        raise DmlError(f"{path}:1: expected the number of images, found {found}")
    if len(lines) < 2 or tuple(lines[1].split()) != INSHOP_HEADER:
        found = repr(lines[1].strip()) if len(lines) >= 2 else "no line 2"
        raise DmlError(f"{path}:2: expected the header '{' '.join(INSHOP_HEADER)}', found {found}")
    records: dict[str, tuple[list[Path], list[int]]] = {s: ([], []) for s in INSHOP_STATUSES}
    seen: set[str] = set()
    for lineno, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DmlError(
                f"{path}:{lineno}: malformed line {line.strip()!r}; expected {_INSHOP_LINE}"
            )
        name, item, status = fields
        match = _ITEM_ID.fullmatch(item)
        if match is None:
            raise DmlError(
                f"{path}:{lineno}: item_id {item!r} is not of the form id_<digits> "
                "(e.g. id_00000002)"
            )
        if status not in INSHOP_STATUSES:
            raise DmlError(
                f"{path}:{lineno}: evaluation_status {status!r} is not one of "
                f"{', '.join(INSHOP_STATUSES)}"
            )
        if name in seen:
            raise DmlError(f"{path}:{lineno}: duplicate image {name}")
        seen.add(name)
        paths, labels = records[status]
        paths.append(image_root / name)
        labels.append(int(match.group(1)))
    if len(seen) != int(first):
        raise DmlError(
            f"{path}:1: declares {int(first)} images but the file lists {len(seen)} "
            "(truncated or edited file)"
        )
    return {s: Split(paths=p, labels=y) for s, (p, y) in records.items()}


register_dataset(
    "inshop",
    "In-Shop Clothes Retrieval",
    {"retrieval": lambda cfg: load_inshop(Path(cfg.root))},
)
