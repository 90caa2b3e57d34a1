"""Tiny CUB-200-2011, Cars196 and FGVC-Aircraft folders in the exact official on-disk formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

CARS_NUM_CLASSES = 196


def write_jpeg(path: Path, seed: int, size: int = 8) -> None:
    """Write a small, real RGB JPEG whose colour depends on seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    Image.new("RGB", (size, size), colour).save(path, format="JPEG")


def cub_class_folder(class_id: int) -> str:
    """Folder name of a CUB class in the official 'NNN.Name' style."""
    return f"{class_id:03d}.Bird_{class_id}"


def write_cub_fixture(root: Path, classes: Sequence[int], per_class: int, size: int = 8) -> None:
    """Write a CUB-200-2011 folder with per_class images for each class id in classes."""
    root.mkdir(parents=True, exist_ok=True)
    images, labels, splits = [], [], []
    image_id = 0
    for class_id in classes:
        folder = cub_class_folder(class_id)
        for k in range(1, per_class + 1):
            image_id += 1
            rel = f"{folder}/Bird_{class_id}_{k:04d}_{image_id}.jpg"
            write_jpeg(root / "images" / rel, image_id, size)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            # The classification split: the first image of every class is test, the rest
            # train. It cuts through every class, so a retrieval loader that used it would
            # put each class on both sides (and it differs from "first half of each class").
            splits.append(f"{image_id} {0 if k == 1 else 1}")
    _write_lines(root / "images.txt", images)
    _write_lines(root / "image_class_labels.txt", labels)
    _write_lines(root / "train_test_split.txt", splits)
    _write_lines(root / "classes.txt", [f"{c} {cub_class_folder(c)}" for c in classes])


def write_cars_fixture(root: Path, classes: Sequence[int], per_class: int, size: int = 8) -> None:
    """Write a Cars196 folder (car_ims/ and cars_annos.mat) with per_class images per class."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for class_id in classes:
        for _ in range(per_class):
            index = len(records) + 1
            rel = f"car_ims/{index:06d}.jpg"
            write_jpeg(root / rel, index, size)
            # 'test' disagrees with the class split on purpose, as it does officially.
            records.append((rel, class_id, index % 2))
    write_cars_annos(root / "cars_annos.mat", records, size)


def write_cars_annos(path: Path, records: Sequence[tuple[str, int, int]], size: int = 8) -> None:
    """Write cars_annos.mat like the official file: 1xN struct 'annotations', 1x196 cell."""
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, (rel, class_id, test) in enumerate(records):
        annotations[0, i] = (
            rel,
            _mat_uint(1, np.uint16),
            _mat_uint(1, np.uint16),
            _mat_uint(size, np.uint16),
            _mat_uint(size, np.uint16),
            _mat_uint(class_id, np.uint8),
            _mat_uint(test, np.uint8),
        )
    class_names = np.empty((1, CARS_NUM_CLASSES), dtype=object)
    for c in range(CARS_NUM_CLASSES):
        class_names[0, c] = f"Car Model {c + 1} 2012"
    scipy.io.savemat(str(path), {"annotations": annotations, "class_names": class_names})


def aircraft_image_id(n: int) -> str:
    """The n-th fixture image id: 7 digits with leading zeros, like the official 0034309."""
    return f"{34308 + n:07d}"


def write_aircraft_fixture(
    root: Path,
    variants: Sequence[str],
    per_variant_trainval: int,
    per_variant_test: int,
    size: int = 8,
) -> None:
    """Write an FGVC-Aircraft 2013b folder (data/images/, variants.txt, image lists).

    Per variant, in variants order: per_variant_trainval trainval images, then
    per_variant_test test images, numbered by aircraft_image_id(1), (2), ... The trainval
    list is also split into train (first ceil half of each variant) and val lists, as
    officially.
    """
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"trainval": [], "train": [], "val": [], "test": []}
    n = 0
    for variant in variants:
        for k in range(per_variant_trainval + per_variant_test):
            n += 1
            image_id = aircraft_image_id(n)
            write_jpeg(data / "images" / f"{image_id}.jpg", n, size)
            line = f"{image_id} {variant}"
            if k >= per_variant_trainval:
                lists["test"].append(line)
                continue
            lists["trainval"].append(line)
            lists["train" if k < (per_variant_trainval + 1) // 2 else "val"].append(line)
    _write_lines(data / "variants.txt", variants)
    for name, lines in lists.items():
        _write_lines(data / f"images_variant_{name}.txt", lines)


def _mat_uint(value: int, dtype: type) -> np.ndarray:
    # MATLAB scalars are 1x1 matrices.
    return np.array([[value]], dtype=dtype)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
