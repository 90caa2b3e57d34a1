"""Cars196 loader against tiny fixtures in the official cars_annos.mat format."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from dml.data.cars import (
    load_cars196,
    load_cars196_classification,
    mat_scalar,
    read_cars_annotations,
)
from dml.data.records import ImageListDataset
from dml.errors import DmlError
from tests.data.fixtures import write_cars_annos, write_cars_fixture

CLASSES = [1, 2, 98, 99, 150, 196]
PER_CLASS = 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "cars196"
    write_cars_fixture(root, CLASSES, PER_CLASS)
    return root


def load_quietly(root: Path, load=load_cars196):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load(root)


def write_struct(path: Path, fields: dict[str, list]) -> None:
    """Save a 1xN 'annotations' struct array with the given per-record field values."""
    n = len(next(iter(fields.values())))
    annotations = np.zeros((1, n), dtype=[(f, object) for f in fields])
    for i in range(n):
        annotations[0, i] = tuple(values[i] for values in fields.values())
    scipy.io.savemat(str(path), {"annotations": annotations})


def test_fixture_has_official_mat_structure(root: Path) -> None:
    mat = scipy.io.loadmat(str(root / "cars_annos.mat"))
    annotations = mat["annotations"]
    assert annotations.shape == (1, len(CLASSES) * PER_CLASS)
    assert annotations.dtype.names == (
        "relative_im_path",
        *("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"),
        *("class", "test"),
    )
    assert annotations[0, 0]["relative_im_path"].shape == (1,)
    assert annotations[0, 0]["class"].shape == (1, 1)
    assert mat["class_names"].shape == (1, 196)


def test_read_annotations_unwraps_loadmat_nesting(root: Path) -> None:
    records = read_cars_annotations(root / "cars_annos.mat")
    expected_classes = [c for c in CLASSES for _ in range(PER_CLASS)]
    assert records == [(f"car_ims/{i:06d}.jpg", c) for i, c in enumerate(expected_classes, 1)]
    assert all(type(rel) is str and type(c) is int for rel, c in records)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.array([[7]], dtype=np.uint8), 7),
        (np.array([7.0]), 7.0),
        (np.array(["car_ims/000001.jpg"]), "car_ims/000001.jpg"),
        (np.array([[np.array(["a.jpg"])]], dtype=object), "a.jpg"),
        (np.uint16(3), 3),
        ("b.jpg", "b.jpg"),
    ],
)
def test_mat_scalar_unwraps(value: object, expected: object) -> None:
    result = mat_scalar(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("value", [np.array([], dtype="<U1"), np.array([[1, 2]])])
def test_mat_scalar_rejects_non_scalars(value: np.ndarray) -> None:
    with pytest.raises(ValueError, match="single value"):
        mat_scalar(value)


def test_classes_1_to_98_train_and_99_to_196_test(root: Path) -> None:
    data = load_quietly(root)
    assert sorted(set(data.train.labels)) == [1, 2, 98]
    assert sorted(set(data.test.labels)) == [99, 150, 196]
    assert len(data.train) == 3 * PER_CLASS
    assert len(data.test) == 3 * PER_CLASS
    assert all(p.is_file() for p in data.train.paths + data.test.paths)
    assert data.train.paths[0] == root / "car_ims" / "000001.jpg"


def test_double_class_ids_are_accepted(tmp_path: Path) -> None:
    write_cars_fixture(tmp_path, [5], 1)
    write_struct(
        tmp_path / "cars_annos.mat",
        {"relative_im_path": ["car_ims/000001.jpg"], "class": [np.array([[5.0]])]},
    )
    assert read_cars_annotations(tmp_path / "cars_annos.mat") == [("car_ims/000001.jpg", 5)]


def test_non_integer_class_names_record(tmp_path: Path) -> None:
    path = tmp_path / "cars_annos.mat"
    write_struct(path, {"relative_im_path": ["a.jpg", "b.jpg"], "class": [1, 1.5]})
    with pytest.raises(DmlError, match="annotation 2"):
        read_cars_annotations(path)


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DmlError, match="cars_annos.mat") as info:
        load_cars196(missing)
    assert str(missing) in str(info.value)


def test_missing_annotation_file_names_it(root: Path) -> None:
    (root / "cars_annos.mat").unlink()
    with pytest.raises(DmlError) as info:
        load_cars196(root)
    assert str(root / "cars_annos.mat") in str(info.value)


def test_not_a_mat_file_names_it(root: Path) -> None:
    (root / "cars_annos.mat").write_bytes(b"garbage")
    with pytest.raises(DmlError) as info:
        load_cars196(root)
    assert str(root / "cars_annos.mat") in str(info.value)


def test_missing_annotations_variable(root: Path) -> None:
    scipy.io.savemat(str(root / "cars_annos.mat"), {"class_names": np.array(["x"])})
    with pytest.raises(DmlError, match="no 'annotations' variable.*class_names"):
        load_cars196(root)


def test_missing_field_names_it(root: Path) -> None:
    write_struct(root / "cars_annos.mat", {"relative_im_path": ["car_ims/000001.jpg"]})
    with pytest.raises(DmlError, match="lacks field\\(s\\) class"):
        load_cars196(root)


def test_test_field_is_ignored(root: Path) -> None:
    records = [(f"car_ims/{i:06d}.jpg", c, 1) for i, c in enumerate([1, 99], 1)]
    write_cars_annos(root / "cars_annos.mat", records)
    data = load_quietly(root)
    assert (data.train.labels, data.test.labels) == ([1], [99])


def test_missing_images_name_first_and_count(root: Path) -> None:
    (root / "car_ims" / "000003.jpg").unlink()
    (root / "car_ims" / "000007.jpg").unlink()
    with pytest.raises(DmlError) as info:
        load_cars196(root)
    message = str(info.value)
    assert str(root / "car_ims" / "000003.jpg") in message
    assert "2 of 12" in message


def test_image_list_dataset_loads_item(root: Path) -> None:
    data = load_quietly(root)
    image, label = ImageListDataset(data.train)[PER_CLASS]
    assert isinstance(image, Image.Image)
    assert image.size == (8, 8)
    assert label == 1  # class 2 is the second train class


def test_corrupt_image_raises_naming_file(root: Path) -> None:
    data = load_quietly(root)
    data.test.paths[-1].write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DmlError) as info:
        ImageListDataset(data.test)[len(data.test) - 1]
    assert str(data.test.paths[-1]) in str(info.value)


def test_classification_follows_the_test_field(root: Path) -> None:
    # The fixture's record i (1-based) has test = i % 2: odd records test, even train.
    # Catches the class split instead of the field, and 0/1 inverted.
    data = load_quietly(root, load_cars196_classification)
    names = [p.relative_to(root).as_posix() for p in data.train.paths]
    assert list(zip(names, data.train.labels)) == [
        ("car_ims/000002.jpg", 1),
        ("car_ims/000004.jpg", 2),
        ("car_ims/000006.jpg", 98),
        ("car_ims/000008.jpg", 99),
        ("car_ims/000010.jpg", 150),
        ("car_ims/000012.jpg", 196),
    ]
    names = [p.relative_to(root).as_posix() for p in data.test.paths]
    assert list(zip(names, data.test.labels)) == [
        ("car_ims/000001.jpg", 1),
        ("car_ims/000003.jpg", 2),
        ("car_ims/000005.jpg", 98),
        ("car_ims/000007.jpg", 99),
        ("car_ims/000009.jpg", 150),
        ("car_ims/000011.jpg", 196),
    ]


def test_classification_uneven_test_field(root: Path) -> None:
    # Three of four records test: catches a split by position or halves instead of the field.
    flags = [1, 0, 1, 1]
    records = [
        (f"car_ims/{i:06d}.jpg", c, t) for i, (c, t) in enumerate(zip([1, 1, 2, 2], flags), 1)
    ]
    write_cars_annos(root / "cars_annos.mat", records)
    data = load_quietly(root, load_cars196_classification)
    assert (data.train.paths, data.train.labels) == ([root / "car_ims" / "000002.jpg"], [1])
    assert data.test.paths == [root / "car_ims" / f"{i:06d}.jpg" for i in (1, 3, 4)]
    assert data.test.labels == [1, 2, 2]


def test_classification_without_test_field_is_one_line_error(root: Path) -> None:
    path = root / "cars_annos.mat"
    write_struct(path, {"relative_im_path": ["car_ims/000001.jpg"], "class": [3]})
    with pytest.raises(DmlError, match="lacks field test") as info:
        load_cars196_classification(root)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    # the retrieval split does not need the field
    assert load_quietly(root).train.labels == [3]


@pytest.mark.parametrize("flag", [2, 0.5, "1"])
def test_classification_bad_test_value_names_record(root: Path, flag: object) -> None:
    # Catches any non-zero value read as test.
    path = root / "cars_annos.mat"
    write_struct(
        path,
        {
            "relative_im_path": ["car_ims/000001.jpg", "car_ims/000002.jpg"],
            "class": [3, 3],
            "test": [np.array([[0]], dtype=np.uint8), flag],
        },
    )
    with pytest.raises(DmlError, match=f"annotation 2: test {flag!r} is not 0 or 1") as info:
        load_cars196_classification(root)
    assert str(path) in str(info.value)
