"""Every real loader warns with found vs expected counts, and only when they differ.

In-Shop's three-split warning (train / query / gallery) is tested in test_inshop.py.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import pytest

from dml.data import aircraft, cars, cub, sop
from tests.data.fixtures import (
    make_sop,
    write_aircraft_fixture,
    write_cars_fixture,
    write_cub_fixture,
)

# (module, loader, expected-counts constant, official counts, fixture writer, found counts).
# Found counts by hand: retrieval fixtures hold 2 train + 2 test classes of 3 images; CUB's
# file makes the first image of each class test (4 classes: 8 / 4); the Cars fixture marks
# odd records test (6 / 6); Aircraft has 2 variants of 3 trainval + 1 test images (6 / 2);
# SOP has 3 train classes of 2, 3, 4 images and 2 test classes of 5, 6 (9 / 11).
LOADERS = [
    (
        cub,
        cub.load_cub200,
        "CUB_EXPECTED",
        (5864, 5924),
        partial(write_cub_fixture, classes=[1, 2, 101, 150], per_class=3),
        (6, 6),
    ),
    (
        cars,
        cars.load_cars196,
        "CARS_EXPECTED",
        (8054, 8131),
        partial(write_cars_fixture, classes=[1, 98, 99, 196], per_class=3),
        (6, 6),
    ),
    (
        cub,
        cub.load_cub200_classification,
        "CUB_CLASSIFICATION_EXPECTED",
        (5994, 5794),
        partial(write_cub_fixture, classes=[1, 2, 101, 150], per_class=3),
        (8, 4),
    ),
    (
        cars,
        cars.load_cars196_classification,
        "CARS_CLASSIFICATION_EXPECTED",
        (8144, 8041),
        partial(write_cars_fixture, classes=[1, 98, 99, 196], per_class=3),
        (6, 6),
    ),
    (
        aircraft,
        aircraft.load_aircraft,
        "AIRCRAFT_EXPECTED",
        (6667, 3333),
        partial(
            write_aircraft_fixture,
            variants=["F-16A/B", "Cessna 172"],
            per_variant_trainval=3,
            per_variant_test=1,
        ),
        (6, 2),
    ),
    (
        sop,
        sop.load_sop,
        "SOP_EXPECTED",
        (59551, 60502),
        partial(make_sop, classes_train=3, classes_test=2),
        (9, 11),
    ),
]
IDS = ["cub200", "cars196", "cub200-classification", "cars196-classification", "aircraft", "sop"]
PARAMS = ("module", "load", "const", "official", "write", "found")


@pytest.mark.parametrize(PARAMS, LOADERS, ids=IDS)
def test_count_mismatch_warns_found_and_expected(
    tmp_path: Path, module, load, const, official, write, found
) -> None:
    # Catches a classification loader checked against the retrieval counts (or vice versa).
    write(tmp_path)
    with pytest.warns(UserWarning) as record:
        load(tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert str(tmp_path) in message and f"found {found[0]} train / {found[1]} test" in message
    assert f"expected {official[0]} / {official[1]}" in message
    assert getattr(module, const) == official


@pytest.mark.parametrize(PARAMS, LOADERS, ids=IDS)
def test_no_warning_when_counts_match(
    tmp_path: Path, monkeypatch, module, load, const, official, write, found
) -> None:
    write(tmp_path)
    monkeypatch.setattr(module, const, found)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load(tmp_path)
    assert (len(data.train), len(data.test)) == found
