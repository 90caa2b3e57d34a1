"""CUB-200-2011 loader against tiny fixtures in the official layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from dml.data.cub import load_cub200, load_cub200_classification, read_cub_layout, split_by_image
from dml.data.records import ImageListDataset, Split
from dml.errors import DmlError
from tests.data.fixtures import write_cub_fixture

CLASSES = [1, 2, 100, 101, 150, 200]
PER_CLASS = 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "CUB_200_2011"
    write_cub_fixture(root, CLASSES, PER_CLASS)
    return root


def load_quietly(root: Path, load=load_cub200):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load(root)


def rel_pairs(root: Path, split: Split) -> list[tuple[str, int]]:
    """(path under images/, label) of each record."""
    return [
        (str(p.relative_to(root / "images")), y)
        for p, y in zip(split.paths, split.labels, strict=True)
    ]


def test_read_layout_returns_paths_under_images_and_one_based_labels(root: Path) -> None:
    split = read_cub_layout(root)
    assert len(split) == len(CLASSES) * PER_CLASS
    assert sorted(set(split.labels)) == CLASSES
    assert all(p.is_file() for p in split.paths)
    assert all(p.parent.parent == root / "images" for p in split.paths)
    # Each image sits in the folder of its own class.
    assert all(
        p.parent.name.startswith(f"{y:03d}.")
        for p, y in zip(split.paths, split.labels, strict=True)
    )


def test_classes_1_to_100_train_and_101_to_200_test(root: Path) -> None:
    data = load_quietly(root)
    assert sorted(set(data.train.labels)) == [1, 2, 100]
    assert sorted(set(data.test.labels)) == [101, 150, 200]
    assert len(data.train) == 3 * PER_CLASS
    assert len(data.test) == 3 * PER_CLASS
    assert not set(data.train.paths) & set(data.test.paths)


def test_train_test_split_txt_is_ignored(root: Path) -> None:
    expected = load_quietly(root)
    (root / "train_test_split.txt").write_text("not a split file\n")
    data = load_quietly(root)
    assert data == expected
    (root / "train_test_split.txt").unlink()
    assert load_quietly(root) == expected


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DmlError, match="images.txt") as info:
        load_cub200(missing)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt"])
def test_missing_metadata_file_names_it(root: Path, name: str) -> None:
    (root / name).unlink()
    with pytest.raises(DmlError) as info:
        load_cub200(root)
    assert str(root / name) in str(info.value)


def test_malformed_line_names_file_and_line(root: Path) -> None:
    path = root / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    lines[2] = "3 three"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DmlError) as info:
        load_cub200(root)
    assert f"{path}:3" in str(info.value)


def test_image_without_label_is_an_error(root: Path) -> None:
    path = root / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DmlError, match=f"image id {len(lines)}"):
        load_cub200(root)


def test_missing_images_name_first_and_count(root: Path) -> None:
    split = read_cub_layout(root)
    split.paths[1].unlink()
    split.paths[4].unlink()
    with pytest.raises(DmlError) as info:
        load_cub200(root)
    message = str(info.value)
    assert str(split.paths[1]) in message
    assert f"2 of {len(split)}" in message


def test_image_list_dataset_loads_item(root: Path) -> None:
    data = load_quietly(root)
    dataset = ImageListDataset(data.test)
    image, label = dataset[len(dataset) - 1]
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == (8, 8)
    assert label == 2  # class 200 is the third test class
    assert sorted(set(dataset.targets)) == [0, 1, 2]


def test_corrupt_image_raises_naming_file(root: Path) -> None:
    data = load_quietly(root)
    data.train.paths[0].write_bytes(b"not a jpeg")
    with pytest.raises(DmlError) as info:
        ImageListDataset(data.train)[0]
    assert str(data.train.paths[0]) in str(info.value)


# Worked out by hand: image ids 1-12 run through CLASSES two at a time, and the fixture's
# train_test_split.txt marks the first image of every class 0 (test), the second 1 (train).
CLASSIFICATION_TRAIN = [
    ("001.Bird_1/Bird_1_0002_2.jpg", 1),
    ("002.Bird_2/Bird_2_0002_4.jpg", 2),
    ("100.Bird_100/Bird_100_0002_6.jpg", 100),
    ("101.Bird_101/Bird_101_0002_8.jpg", 101),
    ("150.Bird_150/Bird_150_0002_10.jpg", 150),
    ("200.Bird_200/Bird_200_0002_12.jpg", 200),
]
CLASSIFICATION_TEST = [
    ("001.Bird_1/Bird_1_0001_1.jpg", 1),
    ("002.Bird_2/Bird_2_0001_3.jpg", 2),
    ("100.Bird_100/Bird_100_0001_5.jpg", 100),
    ("101.Bird_101/Bird_101_0001_7.jpg", 101),
    ("150.Bird_150/Bird_150_0001_9.jpg", 150),
    ("200.Bird_200/Bird_200_0001_11.jpg", 200),
]


def test_classification_follows_train_test_split_txt(root: Path) -> None:
    # Catches the class split (or a first-half rule) instead of the file, and 1/0 inverted.
    data = load_quietly(root, load_cub200_classification)
    assert rel_pairs(root, data.train) == CLASSIFICATION_TRAIN
    assert rel_pairs(root, data.test) == CLASSIFICATION_TEST


def test_classification_split_is_keyed_by_image_id_not_line_order(root: Path) -> None:
    # Catches flags zipped with images.txt by position: the file reversed must change nothing.
    path = root / "train_test_split.txt"
    path.write_text("\n".join(reversed(path.read_text().splitlines())) + "\n")
    data = load_quietly(root, load_cub200_classification)
    assert rel_pairs(root, data.train) == CLASSIFICATION_TRAIN
    assert rel_pairs(root, data.test) == CLASSIFICATION_TEST


def test_classification_without_split_file_names_it(root: Path) -> None:
    (root / "train_test_split.txt").unlink()
    with pytest.raises(DmlError, match="is_training_image") as info:
        load_cub200_classification(root)
    assert f"missing {root / 'train_test_split.txt'}" in str(info.value)


@pytest.mark.parametrize("line", ["3 2", "3", "3 yes", "3 1 0"])
def test_classification_malformed_split_line_names_file_and_line(root: Path, line: str) -> None:
    # "3 2" catches any non-zero flag read as train.
    path = root / "train_test_split.txt"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DmlError, match="malformed line") as info:
        load_cub200_classification(root)
    assert f"{path}:3:" in str(info.value)
    assert "\n" not in str(info.value)


def test_classification_image_missing_from_split_file_is_an_error(root: Path) -> None:
    # Catches an unlisted image silently dropped (or sent to one side by default).
    path = root / "train_test_split.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:6] + lines[7:]) + "\n")
    with pytest.raises(DmlError) as info:
        load_cub200_classification(root)
    message = str(info.value)
    assert f"{path} has no entry for image id 7" in message
    assert "1 of 12 images" in message and "\n" not in message


def test_split_by_image_keeps_order_and_pairs() -> None:
    split = Split([Path("a"), Path("b"), Path("c"), Path("d")], [3, 1, 3, 2])
    data = split_by_image(split, [False, True, True, False])
    assert (data.train.paths, data.train.labels) == ([Path("b"), Path("c")], [1, 3])
    assert (data.test.paths, data.test.labels) == ([Path("a"), Path("d")], [3, 2])
    with pytest.raises(ValueError, match="3 train flags for 4 records"):
        split_by_image(split, [True, True, False])
