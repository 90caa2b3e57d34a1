"""Stanford Cars (Cars196) from the official cars_annos.mat, split by class or by image."""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from dml.data.base import register_dataset
from dml.data.checks import check_images_exist, require_dir, require_file, warn_if_counts_differ
from dml.data.cub import split_by_image
from dml.data.records import RetrievalData, Split, split_by_class
from dml.errors import DmlError

# Official image counts of classes 1-98 / 99-196; module-level so tests can patch them.
CARS_EXPECTED: tuple[int, int] = (8054, 8131)
CARS_TRAIN_CLASSES: frozenset[int] = frozenset(range(1, 99))
# Official train / test image counts of the 'test' field (all 196 classes on both sides).
CARS_CLASSIFICATION_EXPECTED: tuple[int, int] = (8144, 8041)
CARS_LAYOUT = "a Cars196 folder holding car_ims/ and cars_annos.mat"
CARS_ANNOTATION_FIELDS = ("relative_im_path", "class")


def load_cars196(root: Path) -> RetrievalData:
    """Load Cars196 with classes 1-98 as train and 99-196 as test."""
    root = Path(root)
    _, _, split = _read_cars(root)
    data = split_by_class(split, set(CARS_TRAIN_CLASSES))
    warn_if_counts_differ("Cars196", root, data, CARS_EXPECTED)
    return data


def load_cars196_classification(root: Path) -> RetrievalData:
    """Load Cars196 split by image as each record's 'test' field says (0 train, 1 test)."""
    root = Path(root)
    annos_file, annotations, split = _read_cars(root)
    is_test = _read_test_flags(annos_file, annotations)
    data = split_by_image(split, [not t for t in is_test])
    warn_if_counts_differ("Cars196", root, data, CARS_CLASSIFICATION_EXPECTED)
    return data


def _read_test_flags(path: Path, annotations: np.ndarray) -> list[bool]:
    # The 'test' field of every record of the 'annotations' struct array, as booleans.
    if "test" not in annotations.dtype.names:
        raise DmlError(
            f"{path}: 'annotations' lacks field test, the classification split "
            "(0 train, 1 test); expected the official cars_annos.mat"
        )
    return [_read_test_flag(path, i, rec) for i, rec in enumerate(annotations.reshape(-1), 1)]


def _read_cars(root: Path) -> tuple[Path, np.ndarray, Split]:
    """The annotation file, its 'annotations' array and the Split of its images."""
    require_dir(root, CARS_LAYOUT)
    annos_file = require_file(
        root / "cars_annos.mat", "the official all-images annotations of Stanford Cars"
    )
    annotations = _load_annotations(annos_file)
    records = _read_records(annos_file, annotations)
    split = Split(paths=[root / rel for rel, _ in records], labels=[c for _, c in records])
    check_images_exist(split.paths, annos_file)
    return annos_file, annotations, split


def read_cars_annotations(path: Path) -> list[tuple[str, int]]:
    """Read (relative_im_path, class) of every record of the 'annotations' struct array."""
    return _read_records(path, _load_annotations(path))


def _read_records(path: Path, annotations: np.ndarray) -> list[tuple[str, int]]:
    missing = [f for f in CARS_ANNOTATION_FIELDS if f not in annotations.dtype.names]
    if missing:
        raise DmlError(
            f"{path}: 'annotations' lacks field(s) {', '.join(missing)}; "
            f"expected fields {', '.join(CARS_ANNOTATION_FIELDS)}"
        )
    # The 'test' field is not read here: it is the classification split, read only by
    # load_cars196_classification.
    return [_read_record(path, i, rec) for i, rec in enumerate(annotations.reshape(-1), start=1)]


def _load_annotations(path: Path) -> np.ndarray:
    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as exc:
        # NotImplementedError is scipy's answer to MATLAB v7.3 (HDF5) files.
        raise DmlError(f"cannot read {path} as a MATLAB file: {exc}") from None
    if "annotations" not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DmlError(
            f"{path} has no 'annotations' variable (found: {keys}); "
            "expected the official cars_annos.mat"
        )
    annotations = np.asarray(mat["annotations"])
    if annotations.dtype.names is None:
        raise DmlError(f"{path}: 'annotations' is not a struct array; expected cars_annos.mat")
    return annotations


def _read_record(path: Path, index: int, record: np.void) -> tuple[str, int]:
    try:
        rel = mat_scalar(record["relative_im_path"])
        class_id = mat_scalar(record["class"])
    except ValueError as exc:
        raise DmlError(f"{path}: annotation {index}: {exc}") from None
    if not isinstance(rel, str) or not rel:
        raise DmlError(f"{path}: annotation {index}: relative_im_path {rel!r} is not a path")
    if isinstance(class_id, bool) or not _is_whole(class_id) or class_id < 1:
        raise DmlError(f"{path}: annotation {index}: class {class_id!r} is not a positive integer")
    return rel, int(class_id)


def _read_test_flag(path: Path, index: int, record: np.void) -> bool:
    try:
        flag = mat_scalar(record["test"])
    except ValueError as exc:
        raise DmlError(f"{path}: annotation {index}: {exc}") from None
    if isinstance(flag, bool) or not _is_whole(flag) or flag not in (0, 1):
        raise DmlError(f"{path}: annotation {index}: test {flag!r} is not 0 or 1")
    return flag == 1


def mat_scalar(value: object) -> object:
    """Unwrap loadmat's nesting (object arrays, (1,), (1, 1) arrays) down to one Python value."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected a single value, got an array of shape {value.shape}")
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        # np.str_ and numpy numbers become plain str / int / float.
        value = value.item()
    return value


def _is_whole(value: object) -> bool:
    # MATLAB often stores ids as double, so 3.0 counts as the integer 3.
    if isinstance(value, Integral):
        return True
    return isinstance(value, Real) and float(value).is_integer()


register_dataset(
    "cars196",
    "Cars-196",
    {
        "retrieval": lambda cfg: load_cars196(Path(cfg.root)),
        "classification": lambda cfg: load_cars196_classification(Path(cfg.root)),
    },
)
