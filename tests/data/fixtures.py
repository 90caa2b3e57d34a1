"""Tiny CUB-200-2011, Cars196, SOP, In-Shop and FGVC-Aircraft folders in the official formats."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

CARS_NUM_CLASSES = 196
# The 12 super-class folders of Stanford Online Products, in super_class_id order.
SOP_SUPER_CLASSES = (
    "bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle",
    "lamp", "mug", "sofa", "stapler", "table", "toaster",
)  # fmt: skip
INSHOP_CATEGORIES = ("WOMEN/Dresses", "MEN/Denim", "WOMEN/Blouses_Shirts", "MEN/Tees_Tanks")
INSHOP_VIEWS = ("front", "side", "back", "full")


def noise_jpegs(folder: Path, sizes: Sequence[tuple[int, int]]) -> list[Path]:
    """One noise JPEG per (width, height), 0.jpg, 1.jpg, ...: every crop, flip and jitter
    changes its pixels, and no two are alike."""
    rng = np.random.default_rng(0)
    paths = []
    for k, (w, h) in enumerate(sizes):
        path = folder / f"{k}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


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


def make_sop(
    root: Path,
    classes_train: int = 6,
    classes_test: int = 6,
    images_per_class: int | Sequence[int] = (2, 3, 4, 5, 6),
    size: int = 8,
) -> dict[str, list[tuple[str, int]]]:
    """Write a Stanford Online Products folder: Ebay_train.txt, Ebay_test.txt, JPEGs.

    Classes 1..classes_train are train and the next classes_test ids are test (as SOP's test
    ids continue after the train ids). Class c has images_per_class images (an int, or
    sizes cycled over c = 1, 2, ...: by default 2, 3, 4, 5, 6, 2, ...), named
    '<super>_final/<11000000000 + c>_<k>.JPG' (k from 0) like SOP's '111085122871_0.JPG'.
    Within each split, classes go two by two into super classes 1, 2, ... (bicycle_final,
    cabinet_final, ...), so train and test share super classes. Both files start with the
    header line and number their image ids from 1.

    Returns {"train": [...], "test": [...]}, the (path under root, class id) of each line in
    file order. The defaults write 6 + 6 classes, 22 train / 23 test images.
    """
    root.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    ranges = {"train": range(1, classes_train + 1)}
    ranges["test"] = range(classes_train + 1, classes_train + classes_test + 1)
    n = 0
    for name, class_ids in ranges.items():
        lines = ["image_id class_id super_class_id path"]
        for index, class_id in enumerate(class_ids):
            super_id = index // 2 % len(SOP_SUPER_CLASSES) + 1
            folder = f"{SOP_SUPER_CLASSES[super_id - 1]}_final"
            for k in range(_cycled(images_per_class, class_id - 1)):
                n += 1
                rel = f"{folder}/{11000000000 + class_id}_{k}.JPG"
                write_jpeg(root / rel, n, size)
                records[name].append((rel, class_id))
                lines.append(f"{len(lines)} {class_id} {super_id} {rel}")
        _write_lines(root / f"Ebay_{name}.txt", lines)
    return records


def inshop_item_number(position: int) -> int:
    """Item number of the fixture's position-th item (0-based): 2, 5, 8, ... (ids with gaps)."""
    return 3 * position + 2


def make_inshop(
    root: Path,
    train_items: int = 6,
    test_items: int = 6,
    train_per_item: int | Sequence[int] = (2, 3, 4),
    query_per_item: int | Sequence[int] = (1, 2, 3),
    gallery_per_item: int | Sequence[int] = (2, 1, 3),
    size: int = 8,
) -> dict[str, list[tuple[str, int]]]:
    """Write an In-Shop (DeepFashion) folder: Eval/list_eval_partition.txt and Img/img/ JPEGs.

    Items alternate train, test, train, test, ... (the rest of the larger side last) and are
    numbered inshop_item_number(0), (1), ... = 2, 5, 8, ..., written id_00000002, .... The n-th
    train item has train_per_item images (an int, or sizes cycled over n); the n-th test item
    has query_per_item query and gallery_per_item gallery images, their lines interleaved
    (query, gallery, query, ...). Images are 'img/<category>/id_<8 digits>/<pp>_<k>_<view>.jpg'
    under Img/, like 'img/WOMEN/Dresses/id_00000002/02_1_front.jpg'. The partition file holds
    the image count, the header, then lines padded with runs of spaces (and trailing spaces)
    as the official file is.

    Returns {"train": [...], "query": [...], "gallery": [...]}, the (image_name, item number)
    of each line in file order. The defaults write 6 train items (18 images) and 6 test items
    (12 query, 12 gallery images; every test item has at least one of each).
    """
    roles = [
        role
        for i in range(max(train_items, test_items))
        for role, count in (("train", train_items), ("test", test_items))
        if i < count
    ]
    records: dict[str, list[tuple[str, int]]] = {"train": [], "query": [], "gallery": []}
    lines = []
    seen = {"train": 0, "test": 0}
    for position, role in enumerate(roles):
        number, nth = inshop_item_number(position), seen[role]
        seen[role] += 1
        if role == "train":
            statuses = ["train"] * _cycled(train_per_item, nth)
        else:
            queries, galleries = _cycled(query_per_item, nth), _cycled(gallery_per_item, nth)
            statuses = [
                s
                for j in range(max(queries, galleries))
                for s, count in (("query", queries), ("gallery", galleries))
                if j < count
            ]
        category = INSHOP_CATEGORIES[position % len(INSHOP_CATEGORIES)]
        for j, status in enumerate(statuses):
            view = INSHOP_VIEWS[j % len(INSHOP_VIEWS)]
            name = f"img/{category}/id_{number:08d}/{j // 4 + 1:02d}_{j % 4 + 1}_{view}.jpg"
            write_jpeg(root / "Img" / name, len(lines) + 1, size)
            records[status].append((name, number))
            lines.append(f"{name:<60} id_{number:08d} {status:<10}")
    eval_dir = root / "Eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    header = [str(len(lines)), "image_name item_id evaluation_status"]
    _write_lines(eval_dir / "list_eval_partition.txt", header + lines)
    return records


def _cycled(sizes: int | Sequence[int], n: int) -> int:
    # An int for every n, or the n-th of a sequence taken round and round.
    return sizes if isinstance(sizes, int) else sizes[n % len(sizes)]


def _mat_uint(value: int, dtype: type) -> np.ndarray:
    # MATLAB scalars are 1x1 matrices.
    return np.array([[value]], dtype=dtype)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def error_line(call: Callable[[], object]) -> str:
    """The one-line DmlError message that call() raises (the test fails if it raises none)."""
    import pytest

    from dml.errors import DmlError

    with pytest.raises(DmlError) as info:
        call()
    return str(info.value)
