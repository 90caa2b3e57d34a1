"""The `folders` dataset (one sub-folder per class) against folders the tests write."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dml.data import load_data
from dml.errors import DmlError
from tests.conftest import compose_cfg


def write_classes(root: Path, counts: dict[str, int]) -> None:
    """counts[name] 8x8 PNGs in root/name/, plus a note and a hidden file in each folder."""
    for name, count in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(count):
            Image.new("RGB", (8, 8), (10 * k, 0, 0)).save(folder / f"img{k}.png")
        (folder / "notes.txt").write_text("not an image")


def load(root: Path, *overrides: str):
    cfg = compose_cfg(["dataset=folders", f"dataset.root={root}", *overrides])
    return load_data(cfg.dataset, "retrieval")


def test_classes_sorted_by_name_split_at_the_share(tmp_path):
    """Catches classes taken in directory order (not sorted), an empty folder or a hidden one
    counted as a class, a non-image file listed, or test labels reusing the train ones.
    Five folders with images (b, a, e, c, d written in that order), one empty, one hidden:
    sorted a-e, 0.4 x 5 = 2 train classes (a, b), test c, d, e labelled 2, 3, 4."""
    write_classes(tmp_path, {"b": 2, "a": 3, "e": 1, "c": 2, "d": 2, "empty": 0, ".cache": 2})
    data = load(tmp_path, "dataset.train_classes=0.4")
    assert [(p.parent.name, p.name, y) for p, y in zip(data.train.paths, data.train.labels)] == [
        ("a", "img0.png", 0),
        ("a", "img1.png", 0),
        ("a", "img2.png", 0),
        ("b", "img0.png", 1),
        ("b", "img1.png", 1),
    ]
    assert [(p.parent.name, y) for p, y in zip(data.test.paths, data.test.labels)] == [
        ("c", 2),
        ("c", 2),
        ("d", 3),
        ("d", 3),
        ("e", 4),
    ]


def test_one_class_is_one_line_naming_the_layout(tmp_path):
    """Catches a dataset that trains on no class (or tests on none) instead of saying so."""
    write_classes(tmp_path, {"a": 2})
    with pytest.raises(DmlError) as info:
        load(tmp_path)
    assert str(info.value) == (
        f"{tmp_path} holds 1 class folder(s) with images: dataset.train_classes=0.5 leaves no "
        "class on one side; expected a folder with one sub-folder of JPEG/PNG images per "
        "class with enough classes for both"
    )


def test_train_classes_must_be_a_share():
    """Catches dataset.train_classes=1 (every class trains, none to test) passing the checks."""
    from dml.validation import check_config

    with pytest.raises(DmlError) as info:
        check_config(compose_cfg(["dataset=folders", "dataset.train_classes=1"]))
    assert str(info.value) == (
        "dataset.train_classes=1.0 is out of range: expected a share strictly between 0 and 1"
    )
