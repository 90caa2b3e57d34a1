"""load_classification_data: dispatch by name, and the synthetic set split by image."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dml.data import DATASETS, load_classification_data, load_retrieval_data
from dml.data.aircraft import load_aircraft
from dml.data.cars import load_cars196_classification
from dml.data.cub import load_cub200_classification, read_cub_layout
from dml.data.synthetic_set import first_half_per_class, load_synthetic
from dml.errors import DmlError
from tests.data.fixtures import write_aircraft_fixture, write_cars_fixture, write_cub_fixture


def synthetic_cfg(root: Path, num_classes: int = 3, images_per_class: int = 3):
    return OmegaConf.create(
        {
            "name": "synthetic",
            "root": str(root),
            "num_classes": num_classes,
            "images_per_class": images_per_class,
            "generated_size": 16,
            "generator_seed": 0,
        }
    )


def test_first_half_per_class_rounds_up_and_counts_each_class_separately() -> None:
    # Class 1 has 3 records (2 train), class 2 has 2 (1 train), class 3 has 1 (1 train).
    # Catches floor(n/2) (class 3 would have no training image), a global first half, and
    # flags not following record order.
    assert first_half_per_class([1, 2, 1, 2, 1, 3]) == [True, True, True, False, False, True]
    assert first_half_per_class([]) == []


def test_synthetic_classification_splits_every_class_by_image(tmp_path: Path) -> None:
    cfg = synthetic_cfg(tmp_path / "synthetic")
    data = load_classification_data(cfg)
    every = read_cub_layout(tmp_path / "synthetic")
    # 3 classes of 3 images (ids 1-9, in class order): ids 1, 2 | 4, 5 | 7, 8 train.
    assert data.train.paths == [every.paths[i] for i in (0, 1, 3, 4, 6, 7)]
    assert data.train.labels == [1, 1, 2, 2, 3, 3]
    assert data.test.paths == [every.paths[i] for i in (2, 5, 8)]
    assert data.test.labels == [1, 2, 3]


def test_synthetic_classification_uses_the_retrieval_set(tmp_path: Path) -> None:
    # Catches the classification loader generating another set (other domain, size or
    # seed): both tasks read the same cached target images.
    cfg = synthetic_cfg(tmp_path / "synthetic", num_classes=4, images_per_class=2)
    retrieval = load_synthetic(cfg)
    classification = load_classification_data(cfg)
    assert sorted(retrieval.train.paths + retrieval.test.paths) == sorted(
        classification.train.paths + classification.test.paths
    )
    assert classification.train.labels == [1, 2, 3, 4]
    assert classification.test.labels == [1, 2, 3, 4]
    meta = json.loads((tmp_path / "synthetic" / "dml_synthetic.json").read_text())
    assert meta["params"] == {
        "domain": "target",
        "num_classes": 4,
        "images_per_class": 2,
        "image_size": 16,
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("name", "write", "load"),
    [
        ("cub200", lambda r: write_cub_fixture(r, [1, 150], 2), load_cub200_classification),
        ("cars196", lambda r: write_cars_fixture(r, [1, 150], 2), load_cars196_classification),
        ("aircraft", lambda r: write_aircraft_fixture(r, ["F-16A/B"], 2, 1), load_aircraft),
    ],
)
def test_dispatch_to_the_classification_loader(tmp_path: Path, name: str, write, load) -> None:
    # Catches a name sent to the retrieval (class-split) loader.
    write(tmp_path)
    cfg = OmegaConf.create({"name": name, "root": str(tmp_path)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data, expected = load_classification_data(cfg), load(tmp_path)
    assert data == expected
    assert set(data.train.labels) == set(data.test.labels)


def test_unknown_name_lists_the_datasets(tmp_path: Path) -> None:
    """Catches an unknown dataset failing deep in a loader instead of one line listing the
    registered datasets."""
    cfg = OmegaConf.create({"name": "imagenet", "root": str(tmp_path)})
    with pytest.raises(DmlError) as info:
        load_classification_data(cfg)
    assert str(info.value) == (
        "dataset=imagenet: no such dataset; expected one of aircraft, cars196, cub200, "
        "folders, inshop, sop, synthetic"
    )
    assert DATASETS.names() == [
        "aircraft",
        "cars196",
        "cub200",
        "folders",
        "inshop",
        "sop",
        "synthetic",
    ]


def test_aircraft_under_retrieval_points_to_classification(tmp_path: Path) -> None:
    # Catches aircraft loaded for retrieval (its variants are not a class-split benchmark),
    # even before any file is looked at.
    cfg = OmegaConf.create({"name": "aircraft", "root": str(tmp_path / "nowhere")})
    with pytest.raises(DmlError) as info:
        load_retrieval_data(cfg)
    assert str(info.value) == (
        "dataset=aircraft is a classification benchmark (FGVC-Aircraft) with no retrieval "
        "split: use task=classification"
    )
