"""Stanford Online Products loader against tiny fixtures in the official layout."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from dml.data import load_classification_data, load_retrieval_data, sop
from dml.data.records import ImageListDataset, Split
from dml.data.sop import load_sop
from dml.errors import DmlError
from tests.data.fixtures import error_line, make_sop

# make_sop's defaults, worked out by hand: sizes 2, 3, 4, 5, 6 cycled over class ids 1-12.
TRAIN_COUNTS = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 2}
TEST_COUNTS = {7: 3, 8: 4, 9: 5, 10: 6, 11: 2, 12: 3}
SOP_LINE = "'<image_id> <class_id> <super_class_id> <path>' lines"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "Stanford_Online_Products"
    make_sop(root)
    return root


def load_quietly(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_sop(root)


def rel_pairs(root: Path, split: Split) -> list[tuple[str, int]]:
    """(path under root, label) of each record."""
    return [(p.relative_to(root).as_posix(), y) for p, y in zip(split.paths, split.labels)]


def edit_line(path: Path, index: int, line: str) -> None:
    """Replace line `index` (0-based, the header is 0) of a list file."""
    lines = path.read_text().splitlines()
    lines[index] = line
    path.write_text("\n".join(lines) + "\n")


def test_splits_are_the_two_files_in_file_order(tmp_path: Path) -> None:
    """Catches labels read from super_class_id or image_id, the header read as an image,
    paths joined to the wrong folder, or the files' order (or the two files) swapped."""
    root = tmp_path / "Stanford_Online_Products"
    written = make_sop(root)
    data = load_quietly(root)
    assert rel_pairs(root, data.train) == written["train"]
    assert rel_pairs(root, data.test) == written["test"]
    assert rel_pairs(root, data.train)[:3] == [
        ("bicycle_final/11000000001_0.JPG", 1),
        ("bicycle_final/11000000001_1.JPG", 1),
        ("bicycle_final/11000000002_0.JPG", 2),
    ]
    assert rel_pairs(root, data.test)[-1] == ("chair_final/11000000012_2.JPG", 12)
    assert Counter(data.train.labels) == TRAIN_COUNTS
    assert Counter(data.test.labels) == TEST_COUNTS
    assert all(p.is_file() and p.parent.parent == root for p in data.train.paths + data.test.paths)
    assert data.gallery is None


def test_header_line_is_skipped_and_required(root: Path) -> None:
    """Catches the header parsed as an image (or silently dropped with the first image when
    it is missing): a file without it must fail naming line 1."""
    data = load_quietly(root)
    assert len(data.train) == sum(TRAIN_COUNTS.values()) == 22
    path = root / "Ebay_train.txt"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    assert error_line(lambda: load_sop(root)) == (
        f"{path}:1: expected the header 'image_id class_id super_class_id path', "
        "found '1 1 1 bicycle_final/11000000001_0.JPG'"
    )


def test_empty_list_file_names_line_1(root: Path) -> None:
    """Catches an IndexError (a traceback) on an empty Ebay_test.txt."""
    path = root / "Ebay_test.txt"
    path.write_text("")
    assert error_line(lambda: load_sop(root)) == (
        f"{path}:1: expected the header 'image_id class_id super_class_id path', "
        "found an empty file"
    )


def test_blank_lines_and_crlf_are_tolerated(root: Path) -> None:
    """Catches a blank line (or Windows line ends) read as a malformed record."""
    expected = load_quietly(root)
    path = root / "Ebay_test.txt"
    lines = path.read_text().splitlines()
    path.write_bytes(("\r\n".join(lines[:3] + [""] + lines[3:]) + "\r\n\r\n").encode())
    assert load_quietly(root) == expected


def test_test_ids_may_repeat_train_ids(root: Path) -> None:
    """Catches image ids checked for duplicates across the two files: each file numbers its
    images from 1 in the fixture, which must load."""
    assert (root / "Ebay_train.txt").read_text().splitlines()[1].startswith("1 1 1 ")
    assert (root / "Ebay_test.txt").read_text().splitlines()[1].startswith("1 7 1 ")
    assert len(load_quietly(root).test) == 23


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    """Catches a traceback (or a vague message) for a dataset that is not where root says."""
    missing = tmp_path / "nowhere"
    assert error_line(lambda: load_sop(missing)) == (
        f"dataset root {missing} does not exist; expected a Stanford_Online_Products folder "
        "holding Ebay_train.txt, Ebay_test.txt and the <super class>_final/ image folders"
    )


@pytest.mark.parametrize("name", ["Ebay_train.txt", "Ebay_test.txt"])
def test_missing_list_file_names_it(root: Path, name: str) -> None:
    """Catches a missing list file treated as an empty split (a run on half the data)."""
    (root / name).unlink()
    assert error_line(lambda: load_sop(root)) == (
        f"missing {root / name}; expected a file with the header line "
        f"'image_id class_id super_class_id path', then {SOP_LINE}"
    )


@pytest.mark.parametrize(
    "line",
    ["4 three 2 bicycle_final/x.JPG", "4 2 2", "four 2 2 bicycle_final/x.JPG", "4 2 one a.JPG"],
)
def test_malformed_line_names_file_and_line(root: Path, line: str) -> None:
    """Catches an off-by-one line number (the header is line 1), a short line read as a
    path-less record, or a non-integer super_class_id let through."""
    path = root / "Ebay_train.txt"
    edit_line(path, 3, line)
    assert (
        error_line(lambda: load_sop(root))
        == f"{path}:4: malformed line {line!r}; expected {SOP_LINE}"
    )


def test_duplicate_image_id_is_refused(root: Path) -> None:
    """Catches a repeated image id (a corrupt or concatenated file) loaded twice."""
    path = root / "Ebay_test.txt"
    edit_line(path, 5, "1 8 1 bicycle_final/11000000008_1.JPG")
    assert error_line(lambda: load_sop(root)) == f"{path}:6: duplicate image id 1"


def test_class_in_both_files_is_refused(root: Path) -> None:
    """Catches a test class that is also a train class: retrieval would be scored on seen
    classes."""
    path = root / "Ebay_test.txt"
    edit_line(path, 1, "1 3 1 bicycle_final/11000000007_0.JPG")
    assert error_line(lambda: load_sop(root)) == (
        f"class id 3 is in both {root / 'Ebay_train.txt'} and {path} (1 of 7 test classes); "
        "retrieval needs disjoint train and test classes"
    )


def test_missing_images_name_first_and_count(root: Path) -> None:
    """Catches listed images missing on disk found only mid-training (or not counted)."""
    data = load_quietly(root)
    data.train.paths[4].unlink()
    data.train.paths[1].unlink()
    assert error_line(lambda: load_sop(root)) == (
        f"2 of 22 images listed in {root / 'Ebay_train.txt'} are missing on disk; "
        f"first missing: {data.train.paths[1]}"
    )
    make_sop(root)
    data.test.paths[-1].unlink()
    with pytest.raises(DmlError, match="1 of 23 images listed in .*Ebay_test.txt"):
        load_sop(root)


def test_count_warning_text_and_patched_counts(root: Path, monkeypatch) -> None:
    """Catches the warning missing, naming the wrong dataset, or firing on official counts."""
    with pytest.warns(UserWarning) as record:
        load_sop(root)
    assert [str(w.message) for w in record] == [
        f"Stanford Online Products at {root}: found 22 train / 23 test images, "
        "expected 59551 / 60502 (partial or modified dataset)"
    ]
    monkeypatch.setattr(sop, "SOP_EXPECTED", (22, 23))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_sop(root)


def test_dispatch_by_name(root: Path) -> None:
    """Catches dataset=sop unregistered for retrieval, or loaded for classification (SOP has
    no classification split) instead of refused in one line before any file is read."""
    cfg = OmegaConf.create({"name": "sop", "root": str(root)})
    assert load_quietly(root) == _quiet(load_retrieval_data, cfg)
    nowhere = OmegaConf.create({"name": "sop", "root": str(root / "nowhere")})
    assert error_line(lambda: load_classification_data(nowhere)) == (
        "dataset=sop is a retrieval benchmark (Stanford Online Products) with no "
        "classification split: use task=retrieval"
    )


def test_image_list_dataset_reads_the_jpegs(root: Path) -> None:
    """Catches fixture images that are not real JPEGs (or .JPG paths that do not open)."""
    dataset = ImageListDataset(load_quietly(root).test)
    image, label = dataset[len(dataset) - 1]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
    assert label == 5  # class 12 is the sixth test class
    assert sorted(set(dataset.targets)) == list(range(6))


def _quiet(load, cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load(cfg)
