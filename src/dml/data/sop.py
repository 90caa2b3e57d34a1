"""Stanford Online Products (SOP), official layout: Ebay_train.txt train, Ebay_test.txt test."""

from __future__ import annotations

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

# Official image counts of Ebay_train.txt (classes 1-11,318) / Ebay_test.txt (11,319-22,634);
# module-level so tests can patch them.
SOP_EXPECTED: tuple[int, int] = (59551, 60502)
SOP_LAYOUT = (
    "a Stanford_Online_Products folder holding Ebay_train.txt, Ebay_test.txt and the "
    "<super class>_final/ image folders"
)
SOP_HEADER = ("image_id", "class_id", "super_class_id", "path")
_SOP_LINE = "'<image_id> <class_id> <super_class_id> <path>' lines"
_SOP_CONTENT = f"the header line '{' '.join(SOP_HEADER)}', then {_SOP_LINE}"


def load_sop(root: Path) -> RetrievalData:
    """Load SOP: the images of Ebay_train.txt train, those of Ebay_test.txt test.

    Labels are the files' class_id (product) values; super_class_id is not used. The two
    files must hold disjoint classes (retrieval is evaluated on unseen classes).
    """
    root = Path(root)
    require_dir(root, SOP_LAYOUT)
    train_file = require_file(root / "Ebay_train.txt", _SOP_CONTENT)
    test_file = require_file(root / "Ebay_test.txt", _SOP_CONTENT)
    train, test = read_sop_list(train_file, root), read_sop_list(test_file, root)
    shared = sorted(set(train.labels) & set(test.labels))
    if shared:
        raise DmlError(
            f"class id {shared[0]} is in both {train_file} and {test_file} "
            f"({len(shared)} of {test.num_classes} test classes); retrieval needs disjoint "
            "train and test classes"
        )
    check_images_exist(train.paths, train_file)
    check_images_exist(test.paths, test_file)
    data = RetrievalData(train=train, test=test)
    warn_if_counts_differ("Stanford Online Products", root, data, SOP_EXPECTED)
    return data


def read_sop_list(path: Path, root: Path) -> Split:
    """Paths (root / path) and class ids of an Ebay_*.txt file, in file order.

    Line 1 must be the header 'image_id class_id super_class_id path'; blank lines are
    skipped; an image id may appear once per file.
    """
    lines = read_text_lines(path)
    if not lines or tuple(lines[0].split()) != SOP_HEADER:
        found = repr(lines[0].strip()) if lines else "an empty file"
        raise DmlError(f"{path}:1: expected the header '{' '.join(SOP_HEADER)}', found {found}")
    paths: list[Path] = []
    labels: list[int] = []
    seen: set[int] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            image_id, class_id, rel = _parse_line(line)
        except ValueError:
            raise DmlError(
                f"{path}:{lineno}: malformed line {line.strip()!r}; expected {_SOP_LINE}"
            ) from None
        if image_id in seen:
            raise DmlError(f"{path}:{lineno}: duplicate image id {image_id}")
        seen.add(image_id)
        paths.append(root / rel)
        labels.append(class_id)
    return Split(paths=paths, labels=labels)


def _parse_line(line: str) -> tuple[int, int, str]:
    # maxsplit=3 keeps a relative path intact even if it contains spaces.
    image_id, class_id, super_class_id, rel = line.strip().split(maxsplit=3)
    int(super_class_id)  # not used, but a non-integer means a malformed line
    return int(image_id), int(class_id), rel


register_dataset(
    "sop",
    "Stanford Online Products",
    {"retrieval": lambda cfg: load_sop(Path(cfg.root))},
)
