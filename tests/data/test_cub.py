"""CUB-200-2011 loader against tiny fixtures in the official layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from dml.data.cub import load_cub200, read_cub_layout
from dml.data.records import ImageListDataset
from dml.errors import DmlError
from tests.data.fixtures import write_cub_fixture

CLASSES = [1, 2, 100, 101, 150, 200]
PER_CLASS = 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "CUB_200_2011"
    write_cub_fixture(root, CLASSES, PER_CLASS)
    return root


def load_quietly(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_cub200(root)


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
