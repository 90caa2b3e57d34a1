"""FGVC-Aircraft 2013b loader against tiny fixtures in the official layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from dml.data.aircraft import load_aircraft, read_image_variants
from dml.data.records import ImageListDataset
from dml.errors import DmlError
from tests.data.fixtures import write_aircraft_fixture

# Not in alphabetical order (that would be A340-300, Cessna 172, DHC-1, F-16A/B), and the
# names hold a slash and a space, as officially.
VARIANTS = ["F-16A/B", "Cessna 172", "A340-300", "DHC-1"]
TRAINVAL, TEST = 3, 2

# Worked out by hand from the fixture's numbering (per variant 3 trainval then 2 test
# images, ids from 0034309): (image id, label = 1-based line of the variant in variants.txt).
EXPECTED_TRAIN = [
    ("0034309", 1),
    ("0034310", 1),
    ("0034311", 1),
    ("0034314", 2),
    ("0034315", 2),
    ("0034316", 2),
    ("0034319", 3),
    ("0034320", 3),
    ("0034321", 3),
    ("0034324", 4),
    ("0034325", 4),
    ("0034326", 4),
]
EXPECTED_TEST = [
    ("0034312", 1),
    ("0034313", 1),
    ("0034317", 2),
    ("0034318", 2),
    ("0034322", 3),
    ("0034323", 3),
    ("0034327", 4),
    ("0034328", 4),
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "fgvc-aircraft-2013b"
    write_aircraft_fixture(root, VARIANTS, TRAINVAL, TEST)
    return root


def load_quietly(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_aircraft(root)


def pairs(root: Path, split) -> list[tuple[str, int]]:
    """(image id, label) of each record, checking each path is data/images/<id>.jpg."""
    images = root / "data" / "images"
    assert all(p.parent == images and p.suffix == ".jpg" for p in split.paths)
    return [(p.stem, y) for p, y in zip(split.paths, split.labels, strict=True)]


def replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_fixture_is_in_the_official_format(root: Path) -> None:
    data = root / "data"
    assert (data / "variants.txt").read_text().splitlines() == VARIANTS
    lines = (data / "images_variant_test.txt").read_text().splitlines()
    assert lines[:3] == ["0034312 F-16A/B", "0034313 F-16A/B", "0034317 Cessna 172"]
    with Image.open(data / "images" / "0034309.jpg") as img:
        assert (img.format, img.size) == ("JPEG", (8, 8))


def test_trainval_and_test_with_labels_in_variants_txt_order(root: Path) -> None:
    # Catches labels numbered alphabetically (F-16A/B would be 4), ids parsed as ints
    # (0034309 -> 34309.jpg), names cut at a space or slash, and swapped sides.
    data = load_quietly(root)
    assert pairs(root, data.train) == EXPECTED_TRAIN
    assert pairs(root, data.test) == EXPECTED_TEST
    assert all(p.is_file() for p in data.train.paths + data.test.paths)


def test_train_is_trainval_not_the_train_list(root: Path) -> None:
    # Catches a loader reading images_variant_train.txt (2 of the 3 trainval images per
    # variant) instead of the standard FGVC protocol's trainval.
    (root / "data" / "images_variant_train.txt").write_text("garbage\n")
    (root / "data" / "images_variant_val.txt").unlink()
    assert pairs(root, load_quietly(root).train) == EXPECTED_TRAIN


def test_variant_name_is_the_rest_of_the_line(tmp_path: Path) -> None:
    # Catches split() on every space ("Cessna 172" -> "Cessna") and rsplit, and a
    # trailing blank kept in the name.
    path = tmp_path / "images_variant_test.txt"
    path.write_text("0034309 Cessna 172\n0000001 F-16A/B  \n\n1234567 Cessna 1\n")
    labels = {"Cessna 1": 7, "Cessna 172": 5, "F-16A/B": 2}
    table = read_image_variants(path, labels, tmp_path / "variants.txt")
    assert table == {"0034309": 5, "0000001": 2, "1234567": 7}
    assert list(table) == ["0034309", "0000001", "1234567"]


def test_unknown_variant_names_file_line_and_variant(root: Path) -> None:
    path = root / "data" / "images_variant_test.txt"
    replace_line(path, 2, "0034313 Boeing 747-400")
    with pytest.raises(DmlError) as info:
        load_aircraft(root)
    message = str(info.value)
    assert f"{path}:2:" in message and "'Boeing 747-400'" in message
    assert str(root / "data" / "variants.txt") in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "line",
    ["34313 F-16A/B", "0034313", "F-16A/B 0034313", "00343130 F-16A/B", "003431x F-16A/B"],
)
def test_malformed_list_line_names_file_and_line(root: Path, line: str) -> None:
    # Catches ids of the wrong length or not digits (no such image file), and missing names.
    path = root / "data" / "images_variant_trainval.txt"
    replace_line(path, 3, line)
    with pytest.raises(DmlError, match="malformed line") as info:
        load_aircraft(root)
    assert f"{path}:3:" in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_variant_names_line(root: Path) -> None:
    # A repeated name would give one variant two labels.
    path = root / "data" / "variants.txt"
    path.write_text("F-16A/B\nCessna 172\nA340-300\nDHC-1\nCessna 172\n")
    with pytest.raises(DmlError, match="duplicate variant 'Cessna 172'") as info:
        load_aircraft(root)
    assert f"{path}:5:" in str(info.value)


def test_duplicate_image_id_names_line(root: Path) -> None:
    path = root / "data" / "images_variant_trainval.txt"
    replace_line(path, 2, "0034309 F-16A/B")
    with pytest.raises(DmlError, match="duplicate image id 0034309") as info:
        load_aircraft(root)
    assert f"{path}:2:" in str(info.value)


def test_image_in_both_lists_is_an_error(root: Path) -> None:
    # Catches a test image leaking into training.
    path = root / "data" / "images_variant_test.txt"
    replace_line(path, 1, "0034309 F-16A/B")
    with pytest.raises(DmlError, match="image id 0034309 is listed in both") as info:
        load_aircraft(root)
    assert "\n" not in str(info.value)


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DmlError, match="variants.txt") as info:
        load_aircraft(missing)
    assert str(missing) in str(info.value)


def test_root_pointing_at_data_says_so(root: Path) -> None:
    # The common mistake: dataset.root set to the data/ folder itself.
    with pytest.raises(DmlError, match="has no data/ folder") as info:
        load_aircraft(root / "data")
    assert str(root / "data") in str(info.value)


@pytest.mark.parametrize(
    "name", ["variants.txt", "images_variant_trainval.txt", "images_variant_test.txt"]
)
def test_missing_metadata_file_names_it(root: Path, name: str) -> None:
    (root / "data" / name).unlink()
    with pytest.raises(DmlError) as info:
        load_aircraft(root)
    assert f"missing {root / 'data' / name}" in str(info.value)


def test_missing_images_name_first_count_and_list(root: Path) -> None:
    images = root / "data" / "images"
    (images / "0034317.jpg").unlink()
    (images / "0034328.jpg").unlink()
    with pytest.raises(DmlError) as info:
        load_aircraft(root)
    message = str(info.value)
    assert f"2 of {len(EXPECTED_TEST)}" in message
    assert str(images / "0034317.jpg") in message
    assert str(root / "data" / "images_variant_test.txt") in message


def test_image_list_dataset_loads_item(root: Path) -> None:
    test = ImageListDataset(load_quietly(root).test)
    image, label = test[2]  # 0034317, Cessna 172: label 2 -> index 1
    assert (image.mode, image.size, label) == ("RGB", (8, 8), 1)
    assert test.targets == [0, 0, 1, 1, 2, 2, 3, 3]
